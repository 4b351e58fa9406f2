"""Checks of the ``datasets`` section: phases, loader keys, the dataset class's options and
data folders, and the training images' sizes."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List

from basicsr.data.download import download_hint
from basicsr.data.layouts import get_layout, layout_pairs
from basicsr.data.pairs import RESIZE_CHOICES, match_folders
from basicsr.options.fields import DATASET_RANGES, REQUIRED, Problems, check_ranges, type_name, type_ok
from basicsr.options.paths import check_name, missing_folder
from basicsr.options.registered import check_type_section
from basicsr.options.schema import LOADER_FIELDS
from basicsr.utils.errors import DataError, DGFusionError, brief
from basicsr.utils.registry import DATASET_REGISTRY, LAYOUT_REGISTRY, did_you_mean, unknown_name


def check_train_images(pairs: List[Dict[str, Path]], patch_size: Any, prefix: str,
                       probs: Problems, border: int = 0) -> None:
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


def validate_datasets(opt: Dict[str, Any], probs: Problems, is_train: bool,
                      scan: bool = False) -> None:
    """Check ``datasets``: phases, names, loader keys, dataset class options, ranges, data
    folders (existence, matching names) and the training images' declared sizes; with
    ``scan``, also every file of the training (masks included) and validation pairs
    (whole, sizes agreeing within a pair: :func:`basicsr.data.scan.scan_pairs`)."""
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or not datasets:
        probs.add('datasets', 'missing or empty: expected a mapping of phase -> dataset')
        return
    allowed = ('train', 'val') if is_train else ()
    for phase, ds in datasets.items():
        prefix = f"datasets.{phase}."
        if phase not in allowed and not str(phase).startswith('test'):
            probs.add(f"datasets.{phase}", 'unknown phase; expected '
                      + ('train, val' if is_train else 'test_1, test_2, ...'))
            continue
        if not isinstance(ds, dict):
            probs.add(f"datasets.{phase}", f"expected a mapping, got {brief(ds)}")
            continue
        ds.setdefault('phase', 'train' if phase == 'train' else 'test')
        expected_phase = 'train' if phase == 'train' else 'test'
        if ds['phase'] != expected_phase:
            probs.add(prefix + 'phase', f"{brief(ds['phase'])} for the {phase} set; expected '{expected_phase}'")
        for key, spec in LOADER_FIELDS.items():
            if key not in ds:
                ds[key] = copy.deepcopy(spec.default) if spec.default is not REQUIRED else None
            elif not type_ok(ds[key], spec.types):
                probs.add(prefix + key, f"expected {type_name(spec.types)}, got {brief(ds[key])}")
            elif spec.range is not None and spec.range.problem(ds[key]):
                probs.add(prefix + key, spec.range.problem(ds[key]))
        if not ds['name']:
            ds['name'] = phase
        check_name(ds['name'], prefix + 'name', probs)
        kwargs = {k: v for k, v in ds.items() if k not in LOADER_FIELDS}
        check_type_section(DATASET_REGISTRY, {'type': ds['type'], **kwargs}, prefix, probs)
        check_ranges(ds, DATASET_RANGES, prefix, probs)
        if ds.get('resize') is not None and ds['resize'] not in RESIZE_CHOICES:
            probs.add(prefix + 'resize', f"{brief(ds['resize'])} is not one of "
                      f"{', '.join(RESIZE_CHOICES)}" + did_you_mean(ds['resize'], RESIZE_CHOICES))
        if ds.get('layout') is not None:
            _check_layout(ds, phase, prefix, probs)
            continue
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
                    _scan_files(pairs, phase, probs)
        elif scan and phase != 'train' and {'vis', 'ir'} <= set(roots) and not any(
                item.startswith(prefix) for item in probs.items):
            try:
                pairs, _ = match_folders(roots['vis'], roots['ir'])
            except DataError:
                pass  # no pair at all: the run reports it when it builds the set
            else:
                _scan_files(pairs, phase, probs)
    if is_train and 'train' not in datasets:
        probs.add('datasets.train', 'missing required dataset phase')


def _scan_files(pairs, phase: str, probs: Problems) -> None:
    """Add one problem per damaged file or mismatched size among ``pairs`` of ``phase``."""
    from basicsr.data.scan import scan_pairs
    for problem in scan_pairs(pairs):
        probs.add(f"datasets.{phase}", problem)


def _check_layout(ds: Dict[str, Any], phase: str, prefix: str, probs: Problems) -> None:
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
