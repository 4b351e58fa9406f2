"""Shared fixtures: tiny synthetic visible/infrared datasets and option files in tmp folders."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def write_pairs(root: Path, n: int = 4, size=(20, 24), masks: bool = True, seed: int = 0,
                ext_vis: str = '.png', ext_ir: str = '.png') -> Dict[str, Path]:
    """Write ``n`` random RGB visible / gray infrared pairs (+ binary masks) under ``root``."""
    rng = np.random.default_rng(seed)
    dirs = {k: root / k for k in (('vis', 'ir', 'mask') if masks else ('vis', 'ir'))}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    h, w = size
    for i in range(n):
        vis = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ir = rng.integers(0, 256, (h, w), dtype=np.uint8)
        cv2.imwrite(str(dirs['vis'] / f"{i:03d}{ext_vis}"), vis)
        cv2.imwrite(str(dirs['ir'] / f"{i:03d}{ext_ir}"), ir)
        if masks:
            cv2.imwrite(str(dirs['mask'] / f"{i:03d}.png"), (rng.random((h, w)) > 0.5).astype(np.uint8) * 255)
    return dirs


def train_options(tmp: Path, data: Dict[str, Path], val: Optional[Dict[str, Path]] = None,
                  **over) -> str:
    """YAML text of a tiny training run (channels 2, patch 16, batch 2, CPU)."""
    val_block = ''
    if val is not None:
        val_block = (f"  val:\n    name: tiny_val\n    dataroot_vis: {val['vis']}\n"
                     f"    dataroot_ir: {val['ir']}\n")
    opts = dict(total_iter=5, batch=2, print_freq=1, save_freq=5, val_freq=0, ema=0.9, seed=0,
                name='tiny', channels=2, patch=16, workers=0,
                optim='{type: Adam, lr: 1e-3, betas: [0.9, 0.999]}', tb='false')
    opts.update(over)
    return f"""name: {opts['name']}
device: cpu
manual_seed: {opts['seed']}
datasets:
  train:
    name: tiny_train
    dataroot_vis: {data['vis']}
    dataroot_ir: {data['ir']}
    dataroot_mask: {data.get('mask', 'auto')}
    phase: train
    patch_size: {opts['patch']}
    enlarge_ratio: 2
    batch_size_per_gpu: {opts['batch']}
    num_worker_per_gpu: {opts['workers']}
{val_block}network_g:
  type: DGFusion
  channels: {opts['channels']}
path:
  experiments_root: {tmp / 'experiments'}
train:
  total_iter: {opts['total_iter']}
  ema_decay: {opts['ema']}
  optim_g: {opts['optim']}
  scheduler: {{type: MultiStepLR, milestones: [3], gamma: 0.5}}
  losses:
    - {{type: SaliencyMaskL1Loss, loss_weight: 3.0}}
    - {{type: MaxIntensityLoss, loss_weight: 10.0}}
    - {{type: MaxGradientLoss, loss_weight: 10.0}}
val:
  val_freq: {opts['val_freq']}
logger:
  print_freq: {opts['print_freq']}
  save_checkpoint_freq: {opts['save_freq']}
  keep_checkpoints: 0
  use_tb_logger: {opts['tb']}
"""


@pytest.fixture
def tiny_data(tmp_path):
    return write_pairs(tmp_path / 'train')


@pytest.fixture
def tiny_val(tmp_path):
    return write_pairs(tmp_path / 'val', n=2, size=(18, 21), masks=False, seed=1)
