"""Paired visible/infrared dataset (optionally with visible-weight masks)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

from basicsr.data.contract import ProblemLog, UnreadablePairsError, check_bad_pairs
from basicsr.data.layouts import get_layout, layout_pairs
from basicsr.data.option_checks import check_folders, data_folders
from basicsr.data.pairs import RESIZE_CHOICES, Pair, match_folders, read_pair, read_sources
from basicsr.data.transforms import paired_augment, paired_random_crop
from basicsr.utils.errors import ConfigError, DataError, one_line
from basicsr.utils.image_check import inspect_image
from basicsr.utils.img_util import img2tensor, ir_to_gray
from basicsr.utils.ir_range import DEFAULT_IR_RANGE, parse_ir_range, to_unit
from basicsr.utils.registry import DATASET_REGISTRY


DEFAULT_MAX_BAD_FRACTION = 0.05


@DATASET_REGISTRY.register()
class PairedFusionDataset(Dataset):
    """Visible/infrared pairs matched by file stem across extensions (png, jpg, bmp, tif).

    Each item is a dict:
        ``vis``: (3,H,W) float32 RGB in [0,1] (a gray visible image is repeated to 3 channels);
        ``ir``: (1,H,W) float32 in [0,1] (8-bit /255; 16-bit by ``ir_range``; a 3-channel
        infrared image is taken as gray);
        ``mask``: (1,H,W) float32 in [0,1] (train phase, when masks are used);
        ``stem``, ``vis_path``, ``ir_path``: strings; ``vis_gray``: bool;
        ``vis_u8``, ``ir_u8``: (test phase) the sources as 8-bit arrays with their stored
        channels, as ``scripts/evaluate.py`` reads them (the metrics' reference);
        ``skipped``: (train phase) the pairs found unreadable while this item was made, one
        ``stem<TAB>reason`` line each ('' when none).

    A training pair that cannot be read (unreadable, empty or truncated file, sizes that do not
    match) is skipped: the item is made from the next readable pair (index + 1, + 2, ...),
    the reason is reported once in ``skipped``, and :class:`UnreadablePairsError` is raised once
    more than ``max_bad_fraction`` of the pairs were found unreadable.

    The test phase reads pairs with :func:`basicsr.data.pairs.read_pair`; names found in one
    folder only are listed in ``unmatched`` (``(stem, message)``) instead of failing the set.

    Args:
        dataroot_vis: folder of visible images (or give ``layout`` and ``root``).
        dataroot_ir: folder of infrared images, same stems.
        dataroot_mask: folder of visible-weight masks (same stems; 8-bit 0/255 or 16-bit);
            ``'auto'`` or absent: VSM masks computed from each full pair on the fly (train
            phase); ``'none'``: no masks. With a ``layout`` that ships masks (``dgfusion``),
            absent means the layout's mask folder; ``'auto'`` still computes them.
        layout: a benchmark layout (``basicsr.data.layouts``: dronevehicle, llvip, msrs, m3fd,
            vtuav, dgfusion) that finds the folders under ``root``; excludes ``dataroot_vis``
            and ``dataroot_ir``.
        root: the benchmark's folder (with ``layout``).
        split: the benchmark's split (``train``, ``test``, ...) where the layout has splits.
        border: pixels cut from each side of every image (absent: the layout's, 100 for
            dronevehicle's white frame, else 0).
        resize: when a pair's sizes differ, ``'ir'`` resamples the infrared image to the
            visible size, ``'vis'`` the visible to the infrared size (absent: the layout's,
            ``'ir'`` for vtuav, else an error).
        phase: ``'train'`` (random crop + augmentation, masks) or ``'test'`` (whole images).
        patch_size: training crop size.
        use_hflip: random horizontal flips (train).
        use_rot: random vertical flips and 90-degree rotations (train).
        enlarge_ratio: the epoch visits every pair this many times (train).
        mask_mode: ``'dgfusion'`` (binary, published) or ``'weighted'`` for ``'auto'`` masks.
        cache_masks: keep ``'auto'`` masks in memory per pair.
        ir_range: how 16-bit images are mapped to [0,1]: ``minmax``, ``percentile:LO,HI``
            or ``fixed:LO,HI`` (see ``basicsr.utils.ir_range``).
        max_bad_fraction: (train) the largest fraction of pairs that may be skipped as
            unreadable before training stops.
    """

    def __init__(self, dataroot_vis: Optional[str] = None, dataroot_ir: Optional[str] = None,
                 dataroot_mask: Optional[str] = None,
                 phase: str = 'test', patch_size: int = 128, use_hflip: bool = True,
                 use_rot: bool = True, enlarge_ratio: int = 1, mask_mode: str = 'dgfusion',
                 cache_masks: bool = True, ir_range: str = DEFAULT_IR_RANGE,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
                 layout: Optional[str] = None, root: Optional[str] = None,
                 split: Optional[str] = None, border: Optional[int] = None,
                 resize: Optional[str] = None) -> None:
        if phase not in ('train', 'test'):
            raise DataError(f"phase must be 'train' or 'test', got '{phase}'")
        if mask_mode not in ('dgfusion', 'weighted'):
            raise DataError(f"mask_mode must be 'dgfusion' or 'weighted', got '{mask_mode}'")
        if enlarge_ratio < 1 or patch_size < 1:
            raise DataError(f"enlarge_ratio and patch_size must be >= 1, got {enlarge_ratio}, {patch_size}")
        if resize not in (None,) + RESIZE_CHOICES:
            raise ConfigError(f"resize: '{resize}' is not one of {', '.join(RESIZE_CHOICES)}")
        if border is not None and border < 0:
            raise ConfigError(f"border: must be >= 0, got {border}")
        chosen = get_layout(layout) if layout is not None else None
        if chosen is not None and (dataroot_vis or dataroot_ir):
            raise ConfigError("layout and dataroot_vis/dataroot_ir exclude each other: give one")
        if chosen is None and not (dataroot_vis and dataroot_ir):
            raise ConfigError("give dataroot_vis and dataroot_ir, or layout and root")
        if chosen is not None and not root:
            raise ConfigError(f"root: required by layout {layout} (the benchmark's folder)")
        self.border = border if border is not None else (chosen.border if chosen else 0)
        self.resize = resize if resize is not None else (chosen.resize if chosen else None)
        mask_dir = None
        self.mask_source = None
        if phase == 'train' and dataroot_mask != 'none':
            if dataroot_mask == 'auto' or (dataroot_mask in (None, '') and not (
                    chosen is not None and chosen.has_mask)):
                self.mask_source = 'auto'
            else:
                self.mask_source = 'folder'
                mask_dir = dataroot_mask or None
        self.ir_range = parse_ir_range(ir_range, 'ir_range')
        if chosen is not None:
            self.pairs, self.unmatched = layout_pairs(
                chosen, root, split, mask_dir, masks=self.mask_source == 'folder',
                strict=phase == 'train')
        else:
            self.pairs, self.unmatched = match_folders(dataroot_vis, dataroot_ir, mask_dir,
                                                       strict=phase == 'train')
        self.phase, self.patch_size = phase, patch_size
        self.use_hflip, self.use_rot, self.enlarge_ratio = use_hflip, use_rot, enlarge_ratio
        self.mask_mode, self.cache_masks = mask_mode, cache_masks
        self._mask_cache: Dict[int, np.ndarray] = {}
        self.max_bad_fraction = float(max_bad_fraction)
        self.bad: Dict[str, str] = {}  # stem -> reason, pairs this process found unreadable

    @classmethod
    def check_options(cls, options: Dict[str, Any], phase: str, prefix: str,
                      problems: ProblemLog, scan: bool = False) -> None:
        """The dataset contract's option checks (:mod:`basicsr.data.contract`): see
        :func:`basicsr.data.option_checks.check_folders`."""
        check_folders(options, phase, prefix, problems, scan)

    @classmethod
    def data_folders(cls, options: Dict[str, Any], phase: str) -> List[Tuple[str, str, str]]:
        """The dataset contract's folders (:mod:`basicsr.data.contract`): see
        :func:`basicsr.data.option_checks.data_folders`."""
        return data_folders(options, phase)

    def __len__(self) -> int:
        return len(self.pairs) * (self.enlarge_ratio if self.phase == 'train' else 1)

    def summary(self) -> str:
        """One line for the run's log (the training contract)."""
        return f"{len(self.pairs)} pairs, phase {self.phase}, masks: {self.mask_source or 'none'}"

    def _load_mask(self, index: int, vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        if index in self._mask_cache:
            return self._mask_cache[index]
        from basicsr.data.saliency import read_mask, saliency_mask
        pair = self.pairs[index]
        if self.mask_source == 'folder':
            mask = read_mask(pair['mask'])
        else:
            mask = saliency_mask(vis, ir, mode=self.mask_mode)
        if mask.shape != ir.shape[:2]:
            raise DataError(f"{pair.get('mask', pair['vis'])}: mask is {mask.shape[0]}x{mask.shape[1]}, "
                            f"pair is {ir.shape[0]}x{ir.shape[1]}")
        if self.mask_source == 'auto' and self.cache_masks:
            self._mask_cache[index] = mask
        return mask

    def read(self, index: int) -> Pair:
        """Test phase: pair ``index`` as :func:`read_pair` gives it (DataError if unreadable)."""
        pair = self.pairs[index]
        return read_pair(pair['vis'], pair['ir'], self.ir_range, self.resize, stem=pair['stem'],
                         border=self.border)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Dict[str, Any]:
        """``key`` is an index, or (index, augmentation seed) as the training sampler yields."""
        index, aug_seed = (key if isinstance(key, tuple) else (key, key))
        if not 0 <= int(index) < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = int(index) % len(self.pairs)
        pair = self.pairs[index]
        if self.phase == 'test':
            p = self.read(index)
            return {'vis': p.vis.expand(3, -1, -1).clone() if p.vis_gray else p.vis, 'ir': p.ir,
                    'stem': p.stem, 'vis_path': str(pair['vis']), 'ir_path': str(pair['ir']),
                    'vis_gray': p.vis_gray, 'vis_u8': p.vis_u8, 'ir_u8': p.ir_u8}
        skipped = []
        for step in range(len(self.pairs)):
            candidate = (index + step) % len(self.pairs)
            stem = self.pairs[candidate]['stem']
            if stem in self.bad:
                continue
            try:
                item = self._train_item(candidate, aug_seed)
            except DataError as exc:
                self.bad[stem] = one_line(exc)
                skipped.append(f"{stem}\t{self.bad[stem]}")
                check_bad_pairs(self.bad, len(self.pairs), self.max_bad_fraction)
                continue
            item['skipped'] = '\n'.join(skipped)
            return item
        raise UnreadablePairsError(f"none of the {len(self.pairs)} training pairs can be read: "
                              + '; '.join(list(self.bad.values())[:3]))

    def _train_item(self, index: int, aug_seed: int) -> Dict[str, Any]:
        """Training item of pair ``index``: read, check, crop and augment (DataError if the
        pair cannot be read or does not fit together)."""
        pair = self.pairs[index]
        for role in ('vis', 'ir', 'mask') if self.mask_source == 'folder' else ('vis', 'ir'):
            inspect_image(pair[role])  # whole files only: a decoder fills a cut JPEG with gray
        vis_raw, ir_file = read_sources(pair['vis'], pair['ir'], self.border, self.resize)
        ir_raw = ir_to_gray(ir_file)
        if vis_raw.shape[:2] != ir_raw.shape[:2]:
            raise DataError(f"{pair['vis']} is {vis_raw.shape[0]}x{vis_raw.shape[1]} but "
                            f"{pair['ir']} is {ir_raw.shape[0]}x{ir_raw.shape[1]} (resample one "
                            f"with resize: ir|vis)")
        vis_gray = vis_raw.ndim == 2
        vis = to_unit(vis_raw, self.ir_range)
        vis = np.repeat(vis[:, :, None], 3, axis=2) if vis_gray else vis
        images = [vis, to_unit(ir_raw, self.ir_range)]
        if self.mask_source:
            # the mask sees the infrared file as stored: its gray rule is the VSM script's
            images.append(self._load_mask(index, vis_raw, ir_file).astype(np.float32))
        rng = np.random.default_rng([int(aug_seed), index])
        images = paired_random_crop(images, self.patch_size, rng, where=str(pair['vis']))
        images = paired_augment(images, rng, self.use_hflip, self.use_rot)
        item: Dict[str, Any] = {'vis': img2tensor(images[0]), 'ir': img2tensor(images[1]),
                                'stem': pair['stem'], 'vis_path': str(pair['vis']),
                                'ir_path': str(pair['ir']), 'vis_gray': vis_gray}
        if len(images) > 2:
            item['mask'] = img2tensor(images[2])
        return item
