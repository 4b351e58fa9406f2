"""Datasets and loaders. Each ``*_dataset.py`` is imported explicitly so it registers itself."""
from __future__ import annotations

from typing import Any, Dict

from torch.utils.data import DataLoader, Dataset

from basicsr.data import fusion_dataset  # noqa: F401  (registers PairedFusionDataset)
from basicsr.data.sampler import StreamSampler
from basicsr.utils.registry import DATASET_REGISTRY, build_from_cfg

__all__ = ['DATASET_REGISTRY', 'LOADER_KEYS', 'build_dataset', 'build_train_loader',
           'build_eval_loader']

# Keys of a dataset section that belong to the loader, not to the dataset class.
LOADER_KEYS = ('name', 'type', 'batch_size_per_gpu', 'num_worker_per_gpu')


def build_dataset(opt: Dict[str, Any]) -> Dataset:
    """Build a dataset from its option section (loader keys such as batch size are ignored)."""
    cfg = {k: v for k, v in opt.items() if k not in LOADER_KEYS or k == 'type'}
    cfg.setdefault('type', 'PairedFusionDataset')
    return build_from_cfg(DATASET_REGISTRY, cfg, where=f"datasets.{opt.get('name', '')}")


def build_train_loader(dataset: Dataset, opt: Dict[str, Any], seed: int, world_size: int = 1,
                       rank: int = 0, start_iter: int = 0) -> DataLoader:
    """Endless loader: batch ``batch_size_per_gpu`` per process, resumable at ``start_iter``."""
    sampler = StreamSampler(len(dataset), opt['batch_size_per_gpu'], seed, world_size, rank, start_iter)
    workers = opt['num_worker_per_gpu']
    return DataLoader(dataset, batch_size=opt['batch_size_per_gpu'], sampler=sampler,
                      num_workers=workers, drop_last=True, persistent_workers=workers > 0)


def build_eval_loader(dataset: Dataset) -> DataLoader:
    """One whole image per batch, in stem order (sizes differ between pairs)."""
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
