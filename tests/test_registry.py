"""Registries: explicit imports cover every module, clear errors for unknown or duplicate names."""
from __future__ import annotations

import ast

import pytest

from basicsr.utils.errors import RegistryError
from basicsr.utils.registry import Registry, build_from_cfg
from tests.conftest import REPO

PACKAGES = {'archs': '_arch.py', 'data': '_dataset.py', 'losses': '_losses.py', 'models': '_model.py',
            'metrics': '.py'}


@pytest.mark.parametrize('package,suffix', sorted(PACKAGES.items()))
def test_every_module_is_imported_explicitly(package, suffix):
    init = REPO / 'basicsr' / package / '__init__.py'
    tree = ast.parse(init.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == f"basicsr.{package}":
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"basicsr.{package}."):
            imported.add(node.module.rsplit('.', 1)[1])
    modules = {p.stem for p in (REPO / 'basicsr' / package).glob(f"*{suffix}") if p.name != '__init__.py'}
    if package == 'metrics':
        modules = {m for m in modules if m.endswith(('_metrics', '_metric'))}
    assert modules and modules <= imported, f"not imported in {init}: {sorted(modules - imported)}"


def test_unknown_name_lists_available_and_closest():
    reg = Registry('thing')
    reg.register(type('Alpha', (), {}))
    reg.register(type('Beta', (), {}))
    with pytest.raises(RegistryError) as info:
        reg.get('Alhpa')
    assert str(info.value) == "unknown thing type 'Alhpa' (available: Alpha, Beta); did you mean 'Alpha'?"


def test_duplicate_name_names_both_places():
    reg = Registry('thing')

    @reg.register()
    class Same:  # noqa: D401
        pass

    with pytest.raises(RegistryError, match="name 'Same' registered twice .*test_registry.*Same"):
        reg.register(type('Same', (), {}))


def test_build_does_not_mutate_and_checks_kwargs():
    import basicsr.archs  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY
    cfg = {'type': 'DGFusion', 'channels': 2}
    net = build_from_cfg(ARCH_REGISTRY, cfg)
    assert cfg == {'type': 'DGFusion', 'channels': 2}
    assert net.channels == 2
    with pytest.raises(RegistryError, match='network_g.chanels: unknown option for DGFusion; did you mean'):
        build_from_cfg(ARCH_REGISTRY, {'type': 'DGFusion', 'chanels': 2}, where='network_g')


def test_layers_import_downward_only():
    """archs, losses and metrics never import data/models; data never imports models/archs."""
    forbidden = {'archs': ('basicsr.data', 'basicsr.models', 'basicsr.losses', 'basicsr.metrics'),
                 'losses': ('basicsr.models', 'basicsr.archs', 'basicsr.data'),
                 'metrics': ('basicsr.models', 'basicsr.archs', 'basicsr.data', 'basicsr.losses'),
                 'data': ('basicsr.models', 'basicsr.archs')}
    for package, bad in forbidden.items():
        for path in (REPO / 'basicsr' / package).glob('*.py'):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([node.module or ''] if isinstance(node, ast.ImportFrom)
                         else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                for name in names:
                    assert not name.startswith(bad), f"{path.name} imports {name}"
