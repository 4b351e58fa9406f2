"""Evaluate fused images against their sources with the fusion metrics.

Logic and options: ``basicsr/tools/evaluate.py``.
"""
import sys

from basicsr.tools.evaluate import main

if __name__ == '__main__':
    sys.exit(main())
