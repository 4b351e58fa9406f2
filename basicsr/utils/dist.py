"""Process-group set-up from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK)."""
from __future__ import annotations

import datetime
import os
from typing import Optional, Tuple

import torch
import torch.distributed as dist

from basicsr.utils.errors import ConfigError, brief


def parse_device(value: str) -> Optional[str]:
    """Return an error message if ``value`` is not auto, cpu, cuda or cuda:N."""
    if value in ('auto', 'cpu', 'cuda'):
        return None
    if value.startswith('cuda:') and value[5:].isdigit():
        return None
    return f"{brief(value)} is not one of auto, cpu, cuda, cuda:N"


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto|cpu|cuda|cuda:N`` -> device; under torchrun, ``cuda``/``auto`` use LOCAL_RANK."""
    if spec == 'auto':
        spec = 'cuda' if torch.cuda.is_available() else 'cpu'
    if spec.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: '{spec}' requested but CUDA is not available (use cpu or auto)")
        index = int(spec.split(':')[1]) if ':' in spec else local_rank
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device: '{spec}' but only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device('cuda', index)
    return torch.device('cpu')


def init_dist(device_spec: str) -> Tuple[torch.device, int, int]:
    """Initialise DDP when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU).

    Returns:
        (device, rank, world_size).
    """
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = resolve_device(device_spec, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        # generous timeout: rank 0 validates full-size images while the others wait
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo',
                                timeout=datetime.timedelta(minutes=60))
    return device, rank, world


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return get_rank() == 0


def reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Average a tensor over all processes (identity without DDP)."""
    if get_world_size() == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / get_world_size()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
