"""One model loader for test.py, scripts/fuse.py and anything that fuses.

Two steps for any registered architecture: :func:`basicsr.archs.build_network` from the
checkpoint's stored ``network_g`` (else the option file's type, with the options that the
network's spec reads from the weights), then :func:`basicsr.utils.checkpoint.load_weights`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from basicsr.archs import DEFAULT_NETWORK_G, build_network
from basicsr.utils.checkpoint import describe_config, load_weights, network_config, read_checkpoint
from basicsr.utils.checkpoint_folder import resolve_checkpoint_path
from basicsr.utils.dist import parse_device, resolve_device
from basicsr.utils.errors import CheckpointError, ConfigError, DGFusionError, one_line


REPO_ROOT = Path(__file__).resolve().parents[2]
# the model trained on RoadScene with this repository (pretrained_model/README.md)
REFERENCE_WEIGHTS = REPO_ROOT / 'pretrained_model' / 'DGFusion_RoadScene_c16.pth'


@dataclass
class LoadedModel:
    """A network ready for :func:`basicsr.inference.fuse` and where it came from."""

    net: nn.Module
    checkpoint: Path
    device: torch.device
    network_g: Dict[str, Any]

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def describe(self) -> str:
        return (f"{self.checkpoint}: {describe_config(self.network_g)}, {self.n_params:,} "
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


def load_network(path: Union[str, Path], device: Union[str, torch.device] = 'cpu',
                 use_ema: bool = True, network_g: Optional[Dict[str, Any]] = None) -> nn.Module:
    """The network of a checkpoint file, built from the registry and filled, in eval mode.

    Args:
        path: our checkpoint, a published one, or a bare state dict.
        device: where the network goes.
        use_ema: prefer ``params_ema`` over ``params``.
        network_g: the option file's section, used when the file stores none (default: the
            type of :data:`basicsr.archs.DEFAULT_NETWORK_G`); the options the network's
            state adapter reads from the weights (a published file's width) take precedence.

    Raises:
        CheckpointError: unreadable file, unbuildable stored ``network_g``, or weights that do
            not fit the network.
    """
    return _build_and_load(path, device, use_ema, network_g)[0]


def _build_and_load(path: Union[str, Path], device: Union[str, torch.device], use_ema: bool,
                    network_g: Optional[Dict[str, Any]]) -> Tuple[nn.Module, Dict[str, Any]]:
    ckpt = read_checkpoint(path)
    fallback = network_g or {'type': DEFAULT_NETWORK_G['type']}
    cfg = network_config(ckpt, fallback, use_ema, where=path)
    try:
        net = build_network(cfg)
    except DGFusionError as exc:
        raise CheckpointError(f"{path}: cannot build network_g {cfg}: {one_line(exc)}") from None
    key = 'params_ema' if use_ema else 'params'
    load_weights(net, path, key=key, arch=describe_config(cfg))
    return net.to(device).train(False), cfg


def check_network_options(requested: Dict[str, Any], model: LoadedModel, where: str) -> None:
    """Refuse ``network_g`` options the loaded checkpoint cannot honour.

    The network is built as the checkpoint says (its stored ``network_g``, or the width read
    from a published file's weights), so a key the user wrote that differs from it (e.g.
    ``--set network_g.channels=16`` on a channels-4 checkpoint) would be silently ignored.

    Args:
        requested: the ``network_g`` keys the option file or ``--set`` spells out, with values.
        model: the loaded model (``model.network_g`` is what was built).
        where: the option naming the checkpoint, for the message.

    Raises:
        ConfigError: one line naming every differing key with both values.
    """
    built = model.network_g
    differ = [f"network_g.{key} is {value!r} in the options but {built[key]!r} in the checkpoint"
              for key, value in requested.items() if key in built and built[key] != value]
    if differ:
        raise ConfigError(f"{'; '.join(differ)} ({where}: {model.checkpoint}); the network is "
                          f"built from the checkpoint: remove the key or set the checkpoint's value")


def load_model(weights: Union[str, Path], device: str = 'auto', use_ema: bool = True,
               where: str = 'weights', network_g: Optional[Dict[str, Any]] = None) -> LoadedModel:
    """A network in eval mode from a checkpoint file of ours or of the published model, or a
    checkpoints folder (its ``latest`` pointer, else the newest ``*.pth``).

    Args:
        weights: file or folder.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        use_ema: prefer ``params_ema`` over ``params``.
        where: the option or flag named in error messages.
        network_g: the option file's ``network_g``, for checkpoints that store none.

    Raises:
        ConfigError: bad device; CheckpointError: no such file, unreadable or mismatched weights.
    """
    problem = parse_device(str(device))
    if problem:
        raise ConfigError(f"device: {problem}")
    dev = resolve_device(str(device))
    ckpt = find_checkpoint(weights, where)
    net, cfg = _build_and_load(ckpt, dev, use_ema, network_g)
    return LoadedModel(net, ckpt, dev, cfg)
