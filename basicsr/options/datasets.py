"""Checks of the ``datasets`` section: phases, loader keys, names, the dataset class's
constructor options and value ranges; the rest (data folders, names, sizes) the class
registered under ``type`` checks itself (``check_options``, see :mod:`basicsr.data.contract`)."""
from __future__ import annotations

import copy
from typing import Any, Dict

from basicsr.options.fields import DATASET_RANGES, REQUIRED, Problems, check_ranges, type_name, type_ok
from basicsr.options.paths import check_name
from basicsr.options.registered import check_type_section
from basicsr.options.schema import LOADER_FIELDS
from basicsr.utils.errors import brief
from basicsr.utils.registry import DATASET_REGISTRY


def validate_datasets(opt: Dict[str, Any], probs: Problems, is_train: bool,
                      scan: bool = False) -> None:
    """Check ``datasets``: phases, names, loader keys, dataset class options, ranges, then the
    class's own checks (data folders, matching names, the training images' declared sizes;
    with ``scan``, every data file in full: see its ``check_options``)."""
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
        if isinstance(ds['type'], str) and ds['type'] in DATASET_REGISTRY:
            DATASET_REGISTRY.get(ds['type']).check_options(ds, phase, prefix, probs, scan)
    if is_train and 'train' not in datasets:
        probs.add('datasets.train', 'missing required dataset phase')
