"""Benchmark layouts: a miniature synthetic copy of each public layout trains, tests and fuses;
each quirk (DroneVehicle's frame, VTUAV's sequences and sizes, DGFusion's masks) on its own."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import yaml

from basicsr.options import load_options
from basicsr.data.fusion_dataset import PairedFusionDataset
from basicsr.data.layouts import LAYOUTS, get_layout, layout_pairs
from basicsr.utils.errors import ConfigError, DataError
from tests.test_scripts_fuse_benchmark import load_script

FRAME = (40, 48)        # (H, W) of every miniature pair once the quirks are applied
BORDER = 4              # DroneVehicle's white frame, scaled down with the frames
SPLITS = {'dronevehicle': ('train', 'test'), 'llvip': ('train', 'test'), 'msrs': ('train', 'test'),
          'dgfusion': ('train', 'test'), 'm3fd': (None,), 'vtuav': (None,)}
N_PAIRS = 2


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _pair(rng: np.random.Generator, size=FRAME) -> Tuple[np.ndarray, np.ndarray]:
    h, w = size
    return (rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            rng.integers(0, 256, (h, w), dtype=np.uint8))


def _framed(img: np.ndarray, border: int) -> np.ndarray:
    """``img`` inside a white frame ``border`` pixels wide, as DroneVehicle stores its frames."""
    pad = ((border, border), (border, border)) + ((0, 0),) * (img.ndim - 2)
    return np.pad(img, pad, constant_values=255)


def build_layout(root: Path, name: str, n: int = N_PAIRS, seed: int = 0) -> Dict[str, List[str]]:
    """Write a miniature copy of layout ``name`` under ``root``; returns the pair names per split
    (key '' for layouts without split). VTUAV: infrared frames at half the visible size."""
    rng = np.random.default_rng(seed)
    names: Dict[str, List[str]] = {}
    for split in SPLITS[name]:
        stems = [f"{split or 'all'}{i:02d}" for i in range(n)]
        names[split or ''] = stems
        for stem in stems:
            vis, ir = _pair(rng)
            if name == 'dronevehicle':
                _write(root / split / f"{split}img" / f"{stem}.jpg", _framed(vis, BORDER))
                _write(root / split / f"{split}imgr" / f"{stem}.jpg", _framed(ir, BORDER))
            elif name == 'llvip':
                _write(root / 'visible' / split / f"{stem}.jpg", vis)
                _write(root / 'infrared' / split / f"{stem}.jpg", ir)
            elif name == 'msrs':
                _write(root / split / 'vi' / f"{stem}.png", vis)
                _write(root / split / 'ir' / f"{stem}.png", ir)
            elif name == 'm3fd':
                _write(root / 'Vis' / f"{stem}.png", vis)
                _write(root / 'Ir' / f"{stem}.png", ir)
            elif name == 'dgfusion':
                _write(root / split / 'Vis' / f"{stem}.png", vis)
                _write(root / split / 'Ir' / f"{stem}.png", ir)
                _write(root / split / 'MASK' / f"{stem}.png",
                       (rng.random(FRAME) > 0.5).astype(np.uint8) * 255)
    if name == 'vtuav':  # two sequences; frame names repeat across sequences
        names[''] = []
        for seq in ('car_001', 'person_002'):
            for i in range(2):
                vis, _ = _pair(rng)
                _, ir = _pair(rng, (FRAME[0] // 2, FRAME[1] // 2))
                _write(root / seq / 'rgb' / f"{i:06d}.jpg", vis)
                _write(root / seq / 'ir' / f"{i:06d}.jpg", ir)
                names[''].append(f"{seq}/{i:06d}")
    return names


def extra_keys(name: str) -> Dict[str, object]:
    """Options of the miniature copy beyond layout/root/split: the scaled-down frame."""
    return {'border': BORDER} if name == 'dronevehicle' else {}


def dataset_opt(name: str, root: Path, split, **extra) -> Dict[str, object]:
    opt = {'layout': name, 'root': str(root), **extra_keys(name), **extra}
    if split:
        opt['split'] = split
    return opt


def train_yaml(tmp: Path, name: str, root: Path) -> Path:
    """A tiny training run (channels 2, patch 16, 2 iterations) on the layout's train split."""
    train_split, test_split = SPLITS[name][0], SPLITS[name][-1]
    opt = {
        'name': f"lay_{name}", 'device': 'cpu', 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'train', **dataset_opt(name, root, train_split), 'phase': 'train',
                      'patch_size': 16, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0},
            'val': {'name': 'val', **dataset_opt(name, root, test_split)},
        },
        'network_g': {'type': 'DGFusion', 'channels': 2},
        'path': {'experiments_root': str(tmp / 'experiments')},
        'train': {'total_iter': 2, 'ema_decay': 0.9,
                  'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
                  'losses': [{'type': 'SaliencyMaskL1Loss', 'loss_weight': 3.0},
                             {'type': 'MaxIntensityLoss', 'loss_weight': 10.0}]},
        'val': {'val_freq': 2, 'save_img': True},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    path = tmp / f"train_{name}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def eval_yaml(tmp: Path, name: str, root: Path, ckpt: Path) -> Path:
    test_split = SPLITS[name][-1]
    opt = {'name': f"lay_{name}_test", 'device': 'cpu',
           'datasets': {'test_1': {'name': 'bench', **dataset_opt(name, root, test_split)}},
           'path': {'results_root': str(tmp / 'results'), 'pretrain_network_g': str(ckpt)},
           'val': {'save_img': True, 'metrics': {'names': ['EN', 'SD']}}}
    path = tmp / f"test_{name}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def fused_files(folder: Path) -> Dict[str, Tuple[int, int]]:
    """``<stem relative to folder>`` -> (H, W) of every fused PNG below ``folder``."""
    return {str(p.relative_to(folder).with_suffix('')): cv2.imread(str(p)).shape[:2]
            for p in sorted(folder.rglob('*.png'))}


# ---------------------------------------------------------------- end to end, every layout

@pytest.fixture
def one_thread():
    """Tiny images: thread start-up costs more than it saves on a busy machine."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize('name', LAYOUTS)
def test_layout_trains_tests_and_fuses(tmp_path, name, capsys, one_thread):
    from basicsr.test import main as test_main
    from basicsr.train import main as train_main
    root = tmp_path / name
    names = build_layout(root, name)
    test_names = names[SPLITS[name][-1] or '']

    assert train_main(['-opt', str(train_yaml(tmp_path, name, root))]) == 0
    exp = tmp_path / 'experiments' / f"lay_{name}"
    ckpt = exp / 'checkpoints'
    assert (ckpt / 'latest').is_file()
    assert fused_files(exp / 'visualization' / 'iter_00000002') == {s: FRAME for s in test_names}

    assert test_main(['-opt', str(eval_yaml(tmp_path, name, root, ckpt))]) == 0
    out = tmp_path / 'results' / f"lay_{name}_test" / 'bench'
    assert fused_files(out) == {s: FRAME for s in test_names}
    with open(out / 'metrics_cddfuse.csv', newline='') as f:
        rows = [r['image'] for r in csv.DictReader(f) if r['image'] != 'mean']
    assert rows == test_names

    split = SPLITS[name][-1]
    args = ['--weights', ckpt, '--layout', name, '--root', root, '--out', tmp_path / 'fused']
    args += ['--split', split] if split else []
    args += ['--border', BORDER] if name == 'dronevehicle' else []
    code = load_script('fuse').main([str(a) for a in args])
    assert code == 0, capsys.readouterr().err
    assert fused_files(tmp_path / 'fused') == {s: FRAME for s in test_names}


# ---------------------------------------------------------------- quirks

def test_dronevehicle_border_is_cut_exactly(tmp_path):
    root = tmp_path / 'dv'
    rng = np.random.default_rng(3)
    vis, ir = _pair(rng)
    _write(root / 'test' / 'testimg' / '00001.png', _framed(vis[..., ::-1], 7))  # BGR on disk
    _write(root / 'test' / 'testimgr' / '00001.png', _framed(ir, 7))
    ds = PairedFusionDataset(layout='dronevehicle', root=str(root), split='test', border=7)
    pair = ds.read(0)
    assert pair.size == FRAME
    np.testing.assert_array_equal(pair.vis_u8, vis)
    np.testing.assert_array_equal(pair.ir_u8, ir)
    # the default is the published frame: 100 pixels per side
    assert PairedFusionDataset(layout='dronevehicle', root=str(root), split='test').border == 100
    with pytest.raises(DataError, match=r'00001\.png is 54x62: too small to cut a 100-pixel border'):
        PairedFusionDataset(layout='dronevehicle', root=str(root), split='test').read(0)


def test_dronevehicle_border_in_training_crops(tmp_path):
    """Training reads the frame without its border: every crop avoids the white frame."""
    root = tmp_path / 'dv'
    rng = np.random.default_rng(4)
    for i in range(2):
        vis, ir = _pair(rng)
        vis, ir = np.minimum(vis, 200), np.minimum(ir, 200)  # no white inside the frame
        _write(root / 'train' / 'trainimg' / f"{i}.png", _framed(vis, BORDER))
        _write(root / 'train' / 'trainimgr' / f"{i}.png", _framed(ir, BORDER))
    ds = PairedFusionDataset(layout='dronevehicle', root=str(root), split='train', border=BORDER,
                             phase='train', patch_size=FRAME[0], use_hflip=False, use_rot=False)
    for seed in range(6):
        item = ds[(0, seed)]
        assert item['vis'].max() <= 200 / 255 + 1e-6 and item['ir'].max() <= 200 / 255 + 1e-6


@pytest.mark.parametrize('resize, size', [(None, FRAME), ('ir', FRAME),
                                          ('vis', (FRAME[0] // 2, FRAME[1] // 2))])
def test_vtuav_sequences_and_resampling(tmp_path, resize, size):
    root = tmp_path / 'vtuav'
    build_layout(root, 'vtuav')
    ds = PairedFusionDataset(layout='vtuav', root=str(root), resize=resize)
    assert [p['stem'] for p in ds.pairs] == ['car_001/000000', 'car_001/000001',
                                             'person_002/000000', 'person_002/000001']
    assert ds.pairs[2]['vis'] == root / 'person_002' / 'rgb' / '000000.jpg'
    pair = ds.read(0)
    assert pair.size == size and tuple(pair.ir.shape[1:]) == size
    assert pair.ir_u8.shape[:2] == size and pair.vis_u8.shape[:2] == size
    train = PairedFusionDataset(layout='vtuav', root=str(root), resize=resize, phase='train',
                                patch_size=16)
    item = train[(0, 0)]
    assert item['vis'].shape == (3, 16, 16) and item['mask'].shape == (1, 16, 16)


def test_vtuav_resampled_infrared_is_the_resized_frame(tmp_path):
    """resize: ir gives exactly OpenCV's linear enlargement of the stored infrared frame."""
    root = tmp_path / 'vtuav'
    build_layout(root, 'vtuav')
    pair = PairedFusionDataset(layout='vtuav', root=str(root)).read(1)
    ir = cv2.imread(str(root / 'car_001' / 'ir' / '000001.jpg'), cv2.IMREAD_UNCHANGED)
    expected = cv2.resize(ir, FRAME[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(pair.ir_u8, expected)


def test_pairing_names_and_unmatched_frames(tmp_path):
    root = tmp_path / 'llvip'
    build_layout(root, 'llvip', n=3)
    (root / 'infrared' / 'test' / 'test01.jpg').unlink()
    pairs, unmatched = layout_pairs(get_layout('llvip'), root, 'test')
    assert [p['stem'] for p in pairs] == ['test00', 'test02']
    assert all(p['vis'].parent == root / 'visible' / 'test' for p in pairs)
    assert unmatched[0][0] == 'test01' and 'no infrared image' in unmatched[0][1]
    with pytest.raises(DataError, match='unmatched image names'):
        layout_pairs(get_layout('llvip'), root, 'test', strict=True)


def test_dgfusion_masks_come_from_the_benchmark(tmp_path):
    root = tmp_path / 'dgf'
    build_layout(root, 'dgfusion')
    ds = PairedFusionDataset(layout='dgfusion', root=str(root), split='train', phase='train',
                             patch_size=FRAME[0], use_hflip=False, use_rot=False)
    assert ds.mask_source == 'folder' and ds.pairs[0]['mask'] == root / 'train' / 'MASK' / 'train00.png'
    stored = cv2.imread(str(ds.pairs[0]['mask']), cv2.IMREAD_GRAYSCALE) / 255.0
    item = ds[(0, 1)]
    mask = item['mask'][0].numpy()
    assert any(np.array_equal(mask, stored[y:y + FRAME[0], x:x + FRAME[0]])
               for y in range(1) for x in range(FRAME[1] - FRAME[0] + 1))
    auto = PairedFusionDataset(layout='dgfusion', root=str(root), split='train', phase='train',
                               dataroot_mask='auto', patch_size=16)
    assert auto.mask_source == 'auto'


def test_layout_masks_from_gen_saliency_are_found_by_training(tmp_path):
    """gen_saliency --layout writes OUT/<stem>.png (VTUAV: OUT/<seq>/<frame>.png), of the pair
    as training reads it; a training set with dataroot_mask: OUT reads them back."""
    from basicsr.data.saliency import saliency_mask_u8
    root = tmp_path / 'vtuav'
    build_layout(root, 'vtuav')
    out = tmp_path / 'masks'
    code = load_script('gen_saliency').main(['--layout', 'vtuav', '--root', str(root), '--out',
                                             str(out), '--workers', '0'])
    assert code == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*.png')) == [
        'car_001/000000.png', 'car_001/000001.png', 'person_002/000000.png', 'person_002/000001.png']
    vis = cv2.imread(str(root / 'car_001' / 'rgb' / '000001.jpg'))[..., ::-1]
    ir = cv2.imread(str(root / 'car_001' / 'ir' / '000001.jpg'), cv2.IMREAD_UNCHANGED)
    ir = cv2.resize(ir, FRAME[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(cv2.imread(str(out / 'car_001' / '000001.png'), cv2.IMREAD_UNCHANGED),
                                  saliency_mask_u8(np.ascontiguousarray(vis), ir))
    ds = PairedFusionDataset(layout='vtuav', root=str(root), dataroot_mask=str(out), phase='train',
                             patch_size=16)
    assert ds.mask_source == 'folder' and ds.pairs[1]['mask'] == out / 'car_001' / '000001.png'


def test_gen_saliency_opt_fills_the_dgfusion_mask_folder(tmp_path, capsys):
    root = tmp_path / 'dgf'
    build_layout(root, 'dgfusion')
    for split in ('train', 'test'):
        for mask in (root / split / 'MASK').iterdir():
            mask.unlink()
    opt = tmp_path / 'opt.yml'
    opt.write_text(yaml.safe_dump({'datasets': {'train': dataset_opt('dgfusion', root, 'train'),
                                                'val': dataset_opt('dgfusion', root, 'test')}}))
    assert load_script('gen_saliency').main(['-opt', str(opt), '--workers', '0']) == 0
    assert sorted(p.name for p in (root / 'train' / 'MASK').iterdir()) == ['train00.png', 'train01.png']
    assert not any((root / 'test' / 'MASK').iterdir())  # the validation set reads no masks
    assert '2 written' in capsys.readouterr().out


# ---------------------------------------------------------------- option checks

def _opt_file(tmp_path: Path, train: Dict[str, object]) -> Path:
    path = tmp_path / 'o.yml'
    path.write_text(yaml.safe_dump({
        'name': 'o', 'device': 'cpu',
        'datasets': {'train': {'phase': 'train', 'patch_size': 16, **train}},
        'network_g': {'type': 'DGFusion', 'channels': 2},
        'path': {'experiments_root': str(tmp_path / 'exp')},
        'train': {'total_iter': 1, 'losses': [{'type': 'MaxIntensityLoss'}]}}))
    return path


def _problem(path: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_options(path, overrides=list(overrides))
    return str(info.value)


def test_unknown_layout_suggests_the_closest(tmp_path):
    msg = _problem(_opt_file(tmp_path, {'layout': 'lvip', 'root': str(tmp_path)}))
    assert "datasets.train.layout: unknown layout 'lvip'" in msg and "did you mean 'llvip'?" in msg
    assert '\n' not in msg


def test_missing_split_folder_is_one_line_naming_the_path(tmp_path):
    root = tmp_path / 'msrs'
    build_layout(root, 'msrs')
    path = _opt_file(tmp_path, dataset_opt('msrs', root, 'train'))
    load_options(path)  # the complete copy is valid
    (root / 'train' / 'ir').rename(root / 'train' / 'infrared')
    msg = _problem(path)
    assert msg == (f"{path}: datasets.train.root: folder '{root / 'train' / 'ir'}' does not exist "
                   f"(layout msrs: {{train,test}}/vi + {{train,test}}/ir)")


@pytest.mark.parametrize('split, needle', [
    (None, 'datasets.train.split: required by layout llvip (one of train, test)'),
    ('val', "datasets.train.split: 'val' is not a split of layout llvip (one of train, test)"),
    ('tset', "did you mean 'test'?")])
def test_split_is_checked(tmp_path, split, needle):
    root = tmp_path / 'llvip'
    build_layout(root, 'llvip')
    assert needle in _problem(_opt_file(tmp_path, dataset_opt('llvip', root, split)))


def test_layout_without_split_refuses_one(tmp_path):
    root = tmp_path / 'm3fd'
    build_layout(root, 'm3fd')
    msg = _problem(_opt_file(tmp_path, {**dataset_opt('m3fd', root, None), 'split': 'train'}))
    assert "datasets.train.split: 'train': layout m3fd has no split" in msg


def test_layout_and_dataroots_exclude_each_other(tmp_path):
    root = tmp_path / 'msrs'
    build_layout(root, 'msrs')
    msg = _problem(_opt_file(tmp_path, {**dataset_opt('msrs', root, 'train'),
                                        'dataroot_vis': str(root / 'train' / 'vi')}))
    assert 'datasets.train.dataroot_vis: excludes layout' in msg
    with pytest.raises(ConfigError, match='exclude each other'):
        PairedFusionDataset(dataroot_vis=str(root / 'train' / 'vi'), layout='msrs', root=str(root),
                            split='train')


def test_neither_layout_nor_dataroots(tmp_path):
    msg = _problem(_opt_file(tmp_path, {'dataroot_mask': 'auto'}))
    assert 'datasets.train.dataroot_vis: missing: a folder of images (or give layout and root' in msg


def test_layout_by_set_override(tmp_path):
    """--set switches a file's dataset to a layout; the layout's mask folder must exist."""
    root = tmp_path / 'dgf'
    build_layout(root, 'dgfusion')
    path = _opt_file(tmp_path, {'layout': 'msrs', 'root': str(tmp_path / 'nowhere'), 'split': 'train'})
    loaded = load_options(path, overrides=['datasets.train.layout=dgfusion',
                                           f'datasets.train.root={root}'])
    assert loaded.opt['datasets']['train']['layout'] == 'dgfusion'
    for mask in (root / 'train' / 'MASK').iterdir():
        mask.unlink()
    (root / 'train' / 'MASK').rmdir()
    msg = _problem(path, ['datasets.train.layout=dgfusion', f'datasets.train.root={root}'])
    assert f"folder '{root / 'train' / 'MASK'}' does not exist" in msg and 'gen_saliency.py' in msg


def test_fuse_layout_bad_split_is_setup_error(tmp_path, capsys):
    root = tmp_path / 'msrs'
    build_layout(root, 'msrs')
    code = load_script('fuse').main(['--engine', 'average', '--layout', 'msrs', '--root', str(root),
                                     '--split', 'val', '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert code == 2 and "--split: 'val' is not a split of layout msrs" in err
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('script', ['fuse', 'gen_saliency'])
@pytest.mark.parametrize('args, needle', [
    (['--layout', 'msrs', '--root', 'r', '--vis', 'v', '--ir', 'i'], 'give either --layout'),
    (['--vis', 'v', '--ir', 'i', '--border', '4'], 'needs --layout'),
    (['--layout', 'msrs', '--split', 'test'], 'needs --root'),
    (['--layout', 'lvip', '--root', 'r'], "invalid choice: 'lvip'")])
def test_layout_flags_are_checked(tmp_path, capsys, script, args, needle):
    with pytest.raises(SystemExit) as info:
        load_script(script).main(args + ['--out', str(tmp_path / 'o')])
    assert info.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize('extra, needle', [
    ({'root': 'nowhere/MSRS'}, "datasets.train.root: folder 'nowhere/MSRS' does not exist (layout msrs:"),
    ({'border': -1}, 'datasets.train.border: must be >= 0, got -1'),
    ({'resize': 'infrared'}, "datasets.train.resize: 'infrared' is not one of ir, vis"),
    ({'root': None}, 'datasets.train.root: missing: the folder of the msrs benchmark')])
def test_layout_values_are_checked(tmp_path, extra, needle):
    root = tmp_path / 'msrs'
    build_layout(root, 'msrs')
    assert needle in _problem(_opt_file(tmp_path, {**dataset_opt('msrs', root, 'train'), **extra}))


def test_layout_attributes_given_as_class_keywords():
    from basicsr.data.layouts import Layout
    Plain = type('Plain', (Layout,), {}, name='plain', vis='a/{split}', ir='b/{split}',
                 splits=('x',))
    assert (Plain.name, Plain.vis, Plain.ir, Plain.splits, Plain.border) == (
        'plain', 'a/{split}', 'b/{split}', ('x',), 0)
    with pytest.raises(TypeError, match='vsi is no layout attribute'):
        type('Typo', (Layout,), {}, vsi='a')
