"""Precompute VSM saliency masks for visible/infrared pairs.

Logic and options: ``basicsr/tools/gen_saliency.py``.
"""
import sys

from basicsr.tools.gen_saliency import main

if __name__ == '__main__':
    sys.exit(main())
