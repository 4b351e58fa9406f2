"""Figures of DGFusion on one CUDA GPU.

Logic and options: ``basicsr/tools/gpu_check.py``.
"""
import sys

from basicsr.tools.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
