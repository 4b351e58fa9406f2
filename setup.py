"""Installs the ``basicsr`` package of DGFusion as the distribution ``dgfusion``."""
import importlib.util
import sys
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# dgfusion-<name> -> the module whose main(argv) -> exit code it runs (scripts/*.py run the same)
CONSOLE_SCRIPTS = {
    'train': 'basicsr.train',
    'test': 'basicsr.test',
    'fuse': 'basicsr.tools.fuse',
    'evaluate': 'basicsr.tools.evaluate',
    'saliency': 'basicsr.tools.gen_saliency',
    'export': 'basicsr.tools.export_onnx',
    'convert': 'basicsr.tools.convert_checkpoint',
    'plot': 'basicsr.tools.plot_curves',
    'benchmark': 'basicsr.tools.benchmark',
    'precision': 'basicsr.tools.precision_check',
    'download': 'basicsr.data.download',
}

spec = importlib.util.find_spec('basicsr')
if spec is not None and spec.origin and Path(spec.origin).resolve().parent != HERE / 'basicsr':
    print(f"WARNING: another 'basicsr' package is installed at {Path(spec.origin).parent}; it "
          "shares the import name with this project's package. Uninstall it (pip uninstall basicsr) "
          "or use a separate virtual environment.", file=sys.stderr)

setup(
    name='dgfusion',
    version='1.0.0',
    description='DGFusion: discrepancy-guided visible-thermal image fusion (BasicSR-style)',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr', 'basicsr.*']),
    package_data={'basicsr.data': ['manifest/*.csv']},
    entry_points={'console_scripts': [f'dgfusion-{name} = {module}:main'
                                      for name, module in CONSOLE_SCRIPTS.items()]},
    python_requires='>=3.10',
    install_requires=[line.strip() for line in (HERE / 'requirements.txt').read_text().splitlines()
                      if line.strip() and not line.startswith('#')],
    extras_require={'test': ['pytest>=7.4']},
)
