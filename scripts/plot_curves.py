"""Training and validation curves of a run, as one PNG.

Logic and options: ``basicsr/tools/plot_curves.py``.
"""
import sys

from basicsr.tools.plot_curves import main

if __name__ == '__main__':
    sys.exit(main())
