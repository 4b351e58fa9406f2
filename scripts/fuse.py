"""Fuse visible/infrared pairs, folders or videos with a DGFusion checkpoint.

Logic and options: ``basicsr/tools/fuse.py``.
"""
import sys

from basicsr.tools.fuse import main

if __name__ == '__main__':
    sys.exit(main())
