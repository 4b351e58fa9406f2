"""Reading an option file: fill defaults, apply ``--set`` overrides, run every check, and the
``--dry-run`` report."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import basicsr.archs  # noqa: F401  (fills ARCH_REGISTRY)
import basicsr.data  # noqa: F401  (fills DATASET_REGISTRY)
import basicsr.losses  # noqa: F401  (fills LOSS_REGISTRY)
import basicsr.metrics  # noqa: F401  (fills METRIC_REGISTRY)
import basicsr.models  # noqa: F401  (fills MODEL, OPTIMIZER and SCHEDULER registries)
from basicsr.archs import DEFAULT_NETWORK_G
from basicsr.options.datasets import validate_datasets
from basicsr.options.fields import Problems, fill_schema
from basicsr.options.paths import check_name, check_paths
from basicsr.options.registered import check_type_section
from basicsr.options.schema import TEST_SCHEMA, TRAIN_SCHEMA, documented_keys
from basicsr.options.training import validate_metrics, validate_train_sections, validate_val_precision
from basicsr.utils.dist import parse_device
from basicsr.utils.errors import ConfigError, brief
from basicsr.utils.logger import console
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY, did_you_mean, unknown_name
from basicsr.utils.yaml_io import dump_yaml, load_yaml_file, load_yaml_text, parse_scalar


def apply_overrides(opt: Dict[str, Any], overrides: Sequence[str], probs: Problems,
                    schema: Optional[Dict[str, Any]] = None) -> None:
    """Apply ``a.b.c=value`` strings (values parsed as YAML, no eval).

    The key must exist in the options or be documented for its section (see
    :func:`documented_keys`), so ``--set datasets.train.use_hflip=false`` works even when the
    file does not spell the key out.
    """
    schema = TRAIN_SCHEMA if schema is None else schema
    for item in overrides:
        if '=' not in item:
            probs.add('--set', f"{brief(item)} is not of the form key.path=value")
            continue
        dotted, raw = item.split('=', 1)
        dotted = dotted.strip()
        keys = dotted.split('.')
        node: Any = opt
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                key = int(key)
            elif not isinstance(node, dict) or key not in node:
                documented = documented_keys(node, keys[:i], schema)
                if last and key in documented:
                    pass  # a documented key the file leaves at its default
                else:
                    known = sorted(set(node) | set(documented)) if isinstance(node, dict) else []
                    prefix = ''.join(f"{k}." for k in keys[:i])
                    probs.add(f"--set {dotted}", f"no existing key '{'.'.join(keys[:i + 1])}'"
                              + did_you_mean(key, known, prefix, quote=False))
                    break
            if last:
                try:
                    node[key] = parse_scalar(raw)
                except ConfigError as exc:
                    probs.add(f"--set {dotted}", str(exc))
            else:
                node = node[key]


@dataclass
class LoadedOptions:
    """Result of :func:`load_options`."""
    opt: Dict[str, Any]
    original_text: str
    source: str
    warnings: List[str]


def load_options(path: str | Path, is_train: bool = True, overrides: Sequence[str] = (),
                 dry_run: bool = False) -> LoadedOptions:
    """Read, complete and validate an option file.

    ``--dry-run`` and the real run go through the same checks (data folders, masks, checkpoint
    paths, output folder, value ranges); only non-fatal remarks end up in ``warnings``. A
    training dry run also reads every training, mask and validation file in full and reports
    each damaged one (a real run skips those pairs, up to ``max_bad_fraction``).

    Args:
        path: YAML option file.
        is_train: validate against the training layout (else the test layout).
        overrides: ``key.path=value`` strings from ``--set``.
        dry_run: with ``is_train``, also check every data file (see above).

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    path = Path(path)
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    probs = Problems(str(path))
    opt = copy.deepcopy(data)
    schema = TRAIN_SCHEMA if is_train else TEST_SCHEMA
    extra = {'datasets', 'network_g'}
    fixed = {k: v for k, v in opt.items() if k not in extra}
    fill_schema({**schema}, fixed, '', probs)
    for key in extra:
        if key in opt:
            fixed[key] = opt[key]
    # unknown top-level keys are reported by fill_schema; keep order: schema keys then extras
    opt = fixed
    if 'network_g' not in opt:
        opt['network_g'] = copy.deepcopy(DEFAULT_NETWORK_G)
    if 'datasets' not in opt:
        probs.add('datasets', 'missing required key (mapping of phase -> dataset)')
    apply_overrides(opt, overrides, probs, schema)
    if overrides:  # re-check overridden values against the schema
        recheck = Problems(str(path))
        fill_schema(schema, {k: v for k, v in opt.items() if k not in extra}, '', recheck)
        probs.items.extend(i for i in recheck.items if i not in probs.items)
    check_name(opt.get('name'), 'name', probs)
    err = parse_device(opt.get('device', 'auto')) if isinstance(opt.get('device'), str) else None
    if err:
        probs.add('device', err)
    if opt.get('model_type') not in MODEL_REGISTRY:
        probs.add('model_type', unknown_name('model type', opt.get('model_type'),
                                             MODEL_REGISTRY.keys()))
    validate_datasets(opt, probs, is_train, scan=dry_run and is_train)
    if is_train:
        validate_train_sections(opt, probs)
    else:
        check_type_section(ARCH_REGISTRY, opt.get('network_g'), 'network_g.', probs)
    validate_metrics(opt, probs)
    validate_val_precision(opt, probs)
    check_paths(opt, probs, is_train)
    probs.raise_if_any()
    return LoadedOptions(opt, path.read_text(encoding='utf-8'), str(path), probs.warnings)


def written_network_g(loaded: LoadedOptions, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The ``network_g`` keys that the option file or a ``--set network_g.KEY=...`` spells out
    (not the defaults filled in), with their resolved values."""
    raw = load_yaml_text(loaded.original_text, loaded.source)
    section = raw.get('network_g') if isinstance(raw, dict) else None
    keys = set(section) if isinstance(section, dict) else set()
    for item in overrides:
        dotted = item.split('=', 1)[0].strip().split('.')
        if len(dotted) == 2 and dotted[0] == 'network_g' and '=' in item:
            keys.add(dotted[1])
    resolved = loaded.opt.get('network_g') or {}
    return {key: resolved[key] for key in sorted(keys) if key in resolved}


def print_dry_run(loaded: LoadedOptions) -> int:
    """``--dry-run``: warnings and the verdict on stderr, the resolved options on stdout."""
    for w in loaded.warnings:
        console(f"warning: {w}", err=True)
    console(dump_yaml(loaded.opt).rstrip())
    console(f"ok: {loaded.source} is valid", err=True)
    return 0
