"""The one place where visible/infrared files or video frames become network inputs.

Used by the test dataset, ``test.py``, validation and ``scripts/fuse.py``. Besides the network
inputs, a :class:`Pair` keeps both sources as 8-bit images exactly as ``scripts/evaluate.py``
reads the files (channels as stored, 16-bit mapped by the same range rule), so metrics agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch

from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.img_util import img2tensor, ir_to_gray, list_images, read_image
from basicsr.utils.ir_range import IrRange, Limits, to_u8, to_unit

Source = Union[str, Path, np.ndarray]
RESIZE_CHOICES = ('ir', 'vis')


@dataclass
class Pair:
    """One visible/infrared pair ready for the network.

    Attributes:
        stem: name of the pair (file stem or frame number).
        vis: (3,H,W) RGB or (1,H,W) gray, float32 in [0,1].
        ir: (1,H,W) float32 in [0,1] (3 equal channels -> one; else BT.601 luma).
        vis_u8, ir_u8: the sources as 8-bit images with their stored channels ((H,W) or
            (H,W,3) RGB), the reference of the metrics.
        ir_limits: raw limits used for a 16-bit infrared image (None for 8-bit); a video holds
            the first frame's limits for the whole run.
    """

    stem: str
    vis: torch.Tensor
    ir: torch.Tensor
    vis_u8: np.ndarray
    ir_u8: np.ndarray
    ir_limits: Optional[Limits] = None

    @property
    def vis_gray(self) -> bool:
        return self.vis.shape[0] == 1

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.vis.shape[1]), int(self.vis.shape[2])


def _load(src: Source) -> Tuple[np.ndarray, str]:
    if isinstance(src, np.ndarray):
        return src, 'frame'
    try:
        return read_image(src), str(src)
    except cv2.error as err:  # e.g. a header declaring more pixels than OpenCV decodes
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else 'decoder error'
        raise DataError(f"{src}: cannot decode image ({reason})") from None


def _resample(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    h, w = size
    shrink = h <= img.shape[0] and w <= img.shape[1]
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def crop_border(img: np.ndarray, border: int, name: str) -> np.ndarray:
    """``img`` without ``border`` pixels on each of its four sides ((H,W) or (H,W,C)).

    Raises:
        DataError: the image is not larger than two borders (names the file ``name``).
    """
    if border <= 0:
        return img
    h, w = img.shape[:2]
    if h <= 2 * border or w <= 2 * border:
        raise DataError(f"{name} is {h}x{w}: too small to cut a {border}-pixel border "
                        f"from each side")
    return img[border:h - border, border:w - border]


def read_sources(vis: Union[str, Path], ir: Union[str, Path], border: int = 0,
                 resize: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Both files as stored ((H,W) or (H,W,3) RGB, uint8/uint16), ``border`` pixels cut from
    each side, and with ``resize`` (``'ir'`` or ``'vis'``) that modality resampled to the
    other's size: what training and the saliency masks read (the test phase: :func:`read_pair`).
    Without ``resize`` the sizes may still differ: the caller names the mismatch.

    Raises:
        DataError: unreadable file, or too small for the border.
    """
    vis_raw = crop_border(_load(vis)[0], border, str(vis))
    ir_raw = crop_border(_load(ir)[0], border, str(ir))
    vis_hw, ir_hw = vis_raw.shape[:2], ir_raw.shape[:2]
    if vis_hw != ir_hw and resize == 'ir':
        ir_raw = _resample(ir_raw, vis_hw)
    elif vis_hw != ir_hw and resize == 'vis':
        vis_raw = _resample(vis_raw, ir_hw)
    return vis_raw, ir_raw


def read_pair(vis: Source, ir: Source, ir_range: IrRange = IrRange(),  # noqa: B008 (a frozen value)
              resize: Optional[str] = None,
              ir_limits: Optional[Limits] = None, stem: Optional[str] = None,
              border: int = 0, size_hint: str = '') -> Pair:
    """Read one pair (files, or decoded arrays as stored: RGB/gray, uint8/uint16).

    Args:
        vis, ir: file paths, or arrays (H,W) / (H,W,3) RGB.
        ir_range: rule for 16-bit images (both modalities); see ``basicsr.utils.ir_range``.
        resize: None (sizes must match), ``'ir'`` (resample the infrared image to the visible
            size) or ``'vis'`` (the visible image to the infrared size).
        ir_limits: fixed raw limits for a 16-bit infrared image (overrides the rule's own).
        stem: name of the pair (default: the visible file's stem).
        border: pixels cut from each side of both images before anything else (a frame
            border of a benchmark, see ``basicsr.data.layouts``).
        size_hint: text appended to the size-mismatch message by a caller that can resample
            (``scripts/fuse.py``: its ``--resize`` option); test sets and training never do.

    Raises:
        DataError: unreadable file, too small for ``border``, or different sizes without
            ``resize`` (names both sizes).
    """
    if resize not in (None,) + RESIZE_CHOICES:
        raise ConfigError(f"resize: '{resize}' is not one of {', '.join(RESIZE_CHOICES)}")
    vis_raw, vis_name = _load(vis)
    ir_raw, ir_name = _load(ir)
    vis_raw, ir_raw = crop_border(vis_raw, border, vis_name), crop_border(ir_raw, border, ir_name)
    if stem is None:
        stem = Path(vis_name).stem if not isinstance(vis, np.ndarray) else 'frame'
    vis_hw, ir_hw = vis_raw.shape[:2], ir_raw.shape[:2]
    if vis_hw != ir_hw and resize is None:
        raise DataError(f"{vis_name} is {vis_hw[0]}x{vis_hw[1]} but {ir_name} is "
                        f"{ir_hw[0]}x{ir_hw[1]}{size_hint}")
    if ir_raw.dtype == np.uint16 and ir_limits is None:
        ir_limits = ir_range.limits(ir_raw)
    vis_unit = to_unit(vis_raw, ir_range)
    vis_u8 = to_u8(vis_raw, ir_range)
    ir_unit = to_unit(ir_to_gray(ir_raw), ir_range, ir_limits)
    ir_u8 = to_u8(ir_raw, ir_range, ir_limits)
    if vis_hw != ir_hw:
        if resize == 'ir':
            ir_unit, ir_u8 = _resample(ir_unit, vis_hw), _resample(ir_u8, vis_hw)
        else:
            vis_unit, vis_u8 = _resample(vis_unit, ir_hw), _resample(vis_u8, ir_hw)
    return Pair(stem=stem, vis=img2tensor(vis_unit), ir=img2tensor(ir_unit), vis_u8=vis_u8,
                ir_u8=ir_u8, ir_limits=ir_limits if ir_raw.dtype == np.uint16 else None)


_ROLE_NOUNS = {'vis': 'visible image', 'ir': 'infrared image', 'mask': 'mask'}


def match_folders(vis_dir: Union[str, Path], ir_dir: Union[str, Path],
                  mask_dir: Optional[Union[str, Path]] = None, strict: bool = False
                  ) -> Tuple[List[Dict[str, Path]], List[Tuple[str, str]]]:
    """Pair the images of two (or, with masks, three) folders by stem.

    The one pairing rule of the project (datasets, option checks, ``scripts/fuse.py``,
    ``scripts/gen_saliency.py``, ``scripts/evaluate.py``).

    Args:
        vis_dir, ir_dir: the source folders.
        mask_dir: a folder of masks that every pair must have too (training).
        strict: a stem missing from any folder is an error (training) instead of a skip.

    Returns:
        ``pairs``: ``{'stem', 'vis', 'ir'[, 'mask']}`` per stem found in every folder, sorted;
        ``unmatched``: ``(stem, message)`` per stem missing somewhere, e.g.
        ``a.png has no infrared image in <ir_dir>``.

    Raises:
        DataError: a folder is missing, two of its files share a stem, no pair at all, or
            (``strict``) ``unmatched image names: N without a match in ir folder ... (stems)``.
    """
    folders = [('vis', vis_dir), ('ir', ir_dir)] + ([('mask', mask_dir)] if mask_dir else [])
    listings = {role: list_images(folder) for role, folder in folders}
    stems = sorted(set().union(*listings.values()))
    pairs, unmatched, missing = [], [], {role: [] for role, _ in folders}
    for stem in stems:
        absent = [(role, folder) for role, folder in folders if stem not in listings[role]]
        if not absent:
            pairs.append({'stem': stem, **{role: listings[role][stem] for role, _ in folders}})
            continue
        present = next(listings[role][stem] for role, _ in folders if stem in listings[role])
        for role, _ in absent:
            missing[role].append(stem)
        unmatched.append((stem, '; '.join(f"{present.name} has no {_ROLE_NOUNS[role]} in {folder}"
                                          for role, folder in absent)))
    if strict and unmatched:
        raise DataError('unmatched image names: ' + '; '.join(
            f"{len(m)} without a match in {role} folder {dict(folders)[role]} ({_listing(m)})"
            for role, m in missing.items() if m))
    if not pairs:
        raise DataError(f"no image pairs (same stem) in {vis_dir} and {ir_dir}"
                        + (f"; {len(unmatched)} unmatched names" if unmatched else ''))
    return pairs, unmatched


def _listing(items: List[str], limit: int = 5) -> str:
    return ', '.join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else '')
