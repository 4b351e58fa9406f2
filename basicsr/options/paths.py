"""Folders and files an option file names: the run name, missing data folders, checkpoints,
and output folders kept apart from the data they read."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from basicsr.options.fields import Problems
from basicsr.options.schema import LOADER_FIELDS
from basicsr.utils.checkpoint_folder import resolve_checkpoint_path
from basicsr.utils.errors import brief
from basicsr.utils.registry import DATASET_REGISTRY


def check_name(value: Any, key: str, probs: 'Problems') -> None:
    """``name`` becomes one folder: non-empty, one path component, no '..', no separators."""
    if not isinstance(value, str):
        return  # type problems are reported by the schema
    bad = [c for c in ('/', '\\', '\0') if c in value]
    if not value.strip():
        probs.add(key, 'must not be empty (it names the run folder)')
    elif value in ('.', '..') or bad or any(ord(c) < 32 for c in value):
        probs.add(key, f"{brief(value)} must be a single folder name: no '/', '\\', '..' or "
                  f"control characters")
    elif value != value.strip():
        probs.add(key, f"{brief(value)} starts or ends with spaces")


def check_paths(opt: Dict[str, Any], probs: Problems, is_train: bool) -> None:
    """Input files the run reads and the output folder it writes, checked without writing."""
    from basicsr.utils.errors import OutputError
    from basicsr.utils.fs import check_output_dir
    path_opt = opt.get('path') if isinstance(opt.get('path'), dict) else {}
    ckpt = path_opt.get('pretrain_network_g')
    if isinstance(ckpt, str) and ckpt and resolve_checkpoint_path(ckpt) is None:
        probs.add('path.pretrain_network_g',
                  f"'{brief(ckpt)[1:-1]}' is neither a checkpoint file nor a folder holding checkpoints")
    resume = path_opt.get('resume_state')
    if is_train and isinstance(resume, str) and resume and not Path(resume).is_file():
        probs.add('path.resume_state', f"'{brief(resume)[1:-1]}' is not a checkpoint file")
    root_key = 'experiments_root' if is_train else 'results_root'
    root, name = path_opt.get(root_key), opt.get('name')
    if isinstance(root, str) and isinstance(name, str) and not any(
            item.startswith('name:') for item in probs.items):
        try:
            check_output_dir(Path(root) / name, 'experiment folder' if is_train else 'results folder')
        except OutputError as exc:
            probs.add(f"path.{root_key}", str(exc))
        else:
            # test.py also reads a checkpoint (training may resume from its own folder)
            ckpt_file = None if is_train or not isinstance(ckpt, str) or not ckpt else \
                resolve_checkpoint_path(ckpt)
            _check_apart_from_data(opt, probs, f"path.{root_key}", (
                'experiment folder' if is_train else 'results folder', Path(root) / name),
                [('path.pretrain_network_g', ckpt_file)] if ckpt_file else [])
    _check_masks_apart(opt, probs)


def _data_roots(opt: Dict[str, Any], roles: Sequence[str]) -> List[Tuple[str, str]]:
    """``(dotted key, folder)`` of each folder with a role in ``roles`` (``images``,
    ``masks``) that the datasets read, as the class registered under their ``type`` names them
    (``data_folders`` of the dataset contract)."""
    datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
    found = []
    for phase, ds in datasets.items():
        kind = ds.get('type', LOADER_FIELDS['type'].default) if isinstance(ds, dict) else None
        if isinstance(kind, str) and kind in DATASET_REGISTRY:
            found += [(f"datasets.{phase}.{key}", folder) for key, folder, role
                      in DATASET_REGISTRY.get(kind).data_folders(ds, phase) if role in roles]
    return found


def _check_apart_from_data(opt: Dict[str, Any], probs: Problems, key: str,
                           run_folder: Tuple[str, Path], others: Sequence[Tuple[str, Path]] = ()) -> None:
    """The run's output folder may not be, contain or lie inside a folder the datasets read
    (nor one of ``others``)."""
    from basicsr.utils.fs import overlap_problem
    problem = overlap_problem(run_folder, _data_roots(opt, ('images', 'masks')) + list(others))
    if problem:
        probs.add(key, problem)


def _check_masks_apart(opt: Dict[str, Any], probs: Problems) -> None:
    """A mask folder (written by ``scripts/gen_saliency.py``) may not be, contain or lie
    inside an image folder of the datasets."""
    from basicsr.utils.fs import overlap_problem
    images = _data_roots(opt, ('images',))
    for mask_key, mask in _data_roots(opt, ('masks',)):
        problem = overlap_problem(('mask folder', mask), images)
        if problem:
            probs.add(mask_key, problem)
