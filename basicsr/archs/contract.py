"""The network contract: what the layers above ``archs/`` may ask of a network.

A network registers its class together with a :class:`NetworkSpec` (:func:`register_network`).
Inference, export, training and checkpoint loading ask the spec (:func:`network_spec`), never
the network's own modules, so a new network touches only its own folder under ``archs/``.
Every field is optional; a network without a spec, or with a field missing, gets the generic
behaviour that each helper below states.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn as nn

from basicsr.utils.checkpoint import StateAdapter
from basicsr.utils.errors import ConfigError
from basicsr.utils.registry import ARCH_REGISTRY, NETWORK_SPEC_REGISTRY

Forward = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NetworkSpec:
    """What a network provides to the generic layers (every field optional).

    Attributes:
        state_adapter: reads foreign layouts of its weights (e.g. published checkpoints) and
            the constructor options from a state dict, for checkpoints that store no
            ``network_g`` (:class:`basicsr.utils.checkpoint.StateAdapter`).
        bytes_per_pixel: memory model, ``f(net) -> int``: peak bytes per pixel (batch 1) of
            one whole-frame forward pass without autograd; the memory guard of
            :func:`basicsr.inference.fuse` multiplies it by the pixels.
        exportable: ``f(net, conv_dtype) -> nn.Module`` whose ``forward(vis_y, ir) -> fused_y``
            every ONNX operator expresses; ``conv_dtype`` (None or ``torch.float16``) is the
            dtype of the convolutions outside precision-critical stages.
        prepare_compile: called once before ``torch.compile`` wraps the network.
        reference_forward: ``f(net, vis_y, ir) -> fused_y``, a plain evaluation of the same
            function, run in float64 as the reference exports are checked against.
    """

    state_adapter: Optional[StateAdapter] = None
    bytes_per_pixel: Optional[Callable[[nn.Module], int]] = None
    exportable: Optional[Callable[[nn.Module, Optional[torch.dtype]], nn.Module]] = None
    prepare_compile: Optional[Callable[[], None]] = None
    reference_forward: Optional[Forward] = None


def register_network(cls: type, spec: Optional[NetworkSpec] = None) -> type:
    """Register ``cls`` in the arch registry under its class name, with its ``spec``."""
    ARCH_REGISTRY.register(cls)
    NETWORK_SPEC_REGISTRY.register(spec or NetworkSpec(), name=cls.__name__)
    return cls


def network_spec(net: Union[nn.Module, str]) -> NetworkSpec:
    """The spec of a network (or of a registered type name); an empty spec when none was
    registered (e.g. a baseline module)."""
    name = net if isinstance(net, str) else type(net).__name__
    return NETWORK_SPEC_REGISTRY.get(name) if name in NETWORK_SPEC_REGISTRY else NetworkSpec()


def bytes_per_pixel(net: nn.Module) -> Optional[int]:
    """The network's memory model at its own size, or None when it registers none."""
    model = network_spec(net).bytes_per_pixel
    return None if model is None else int(model(net))


def exportable_module(net: nn.Module, conv_dtype: Optional[torch.dtype] = None) -> nn.Module:
    """The module to export for ``net`` (a copy; ``net`` is not changed).

    Without a registered ``exportable`` the network itself is exported (float32 only).

    Raises:
        ConfigError: ``conv_dtype`` asked of a network that registers no exportable module.
    """
    make = network_spec(net).exportable
    if make is not None:
        return make(net, conv_dtype)
    if conv_dtype is not None:
        raise ConfigError(f"{type(net).__name__}: no {conv_dtype} export (the network registers "
                          f"no exportable module); export it in float32")
    return copy.deepcopy(net).train(False)


def prepare_compile(net: nn.Module) -> None:
    """Run the network's compile preparation, if it registers one."""
    prepare = network_spec(net).prepare_compile
    if prepare is not None:
        prepare()


def reference_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """The network's plain reference evaluation, or its own forward where it registers none.

    Call it with a float64 copy of ``net`` and float64 inputs for reference values.
    """
    forward = network_spec(net).reference_forward
    return net(vis_y, ir) if forward is None else forward(net, vis_y, ir)
