"""Convert DGFusion weights between our layout and the published model's.

Logic and options: ``basicsr/tools/convert_checkpoint.py``.
"""
import sys

from basicsr.tools.convert_checkpoint import main

if __name__ == '__main__':
    sys.exit(main())
