"""Worker of benchmark.py's network section.

Logic and options: ``basicsr/tools/benchmark_network.py``.
"""
import sys

from basicsr.tools.benchmark_network import main

if __name__ == '__main__':
    sys.exit(main())
