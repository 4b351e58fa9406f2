"""Deployment of a fusion network outside PyTorch: ONNX export (``onnx_export``) and an onnxruntime
fusion engine (``onnx_runtime``). Both need the optional packages of ``requirements-dev.txt``."""
