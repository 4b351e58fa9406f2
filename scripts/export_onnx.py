"""Export a DGFusion checkpoint to ONNX and check it in onnxruntime.

Logic and options: ``basicsr/tools/export_onnx.py``.
"""
import sys

from basicsr.tools.export_onnx import main

if __name__ == '__main__':
    sys.exit(main())
