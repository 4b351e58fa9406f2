"""Network architectures. Each ``*_arch.py`` is imported explicitly so it registers itself."""
from typing import Any, Dict

import torch.nn as nn

from basicsr.archs import dgfusion  # noqa: F401  (registers DGFusion and its published layout)
from basicsr.utils.registry import ARCH_REGISTRY, build_from_cfg


# The network an option file gets when it has no network_g section (and what a checkpoint
# without a stored network_g is read as).
DEFAULT_NETWORK_G: Dict[str, Any] = {'type': 'DGFusion', 'channels': 16}


def build_network(opt: Dict[str, Any]) -> nn.Module:
    """Build a network from an option dict such as ``{'type': 'DGFusion', 'channels': 16}``."""
    return build_from_cfg(ARCH_REGISTRY, opt, where='network_g')
