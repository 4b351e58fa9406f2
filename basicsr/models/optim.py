"""Optimizers and learning-rate schedulers that option files may name."""
from __future__ import annotations

from typing import Any, Dict, Iterable

import torch

from basicsr.utils.registry import OPTIMIZER_REGISTRY, SCHEDULER_REGISTRY, build_from_cfg

for _cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.RMSprop):
    OPTIMIZER_REGISTRY.register(_cls)
for _cls in (torch.optim.lr_scheduler.MultiStepLR, torch.optim.lr_scheduler.StepLR,
             torch.optim.lr_scheduler.CosineAnnealingLR, torch.optim.lr_scheduler.ExponentialLR,
             torch.optim.lr_scheduler.ConstantLR, torch.optim.lr_scheduler.LinearLR):
    SCHEDULER_REGISTRY.register(_cls)


def build_optimizer(cfg: Dict[str, Any], params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """``{'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999]}`` -> optimizer over ``params``."""
    cfg = dict(cfg)
    if isinstance(cfg.get('betas'), list):
        cfg['betas'] = tuple(cfg['betas'])
    return build_from_cfg(OPTIMIZER_REGISTRY, cfg, where='train.optim_g', params=params)


def build_scheduler(cfg: Dict[str, Any], optimizer: torch.optim.Optimizer):
    """``{'type': 'MultiStepLR', 'milestones': [...], 'gamma': 0.5}`` -> per-iteration scheduler."""
    return build_from_cfg(SCHEDULER_REGISTRY, cfg, where='train.scheduler', optimizer=optimizer)
