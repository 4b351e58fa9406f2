"""Train DGFusion: ``python train.py -opt options/train/DGFusion.yml`` (see README)."""
import sys

import basicsr  # this checkout's: Python searches the script's own folder first

if not getattr(basicsr, '__dgfusion__', False):
    sys.exit(f"error: 'import basicsr' loads {basicsr.__file__}, another package of the same name "
             "(PyPI BasicSR?); uninstall it or run from a clean virtual environment")

if __name__ == '__main__':
    from basicsr.train import main
    sys.exit(main())
