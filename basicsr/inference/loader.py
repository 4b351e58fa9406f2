"""One model loader for test.py, scripts/fuse.py and anything that fuses."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

from basicsr.utils.checkpoint import load_network
from basicsr.utils.dist import resolve_device
from basicsr.utils.errors import CheckpointError, ConfigError
from basicsr.utils.options import parse_device, resolve_checkpoint_path


@dataclass
class LoadedModel:
    """A network ready for :func:`basicsr.inference.fuse` and where it came from."""

    net: nn.Module
    checkpoint: Path
    device: torch.device

    @property
    def channels(self) -> int:
        return int(getattr(self.net, 'channels', 0))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def describe(self) -> str:
        return (f"{self.checkpoint}: DGFusion channels {self.channels}, {self.n_params:,} "
                f"parameters, on {self.device}")


def find_checkpoint(weights: Union[str, Path], where: str = 'weights') -> Path:
    """The checkpoint file ``weights`` names (a file, or a folder's ``latest``/newest ``*.pth``).

    Raises:
        CheckpointError: naming ``where`` and the path when there is none.
    """
    path = Path(weights)
    ckpt = resolve_checkpoint_path(path)
    if ckpt is None:
        what = ('folder holds no latest pointer or *.pth file' if path.is_dir()
                else 'no such checkpoint file or folder')
        raise CheckpointError(f"{where}: {path}: {what}")
    return ckpt


def load_model(weights: Union[str, Path], device: str = 'auto', use_ema: bool = True,
               where: str = 'weights') -> LoadedModel:
    """DGFusion in eval mode from a checkpoint file of ours or of the published model, or a
    checkpoints folder (its ``latest`` pointer, else the newest ``*.pth``).

    Args:
        weights: file or folder.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        use_ema: prefer ``params_ema`` over ``params``.
        where: the option or flag named in error messages.

    Raises:
        ConfigError: bad device; CheckpointError: no such file, unreadable or mismatched weights.
    """
    problem = parse_device(str(device))
    if problem:
        raise ConfigError(f"device: {problem}")
    dev = resolve_device(str(device))
    ckpt = find_checkpoint(weights, where)
    net = load_network(ckpt, device=dev, use_ema=use_ema)
    return LoadedModel(net.train(False), ckpt, dev)
