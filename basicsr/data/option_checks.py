"""The option checks of :class:`~basicsr.data.fusion_dataset.PairedFusionDataset` (its
``check_options``, see :mod:`basicsr.data.contract`): data folders, benchmark layouts, matching
names and the training images' sizes, reported without building the set."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from basicsr.data.contract import ProblemLog
from basicsr.data.download import download_hint
from basicsr.data.layouts import get_layout, layout_pairs
from basicsr.data.pairs import RESIZE_CHOICES, match_folders
from basicsr.utils.errors import DataError, DGFusionError, brief
from basicsr.utils.registry import LAYOUT_REGISTRY, did_you_mean, unknown_name


def check_folders(ds: Dict[str, Any], phase: str, prefix: str, probs: ProblemLog,
                  scan: bool = False) -> None:
    """A paired dataset section: ``resize``; ``layout`` + ``root`` (see :func:`check_layout`) or
    ``dataroot_vis``/``dataroot_ir`` (+ ``dataroot_mask`` for training): the folders exist,
    (training) their names match and the images fit ``patch_size``; with ``scan``, every file
    of the pairs is read in full (:func:`basicsr.data.scan.scan_pairs`)."""
    if ds.get('resize') is not None and ds['resize'] not in RESIZE_CHOICES:
        probs.add(prefix + 'resize', f"{brief(ds['resize'])} is not one of "
                  f"{', '.join(RESIZE_CHOICES)}" + did_you_mean(ds['resize'], RESIZE_CHOICES))
    if ds.get('layout') is not None:
        check_layout(ds, phase, prefix, probs)
        return
    for key in ('dataroot_vis', 'dataroot_ir'):
        if ds.get(key) in (None, '') and not any(i.startswith(prefix + key) for i in probs.items):
            probs.add(prefix + key, 'missing: a folder of images (or give layout and root: '
                      f"one of {', '.join(LAYOUT_REGISTRY.keys())})")
    roots = {}
    for key in ('dataroot_vis', 'dataroot_ir', 'dataroot_mask'):
        root = ds.get(key)
        if key == 'dataroot_mask' and ds['phase'] != 'train':
            continue  # masks are only read for training
        if isinstance(root, str) and root not in ('', 'auto', 'none'):
            if not Path(root).is_dir():
                probs.add(prefix + key, missing_folder(root, key, probs.source,
                                                        download_hint(root)))
            else:
                roots[key[len('dataroot_'):]] = root
    # unmatched names stop training; test and validation sets skip them by name instead
    if phase == 'train' and {'vis', 'ir'} <= set(roots) and not any(
            item.startswith(prefix) for item in probs.items):
        try:
            pairs, _ = match_folders(roots['vis'], roots['ir'], roots.get('mask'), strict=True)
        except DataError as exc:
            probs.add(f"datasets.{phase}", str(exc)[:400])
        else:
            check_train_images(pairs, ds.get('patch_size', 128), prefix, probs)
            if scan:
                scan_files(pairs, phase, probs)
    elif scan and phase != 'train' and {'vis', 'ir'} <= set(roots) and not any(
            item.startswith(prefix) for item in probs.items):
        try:
            pairs, _ = match_folders(roots['vis'], roots['ir'])
        except DataError:
            pass  # no pair at all: the run reports it when it builds the set
        else:
            scan_files(pairs, phase, probs)


def data_folders(ds: Dict[str, Any], phase: str) -> List[Tuple[str, str, str]]:
    """``(key, folder, role)`` of the ``dataroot_*`` folders a paired set reads (masks only for
    training sets; ``auto``/``none`` are no folder)."""
    return [(key, ds[key], 'masks' if key == 'dataroot_mask' else 'images')
            for key in ('dataroot_vis', 'dataroot_ir', 'dataroot_mask')
            if isinstance(ds.get(key), str) and ds[key] not in ('', 'auto', 'none')
            and (key != 'dataroot_mask' or ds.get('phase', phase) == 'train')]


def check_layout(ds: Dict[str, Any], phase: str, prefix: str, probs: ProblemLog) -> None:
    """A dataset given by ``layout`` + ``root`` (+ ``split``): the layout is known, it does not
    meet ``dataroot_vis/ir``, its folders exist, and (training) its names match."""
    name = ds['layout']
    for key in ('dataroot_vis', 'dataroot_ir'):
        if ds.get(key) not in (None, ''):
            probs.add(prefix + key, f"excludes layout ({brief(name)}): give either layout and "
                      f"root, or dataroot_vis and dataroot_ir")
    if not isinstance(name, str) or any(i.startswith(prefix + 'layout') for i in probs.items):
        return  # a type problem is reported by the constructor check
    if name not in LAYOUT_REGISTRY:
        probs.add(prefix + 'layout', unknown_name('layout', name, LAYOUT_REGISTRY.keys()))
        return
    layout = get_layout(name)
    split, root = ds.get('split'), ds.get('root')
    problem = layout.split_problem(split)
    if problem:
        probs.add(prefix + 'split', problem)
        return
    if not isinstance(root, str) or not root:
        probs.add(prefix + 'root', f"missing: the folder of the {name} benchmark "
                  f"({layout.structure})")
        return
    try:
        groups = layout.groups(root, split)
    except DGFusionError as exc:
        probs.add(prefix + 'root', str(exc))
        return
    mask = ds.get('dataroot_mask')
    train = ds['phase'] == 'train'
    if train and mask not in ('auto', 'none'):
        if isinstance(mask, str) and mask:
            if not Path(mask).is_dir():
                probs.add(prefix + 'dataroot_mask', missing_folder(mask, 'dataroot_mask', probs.source))
                return
        elif layout.has_mask:
            absent = [g.mask for g in groups if g.mask is not None and not g.mask.is_dir()]
            if absent:
                probs.add(prefix + 'dataroot_mask', "absent, so the layout's mask folder is used: "
                          + missing_folder(str(absent[0]), 'dataroot_mask', probs.source))
                return
    if phase == 'train' and not any(item.startswith(prefix) for item in probs.items):
        uses_folder = mask not in ('auto', 'none') and (bool(mask) or layout.has_mask)
        try:
            pairs, _ = layout_pairs(layout, root, split, mask if isinstance(mask, str) and mask
                                    not in ('auto', 'none') else None, masks=uses_folder,
                                    strict=True)
        except DGFusionError as exc:
            probs.add(f"datasets.{phase}", str(exc)[:400])
        else:
            border = ds.get('border')
            border = layout.border if border is None else border
            check_train_images(pairs, ds.get('patch_size', 128), prefix, probs,
                               border if isinstance(border, int) else 0)


def scan_files(pairs, phase: str, probs: ProblemLog) -> None:
    """Add one problem per damaged file or mismatched size among ``pairs`` of ``phase``."""
    from basicsr.data.scan import scan_pairs
    for problem in scan_pairs(pairs):
        probs.add(f"datasets.{phase}", problem)


def check_train_images(pairs: List[Dict[str, Path]], patch_size: Any, prefix: str,
                       probs: ProblemLog, border: int = 0) -> None:
    """Headers only: training images smaller than ``patch_size`` (once ``border`` pixels are cut
    from each side) or above the pixel limit."""
    from basicsr.utils.image_header import declared_size
    from basicsr.utils.img_util import max_pixels
    limit = max_pixels()
    small, huge = [], []
    for pair in pairs:
        for role in ('vis', 'ir'):
            try:
                size = declared_size(pair[role])
            except OSError:
                continue  # unreadable: the reader names it
            if size is None:
                continue
            if size[0] * size[1] > limit:
                huge.append(f"{pair[role]} ({size[0]}x{size[1]})")
            elif isinstance(patch_size, int) and min(size) - 2 * border < patch_size and role == 'vis':
                size = (size[0] - 2 * border, size[1] - 2 * border)
                small.append(f"{pair[role].name} ({size[0]}x{size[1]})")
    if huge:
        probs.add(prefix.rstrip('.'), f"{len(huge)} image(s) declare more than {limit / 1e6:g} MP "
                  f"(DGFUSION_MAX_PIXELS): {', '.join(huge[:3])}")
    if small:
        probs.add(prefix + 'patch_size', f"{patch_size} is larger than {len(small)} training "
                  f"image(s): {', '.join(small[:3])}" + (' ...' if len(small) > 3 else ''))


def missing_folder(root: str, key: str, source: str, download: Optional[str] = None) -> str:
    """The problem text of a data folder that does not exist, with the command that makes or
    fetches it (``download``: the downloader's command for a public set's folder)."""
    msg = f"folder '{root}' does not exist"
    if 'demo' in Path(root).parts:  # the demo command writes the masks too
        msg += '; python -m basicsr.data.demo makes the demo dataset'
    elif key == 'dataroot_mask':
        msg += (f"; scripts/gen_saliency.py -opt {source} makes the masks (or set dataroot_mask: "
                f"auto to compute them on the fly)")
    elif download:
        msg += f"; get it with: {download}"
    return msg
