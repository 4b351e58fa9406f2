"""Network architectures. Each network (a sub-package such as ``dgfusion/``, or an ``*_arch.py``)
is imported explicitly so it registers itself with its spec (``contract.py``; see README.md)."""
from typing import Any, Dict

import torch.nn as nn

from basicsr.archs import dgfusion  # noqa: F401  (registers DGFusion with its spec)
from basicsr.utils.registry import ARCH_REGISTRY, build_from_cfg


# The network an option file gets when it has no network_g section (a checkpoint without a
# stored network_g and no option file is read as this type, its options from the weights).
DEFAULT_NETWORK_G: Dict[str, Any] = {'type': 'DGFusion', 'channels': 16}


def build_network(opt: Dict[str, Any]) -> nn.Module:
    """Build a network from an option dict such as ``{'type': 'DGFusion', 'channels': 16}``."""
    return build_from_cfg(ARCH_REGISTRY, opt, where='network_g')
