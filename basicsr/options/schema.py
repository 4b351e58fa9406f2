"""The option layout: the fixed sections of training and test files, the loader keys of a
dataset section, and the keys each section documents (for ``--set``)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from basicsr.metrics import CONVENTIONS, DEFAULT_CONVENTION
from basicsr.models.fusion_model import COMPILE_MODES
from basicsr.models.precision import PRECISIONS
from basicsr.options.fields import NUM, OPT_STR, POSITIVE, UNIT_OPEN_HIGH, Field, option
from basicsr.options.registered import constructor_params
from basicsr.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY,
                                    OPTIMIZER_REGISTRY, SCHEDULER_REGISTRY, Registry)

# Keys of a dataset section that belong to the loader, not to the dataset class.
LOADER_FIELDS: Dict[str, Field] = {
    'name': option(str, '', doc='label used in logs and result folders'),
    'type': option(str, 'PairedFusionDataset'),
    'batch_size_per_gpu': option(int, 1, minimum=1),
    'num_worker_per_gpu': option(int, 0, minimum=0),
}

VAL_PRECISION_DOC = ('autocast of the network when fusing (test.py, validation during training): '
                     'fp32 | bf16 (native bfloat16 only) | fp16 (CUDA); independent of train.precision')

TRAIN_SCHEMA: Dict[str, Any] = {
    'name': option(str),
    'model_type': option(str, 'FusionModel'),
    'device': option(str, 'auto', doc='auto | cpu | cuda | cuda:N'),
    'manual_seed': option(int, 0, minimum=0),
    'deterministic': option(bool, False),
    'path': {
        'experiments_root': option(str, 'experiments'),
        'results_root': option(str, 'results'),
        'pretrain_network_g': option(OPT_STR, None),
        'param_key_g': option(str, 'params_ema', choices=('params', 'params_ema')),
        'resume_state': option(OPT_STR, None),
    },
    'train': {
        'total_iter': option(int, minimum=1),
        'optim_g': option(dict, {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999]}),
        'scheduler': option((dict, type(None)), None),
        'losses': option(list),
        'ema_decay': option(NUM, 0.999, doc='0 = off', range=UNIT_OPEN_HIGH),
        'grad_clip': option((int, float, type(None)), None, doc='max gradient norm, null = off',
                        range=POSITIVE),
        'precision': option(str, 'fp32', choices=PRECISIONS,
                        doc='fp32 | bf16 (CPUs and GPUs with native bfloat16) | fp16 (CUDA)'),
        'use_amp': option(bool, False, doc='old name of precision: fp16'),
        'max_nonfinite_steps': option(int, 10, minimum=1),
        'max_minutes': option((int, float, type(None)), None, range=POSITIVE,
                          doc='wall-clock budget of this run: checkpoint and exit 0 when reached'),
        'compile': option(bool, False, doc='torch.compile the training forward'),
        'compile_mode': option(str, 'default', choices=COMPILE_MODES, doc='torch.compile mode'),
    },
    'val': {
        'val_freq': option(int, 0, doc='0 = no validation', minimum=0),
        'save_img': option(bool, True),
        'max_images': option((int, type(None)), None, minimum=1),
        'precision': option(str, 'fp32', choices=PRECISIONS, doc=VAL_PRECISION_DOC),
        'metrics': {
            'names': option(list, []),
            'convention': option(str, DEFAULT_CONVENTION, choices=CONVENTIONS),
        },
    },
    'logger': {
        'print_freq': option(int, 100, minimum=1),
        'save_checkpoint_freq': option(int, 5000, minimum=1),
        'keep_checkpoints': option(int, 3, doc='newest N periodic checkpoints kept, 0 = all', minimum=0),
        'use_tb_logger': option(bool, True),
    },
}
TEST_SCHEMA: Dict[str, Any] = {
    'name': option(str),
    'model_type': option(str, 'FusionModel'),
    'device': option(str, 'auto'),
    'manual_seed': option(int, 0, minimum=0),
    'path': {
        'results_root': option(str, 'results'),
        'pretrain_network_g': option(str),
        'param_key_g': option(str, 'params_ema', choices=('params', 'params_ema')),
    },
    'val': {
        'save_img': option(bool, True),
        'max_images': option((int, type(None)), None, doc='first N pairs of each set, null = all',
                         minimum=1),
        'precision': option(str, 'fp32', choices=PRECISIONS, doc=VAL_PRECISION_DOC),
        'metrics': {
            'names': option(list, []),
            'convention': option(str, DEFAULT_CONVENTION, choices=CONVENTIONS),
        },
    },
}


def documented_keys(node: Any, path: Sequence[Any], schema: Dict[str, Any]) -> List[str]:
    """Keys the option layout documents for the mapping ``node`` at dotted ``path``.

    Fixed sections: their schema keys. Registered sections (``datasets.<phase>``,
    ``network_g``, ``train.optim_g``, ``train.scheduler``, ``train.losses.<i>``): the
    constructor parameters of the class their ``type`` names (plus the loader keys).
    """
    if not isinstance(node, dict):
        return []
    path = [str(p) for p in path]

    def params(registry: Registry, default: Optional[str] = None, skip: Sequence[str] = ()) -> List[str]:
        name = node.get('type', default)
        return constructor_params(registry.get(name), skip) if name in registry else []

    if len(path) == 2 and path[0] == 'datasets':
        return list(LOADER_FIELDS) + ['phase'] + params(DATASET_REGISTRY, 'PairedFusionDataset')
    if path == ['network_g']:
        return params(ARCH_REGISTRY)
    if path == ['train', 'optim_g']:
        return params(OPTIMIZER_REGISTRY, skip=('params',))
    if path == ['train', 'scheduler']:
        return params(SCHEDULER_REGISTRY, skip=('optimizer',))
    if len(path) == 3 and path[:2] == ['train', 'losses']:
        return params(LOSS_REGISTRY)
    section: Any = schema
    for key in path:
        section = section.get(key) if isinstance(section, dict) else None
    return list(section) if isinstance(section, dict) else []
