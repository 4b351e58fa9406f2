"""Performance tables of the network, VSM saliency and metrics.

Logic and options: ``basicsr/tools/benchmark.py``.
"""
import sys

from basicsr.tools.benchmark import main

if __name__ == '__main__':
    sys.exit(main())
