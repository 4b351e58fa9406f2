"""Evaluate a checkpoint next to published methods; write the model card.

Logic and options: ``basicsr/tools/reference_eval.py``.
"""
import sys

from basicsr.tools.reference_eval import main

if __name__ == '__main__':
    sys.exit(main())
