"""Agreement of bfloat16 inference with float32 on a folder of visible/infrared pairs.

Logic and options: ``basicsr/tools/precision_check.py``.
"""
import sys

from basicsr.tools.precision_check import main

if __name__ == '__main__':
    sys.exit(main())
