"""Time every fusion metric on one image triple.

Logic and options: ``basicsr/tools/benchmark_metrics.py``.
"""
import sys

from basicsr.tools.benchmark_metrics import main

if __name__ == '__main__':
    sys.exit(main())
