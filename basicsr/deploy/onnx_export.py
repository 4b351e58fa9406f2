"""Export a network to an ONNX file whose graph computes its exportable module.

The module comes from the network contract (:func:`basicsr.archs.contract.exportable_module`:
DGFusion's real-arithmetic evaluation; a network without one is exported as it is).
Graph contract: inputs ``vis_y`` and ``ir`` (B,1,H,W) float32 in [0,1] (visible BT.601 luma and
infrared), output ``fused_y`` (B,1,H,W) float32, the network output before the clamp; colour
handling stays with the caller. Dynamic export: B, H and W free (any size >= 1); fixed export:
B = 1 and the given H x W. Metadata keys ``network.*`` record the network type, its options
(``network.config``: the JSON of ``network_g``), the parameter count, the precision and the
contract.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from basicsr.archs.contract import exportable_module
from basicsr.utils.checkpoint import describe_config
from basicsr.utils.errors import ConfigError, DGFusionError

logger = logging.getLogger(__name__)

MIN_OPSET = 18  # the exporter's own operator set; it cannot write older ones
DEFAULT_OPSET = 18
INPUT_NAMES = ('vis_y', 'ir')
OUTPUT_NAME = 'fused_y'
# example size for a dynamic export: no dimension 0 or 1 and H != W, so the exporter
# specialises nothing
DYNAMIC_EXAMPLE = (2, 24, 20)


class ExportError(DGFusionError):
    """The exporter or the ONNX packages failed."""


def require_exporter() -> None:
    """Raise ``ConfigError`` naming the missing packages when onnx/onnxscript are absent."""
    missing = []
    for name in ('onnx', 'onnxscript'):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"ONNX export needs the package(s) {', '.join(missing)}: "
                          f"pip install -r requirements-dev.txt")


def export_onnx(net: nn.Module, out: Path, opset: int = DEFAULT_OPSET,
                size: Optional[Tuple[int, int]] = None, fp16: bool = False,
                example: Tuple[int, int, int] = DYNAMIC_EXAMPLE,
                network_g: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``net`` as an ONNX model to ``out`` (through a temporary file and a rename).

    Args:
        net: a registered network (any device; exported from a CPU float32 copy).
        out: target ``.onnx`` path (its folder must exist and be writable).
        opset: ONNX operator set, >= 18.
        size: (H, W) for a fixed-size graph with batch 1; None for dynamic batch, H and W.
        fp16: float16 convolutions where the network's exportable module allows them (DGFusion:
            encoders, gates and reconstruction; spectral stages stay float32); inputs and
            output stay float32.
        example: (B, H, W) of the example input of a dynamic export (no 0 or 1, H != W).
        network_g: the options ``net`` was built from, recorded as ``network.config``
            (default: its type only).
    Raises:
        ConfigError: bad ``opset``, missing packages, or ``fp16`` for a network without an
            fp16 export. ExportError: the exporter failed.
    """
    require_exporter()
    import onnx

    if opset < MIN_OPSET:
        raise ConfigError(f"--opset: {opset} is below {MIN_OPSET}, the lowest operator set the "
                          f"exporter writes")
    network_g = dict(network_g or {'type': type(net).__name__})
    model = exportable_module(copy.deepcopy(net).to('cpu', torch.float32),
                              torch.float16 if fp16 else None)
    if size is None:
        b, h, w = example
        dims = {0: torch.export.Dim('batch', min=1), 2: torch.export.Dim('height', min=1),
                3: torch.export.Dim('width', min=1)}
        dynamic_shapes = {'vis_y': dims, 'ir': dims}
    else:
        (b, (h, w)), dynamic_shapes = (1, size), None
    gen = torch.Generator().manual_seed(0)
    example = (torch.rand(b, 1, h, w, generator=gen), torch.rand(b, 1, h, w, generator=gen))
    tmp = out.with_name(f'.{out.name}.{uuid.uuid4().hex[:12]}.tmp')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                torch.onnx.export(model, example, str(tmp), dynamo=True, opset_version=opset,
                                  input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                                  dynamic_shapes=dynamic_shapes, external_data=False,
                                  verbose=False)
            except Exception as err:  # the exporter raises many types; report one line
                text = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise ExportError(f"ONNX export failed: {text}") from err
        proto = onnx.load(str(tmp))
        written = max((o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')),
                      default=0)
        if written != opset:
            raise ExportError(f"--opset: the exporter wrote operator set {written}, not {opset}")
        meta = {'network.type': str(network_g['type']),
                'network.config': json.dumps(network_g, sort_keys=True),
                'network.parameters': str(sum(p.numel() for p in net.parameters())),
                'network.precision': 'fp16 where the exportable module allows, else fp32' if fp16 else 'fp32',
                'network.io': 'vis_y, ir (B,1,H,W) float32 in [0,1] -> fused_y (B,1,H,W) '
                              'float32, not clamped'}
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info('exported %s to %s (opset %d, %s)', describe_config(network_g), out, opset,
                'dynamic size' if size is None else f'{size[0]}x{size[1]}')
    return out
