"""Paired augmentation: the same random crop, flip and rotation for every image of a pair."""
from __future__ import annotations

from typing import List

import numpy as np


def paired_random_crop(images: List[np.ndarray], patch_size: int, rng: np.random.Generator,
                       where: str = '') -> List[np.ndarray]:
    """Crop the same ``patch_size`` window from every (H,W[,C]) array.

    Images smaller than the patch are an error (silent padding would change the data).
    """
    h, w = images[0].shape[:2]
    if h < patch_size or w < patch_size:
        from basicsr.utils.errors import DataError
        raise DataError(f"{where}: image is {h}x{w}, smaller than patch_size {patch_size}")
    top = int(rng.integers(0, h - patch_size + 1))
    left = int(rng.integers(0, w - patch_size + 1))
    return [img[top:top + patch_size, left:left + patch_size] for img in images]


def paired_augment(images: List[np.ndarray], rng: np.random.Generator, hflip: bool = True,
                   rotation: bool = True) -> List[np.ndarray]:
    """Apply one random horizontal flip, vertical flip and 90-degree transpose to all images."""
    do_h = hflip and rng.random() < 0.5
    do_v = rotation and rng.random() < 0.5
    do_t = rotation and rng.random() < 0.5
    out = []
    for img in images:
        if do_h:
            img = img[:, ::-1]
        if do_v:
            img = img[::-1, :]
        if do_t:
            img = img.swapaxes(0, 1)
        out.append(np.ascontiguousarray(img))
    return out
