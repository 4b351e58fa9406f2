"""Speed of the VSM mask generation on a data folder.

Logic and options: ``basicsr/tools/benchmark_saliency.py``.
"""
import sys

from basicsr.tools.benchmark_saliency import main

if __name__ == '__main__':
    sys.exit(main())
