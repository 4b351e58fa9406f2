"""A second network under the network contract, for the tests: ``ToyFusion``.

Everything it needs from the framework is in this file: the module, its memory model, its
exportable module, the width read from a bare state dict, and the registration. Importing the
module registers it (import it once, as ``tests.toy_network``).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

from basicsr.archs.contract import NetworkSpec, register_network
from basicsr.utils.checkpoint import StateAdapter, StateDict
from basicsr.utils.errors import ConfigError

SLOPE = 0.1
BYTES_PER_FLOAT = 4
COMPILE_PREPARED: List[bool] = []  # what prepare_compile leaves behind, for the tests


class ToyFusion(nn.Module):
    """``fused_y = (vis_y + ir) / 2 + body(cat(vis_y, ir))``.

    ``body``: conv(2->W), lrelu, conv(W->W), lrelu, conv(W->1), all 3x3. Inputs (B,1,H,W) in
    [0,1]; output (B,1,H,W), not clamped.

    Args:
        width: hidden channels W.
    """

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ConfigError(f"ToyFusion: width must be a positive int, got {width!r}")
        self.width = width
        self.body = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.LeakyReLU(SLOPE),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(SLOPE),
                                  nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return 0.5 * (vis_y + ir) + self.body(torch.cat([vis_y, ir], dim=1))


def toy_bytes_per_pixel(net: ToyFusion) -> int:
    """Memory model: float32 inputs (2), their concatenation (2), two hidden maps (2W), the body
    output and the result (2)."""
    return BYTES_PER_FLOAT * (6 + 2 * net.width)


class ExportableToy(nn.Module):
    """The exported graph of ``ToyFusion``: the body in ``conv_dtype`` (None: the inputs'
    dtype), the average in the inputs' dtype."""

    def __init__(self, net: ToyFusion, conv_dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.body = copy.deepcopy(net.body).train(False)
        self.conv_dtype = conv_dtype
        if conv_dtype is not None:
            self.body.to(conv_dtype)

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        x = torch.cat([vis_y, ir], dim=1)
        low = x.dtype if self.conv_dtype is None else self.conv_dtype
        return 0.5 * (vis_y + ir) + self.body(x.to(low)).to(x.dtype)


def infer_width(state: StateDict) -> Dict[str, Any]:
    """``{'width': W}`` from the first convolution (shape (W,2,3,3)), else ``{}``."""
    weight = state.get('body.0.weight')
    return {'width': int(weight.shape[0])} if isinstance(weight, torch.Tensor) else {}


def prepare_compile() -> None:
    """Nothing to prepare for torch.compile; records the call."""
    COMPILE_PREPARED.append(True)


register_network(ToyFusion, NetworkSpec(state_adapter=StateAdapter(infer_config=infer_width),
                                        bytes_per_pixel=toy_bytes_per_pixel,
                                        exportable=ExportableToy,
                                        prepare_compile=prepare_compile))
