"""Fusion with an exported network's ONNX file in onnxruntime (CPU execution provider).

``OnnxNetwork`` is a callable ``(vis_y, ir) -> fused_y`` on torch tensors, like the module;
``OnnxModel`` wraps it like a loaded checkpoint (``net``, ``device``, ``describe()``), so
``scripts/fuse.py`` runs it through the same ``basicsr.inference.fuse`` as the torch engine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

import numpy as np
import torch

from basicsr.utils.checkpoint import describe_config
from basicsr.utils.errors import CheckpointError, ConfigError, DataError, first_line

INPUT_NAMES = ['vis_y', 'ir']
OUTPUT_NAME = 'fused_y'


def import_onnxruntime():
    """The onnxruntime module, or ``ConfigError`` with one line saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the onnx engine needs onnxruntime, which is not installed: "
                          "pip install onnxruntime (or pip install -r requirements-dev.txt)") from None
    return onnxruntime


def exported_network(meta: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    """The ``network_g`` an export records: ``network.config`` (JSON), or for files exported
    before that key, DGFusion at the width of ``dgfusion.channels``; None when unknown."""
    try:
        config = json.loads(meta['network.config']) if 'network.config' in meta else None
    except ValueError:
        config = None
    if isinstance(config, dict) and isinstance(config.get('type'), str):
        return config
    if meta.get('dgfusion.channels', '').isdigit():
        return {'type': 'DGFusion', 'channels': int(meta['dgfusion.channels'])}
    return None


class OnnxNetwork:
    """An exported network in an onnxruntime CPU session.

    Args:
        path: ``.onnx`` file written by ``scripts/export_onnx.py``.
        threads: intra-op threads (None: onnxruntime's default, all cores).
    Raises:
        ConfigError: onnxruntime missing. CheckpointError: missing, unreadable or foreign file.
    """

    def __init__(self, path: Path, threads: Optional[int] = None) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings would flood the console
        # no CPU memory arena: it grows in power-of-two steps and keeps what it took, so a
        # 640x512 frame at C=16 peaked at 2.3x the memory that plain allocations need
        options.enable_cpu_mem_arena = False
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=['CPUExecutionProvider'])
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: not a readable ONNX model "
                                  f"({first_line(err)})") from None
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if [i.name for i in inputs] != INPUT_NAMES or outputs != [OUTPUT_NAME]:
            raise CheckpointError(f"{self.path}: expected a fusion network export with inputs "
                                  f"{INPUT_NAMES} and output {OUTPUT_NAME!r}, found "
                                  f"{[i.name for i in inputs]} -> {outputs}")
        shape = inputs[0].shape
        self.fixed_size = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.network_g = exported_network(meta)
        count = meta.get('network.parameters', meta.get('dgfusion.parameters', ''))
        self.parameter_count = int(count) if count.isdigit() and int(count) else None
        self.precision = meta.get('network.precision', meta.get('dgfusion.precision', 'unknown'))

    def __call__(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) ``vis_y`` and ``ir`` in [0,1] -> (B,1,H,W) fused Y (not clamped), float32
        on the inputs' device."""
        size = tuple(vis_y.shape[-2:])
        if self.fixed_size is not None and size != self.fixed_size:
            raise DataError(f"{self.path} was exported for {self.fixed_size[0]}x"
                            f"{self.fixed_size[1]} frames, got {size[0]}x{size[1]} "
                            f"(export with --dynamic for any size)")
        feed = {name: np.ascontiguousarray(x.detach().cpu().float().numpy())
                for name, x in zip(INPUT_NAMES, (vis_y, ir))}
        try:
            fused = self.session.run([OUTPUT_NAME], feed)[0]
        except Exception as err:
            raise DataError(f"{self.path}: onnxruntime failed on a {size[0]}x{size[1]} frame "
                            f"({first_line(err)})") from None
        return torch.from_numpy(fused).to(vis_y.device)

    def parameters(self) -> Iterator[torch.Tensor]:
        """No torch parameters: inputs are fed to onnxruntime from the CPU."""
        return iter(())

    def summary(self) -> str:
        size = 'any size' if self.fixed_size is None else \
            f'{self.fixed_size[0]}x{self.fixed_size[1]} only'
        network = describe_config(self.network_g) if self.network_g else 'network unknown'
        params = f"{self.parameter_count:,} parameters, " if self.parameter_count else ''
        return f"{network} ONNX ({params}{self.precision}, {size}) in onnxruntime on cpu"


class OnnxModel:
    """An :class:`OnnxNetwork` with the surface of ``basicsr.inference.LoadedModel`` (``net``,
    ``device``, ``describe()``), so ``scripts/fuse.py`` runs it through the same
    ``basicsr.inference.fuse`` (colour split/merge, clamp, tiling) as a checkpoint."""

    def __init__(self, path: Path, threads: Optional[int] = None) -> None:
        self.net = OnnxNetwork(path, threads)
        self.device = torch.device('cpu')

    def describe(self) -> str:
        return f"{self.net.path}: {self.net.summary()}"
