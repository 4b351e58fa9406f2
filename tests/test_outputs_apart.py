"""One output rule for every writer: an output is never, contains, nor lies inside an input.

Each writer is run on tiny synthetic data with its output pointed at one of its inputs, spelled
in several ways (trailing slash, ``./``, ``..``, a symbolic link, a hard link, a folder inside
another). Every case must stop with exit 2 and one ``error:`` line naming both locations, and
leave the inputs byte for byte as they were.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.options import load_options
from basicsr.test import main as run_test_cli
from basicsr.train import main as train_main
from basicsr.utils.errors import ConfigError, OutputError
from basicsr.utils.fs import check_outputs_apart, overlap
from tests.conftest import train_options, write_pairs


def load_script(name: str):
    """The module behind ``scripts/<name>.py``: ``basicsr.tools.<name>``."""
    return importlib.import_module(f'basicsr.tools.{name}')


def snapshot(*folders: Path) -> Dict[str, bytes]:
    """Every file under ``folders`` with its bytes."""
    return {str(p): p.read_bytes() for f in folders for p in sorted(Path(f).rglob('*')) if p.is_file()}


def refused(capsys, code: int, *names: str) -> str:
    """Exit 2 and exactly one ``error:`` line that names every text in ``names``."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert 'Traceback' not in err
    lines = [ln for ln in err.splitlines() if ln.startswith('error: ')]
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def small_checkpoint(path: Path, channels: int = 2) -> Path:
    torch.manual_seed(0)
    torch.save({'network_g': {'type': 'DGFusion', 'channels': channels},
                'params': DGFusion(channels=channels).state_dict()}, path)
    return path


# ---------------------------------------------------------------- the rule itself

def test_overlap_sees_every_spelling_of_one_place(tmp_path, monkeypatch):
    (tmp_path / 'data' / 'vis').mkdir(parents=True)
    image = tmp_path / 'data' / 'vis' / 'a.png'
    image.write_bytes(b'png')
    os.link(image, tmp_path / 'hard.png')
    os.symlink(tmp_path / 'data' / 'vis', tmp_path / 'link')
    monkeypatch.chdir(tmp_path)
    assert overlap('data/vis/', 'data/vis') == 'same'
    assert overlap('./data/vis', 'data/vis') == 'same'
    assert overlap('data/vis/../vis', 'data/vis') == 'same'
    assert overlap(tmp_path / 'data' / 'vis', 'data/vis') == 'same'  # absolute vs relative
    assert overlap('link', 'data/vis') == 'same'
    assert overlap('hard.png', 'data/vis/a.png') == 'same'
    assert overlap('hard.png', 'data/vis') == 'linked'
    assert overlap('data/vis/masks', 'data/vis') == 'inside'
    assert overlap('link/new/deeper', 'data/vis') == 'inside'  # not yet there, through a link
    assert overlap('data', 'data/vis') == 'contains'
    assert overlap('.', 'link') == 'contains'
    assert overlap('data/vis2', 'data/vis') is None  # a name prefix is not a parent
    assert overlap('data/ir', 'data/vis') is None
    assert overlap('other.png', 'data/vis/a.png') is None


def test_check_outputs_apart_names_both_locations(tmp_path):
    (tmp_path / 'ir').mkdir()
    with pytest.raises(OutputError) as info:
        check_outputs_apart([('--out', tmp_path / 'ir' / 'm')], [('--vis', tmp_path / 'v'),
                                                                 ('--ir', tmp_path / 'ir')])
    text = str(info.value)
    assert '\n' not in text and f"--out {tmp_path / 'ir' / 'm'}" in text
    assert f"--ir {tmp_path / 'ir'}" in text and 'lies inside' in text
    check_outputs_apart([('--out', tmp_path / 'masks')], [('--ir', tmp_path / 'ir')])  # apart


# ---------------------------------------------------------------- gen_saliency.py

@pytest.mark.parametrize('spelling', ['vis', 'ir', 'vis/', './ir', 'ir/../vis', 'link', 'vis/masks'])
def test_gen_saliency_never_writes_masks_into_an_image_folder(tmp_path, capsys, monkeypatch, spelling):
    data = write_pairs(tmp_path, n=2, size=(6, 8), masks=False)
    os.symlink(data['ir'], tmp_path / 'link')
    monkeypatch.chdir(tmp_path)
    before = snapshot(data['vis'], data['ir'])
    code = load_script('gen_saliency').main(['--vis', 'vis', '--ir', 'ir', '--out', spelling,
                                             '--workers', '0'])
    line = refused(capsys, code, f'--out {Path(spelling)}')
    assert '--vis vis' in line or '--ir ir' in line
    assert snapshot(data['vis'], data['ir']) == before
    assert not (tmp_path / 'vis' / 'masks').exists()


def test_gen_saliency_option_file_mask_folder_equal_to_an_image_folder(tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path, n=2, size=(6, 8), masks=False)
    (tmp_path / 'opt.yml').write_text(
        'datasets:\n'
        '  train: {dataroot_vis: vis, dataroot_ir: ir, dataroot_mask: ./ir/}\n', encoding='utf-8')
    monkeypatch.chdir(tmp_path)
    before = snapshot(data['vis'], data['ir'])
    code = load_script('gen_saliency').main(['-opt', 'opt.yml', '--workers', '0'])
    refused(capsys, code, 'datasets.train.dataroot_mask ir', 'datasets.train.dataroot_ir ir')
    assert snapshot(data['vis'], data['ir']) == before


def test_gen_saliency_mask_folder_of_one_set_inside_images_of_another(tmp_path, capsys, monkeypatch):
    write_pairs(tmp_path / 'a', n=1, size=(6, 8), masks=False)
    write_pairs(tmp_path / 'b', n=1, size=(6, 8), masks=False)
    (tmp_path / 'opt.yml').write_text(
        'datasets:\n'
        '  train: {dataroot_vis: a/vis, dataroot_ir: a/ir, dataroot_mask: b/vis/masks}\n'
        '  val: {dataroot_vis: b/vis, dataroot_ir: b/ir}\n', encoding='utf-8')
    monkeypatch.chdir(tmp_path)
    code = load_script('gen_saliency').main(['-opt', 'opt.yml', '--workers', '0'])
    refused(capsys, code, 'b/vis/masks', 'datasets.val.dataroot_vis b/vis')
    assert not (tmp_path / 'b' / 'vis' / 'masks').exists()


@pytest.mark.parametrize('what', ['missing', 'file'])
def test_gen_saliency_bad_input_folder_is_a_setup_error(tmp_path, capsys, what):
    data = write_pairs(tmp_path, n=1, size=(6, 8), masks=False)
    vis = tmp_path / 'nope' if what == 'missing' else next(data['vis'].iterdir())
    code = load_script('gen_saliency').main(['--vis', str(vis), '--ir', str(data['ir']),
                                             '--out', str(tmp_path / 'masks'), '--workers', '0'])
    refused(capsys, code, f'--vis: {vis}')
    assert not (tmp_path / 'masks').exists()  # refused before any work


# ---------------------------------------------------------------- option files

def test_option_file_mask_folder_equal_to_infrared_folder(tmp_path, capsys):
    data = write_pairs(tmp_path / 'train')
    data = dict(data, mask=str(data['ir']) + '/')  # the same folder, spelled with a slash
    opt = tmp_path / 'train.yml'
    opt.write_text(train_options(tmp_path, data))
    with pytest.raises(ConfigError) as info:
        load_options(opt)
    assert 'datasets.train.dataroot_mask' in str(info.value) and str(data['ir']) in str(info.value)
    code = train_main(['-opt', str(opt), '--dry-run'])
    refused(capsys, code, 'datasets.train.dataroot_mask', f"datasets.train.dataroot_ir {data['ir']}")
    before = snapshot(data['ir'])
    code = train_main(['-opt', str(opt)])
    refused(capsys, code, 'datasets.train.dataroot_mask')
    assert snapshot(data['ir']) == before and not (tmp_path / 'experiments').exists()


def test_option_file_mask_folder_inside_visible_folder_through_a_link(tmp_path, capsys):
    data = write_pairs(tmp_path / 'train')
    os.symlink(data['vis'], tmp_path / 'vis_link')
    data['mask'].rename(data['vis'] / 'masks')  # masks kept inside the visible folder
    opt = tmp_path / 'train.yml'
    opt.write_text(train_options(tmp_path, dict(data, mask=tmp_path / 'vis_link' / 'masks')))
    code = train_main(['-opt', str(opt), '--dry-run'])
    refused(capsys, code, 'vis_link/masks', 'lies inside', 'datasets.train.dataroot_vis')


def test_experiment_folder_inside_a_data_folder(tmp_path, capsys):
    data = write_pairs(tmp_path / 'train')
    opt = tmp_path / 'train.yml'
    text = train_options(tmp_path, data).replace(f"experiments_root: {tmp_path / 'experiments'}",
                                                 f"experiments_root: {data['vis']}")
    opt.write_text(text)
    code = train_main(['-opt', str(opt), '--dry-run'])
    refused(capsys, code, 'path.experiments_root', f"datasets.train.dataroot_vis {data['vis']}")


def write_test_opt(tmp_path: Path, vis, ir, results_root, name: str, ckpt: Path) -> Path:
    opt = tmp_path / 'test.yml'
    opt.write_text(f"""name: {name}
device: cpu
datasets:
  test_1: {{name: set_a, dataroot_vis: {vis}, dataroot_ir: {ir}}}
path: {{results_root: {results_root}, pretrain_network_g: {ckpt}}}
""")
    return opt


@pytest.mark.parametrize('case', ['results', 'set', 'dotdot', 'contains'])
def test_test_py_results_folder_never_overwrites_the_inputs(tmp_path, capsys, case):
    ckpt = small_checkpoint(tmp_path / 'c2.pth')
    data = write_pairs(tmp_path / 'data', n=2, size=(12, 14), masks=False)
    vis, root, name = data['vis'], tmp_path / 'data', 'vis'  # results folder = dataroot_vis
    if case == 'set':  # fused images go to <results>/<name>/<set>: dataroot_vis is that folder
        vis = tmp_path / 'res' / 'exp' / 'set_a'
        write_pairs(tmp_path / 'res' / 'exp' / 'tmp', n=2, size=(12, 14), masks=False)
        (tmp_path / 'res' / 'exp' / 'tmp' / 'vis').rename(vis)
        root, name = tmp_path / 'res', 'exp'
    elif case == 'dotdot':
        root = tmp_path / 'data' / 'ir' / '..'
    elif case == 'contains':
        root, name = tmp_path, 'data'
    before = snapshot(vis, data['ir'])
    opt = write_test_opt(tmp_path, vis, data['ir'], root, name, ckpt)
    code = run_test_cli(['-opt', str(opt)])
    refused(capsys, code, 'path.results_root', 'datasets.test_1.dataroot_')
    assert snapshot(vis, data['ir']) == before
    code = run_test_cli(['-opt', str(opt), '--dry-run'])
    refused(capsys, code, 'path.results_root')


def test_test_py_results_folder_holding_the_checkpoint(tmp_path, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(12, 14), masks=False)
    (tmp_path / 'res' / 'exp' / 'checkpoints').mkdir(parents=True)
    ckpt = small_checkpoint(tmp_path / 'res' / 'exp' / 'checkpoints' / 'c2.pth')
    opt = write_test_opt(tmp_path, data['vis'], data['ir'], tmp_path / 'res', 'exp', ckpt.parent)
    code = run_test_cli(['-opt', str(opt)])
    refused(capsys, code, 'path.results_root', f"path.pretrain_network_g {ckpt}")
    assert sorted(p.name for p in (tmp_path / 'res' / 'exp').rglob('*')) == ['c2.pth', 'checkpoints']


# ---------------------------------------------------------------- evaluate.py

@pytest.mark.parametrize('target', ['vis_image', 'hard_link', 'fused_folder_csv', 'ir_folder'])
def test_evaluate_never_writes_its_table_over_an_input(tmp_path, capsys, target):
    data = write_pairs(tmp_path, n=2, size=(12, 14), masks=False)
    fused = tmp_path / 'fused'
    fused.mkdir()
    for p in data['vis'].iterdir():
        (fused / p.name).write_bytes(p.read_bytes())
    out = {'vis_image': data['vis'] / '000.png', 'hard_link': tmp_path / 'table.csv',
           'fused_folder_csv': fused / 'table.csv', 'ir_folder': str(data['ir']) + '/'}[target]
    if target == 'hard_link':
        os.link(data['ir'] / '001.png', out)
    before = snapshot(tmp_path)
    code = load_script('evaluate').main(['--fused', str(fused), '--vis', str(data['vis']),
                                         '--ir', str(data['ir']), '--out', str(out),
                                         '--workers', '1', '--metrics', 'EN'])
    refused(capsys, code, f'--out {Path(out)}')
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- fuse.py

@pytest.fixture
def fuse_inputs(tmp_path):
    data = write_pairs(tmp_path, n=2, size=(12, 14), masks=False)
    return data, small_checkpoint(tmp_path / 'c2.pth')


@pytest.mark.parametrize('case', ['folder_same', 'folder_inside', 'folder_contains', 'single_same',
                                  'single_hard_link', 'single_grid', 'weights'])
def test_fuse_never_writes_over_an_input(tmp_path, capsys, monkeypatch, fuse_inputs, case):
    data, ckpt = fuse_inputs
    monkeypatch.chdir(tmp_path)
    vis, ir = 'vis', 'ir'
    if case.startswith('single') or case == 'weights':
        vis, ir = 'vis/000.png', 'ir/000.png'
    out = {'folder_same': './vis/', 'folder_inside': 'ir/fused', 'folder_contains': '.',
           'single_same': 'ir/../vis/000.png', 'single_hard_link': 'copy.png',
           'single_grid': 'x.png', 'weights': 'model.png'}[case]
    if case == 'weights':  # a checkpoint under an image name, given as --out too
        ckpt = small_checkpoint(tmp_path / 'model.png')
    if case == 'single_hard_link':
        os.link(tmp_path / 'vis' / '000.png', tmp_path / 'copy.png')
    if case == 'single_grid':  # the fused file x.png is new, but its grid x_grid.png is --ir
        (tmp_path / 'x_grid.png').write_bytes((tmp_path / 'ir' / '000.png').read_bytes())
        out, ir = 'x.png', 'x_grid.png'
    before = snapshot(tmp_path)
    code = load_script('fuse').main(['--weights', str(ckpt), '--vis', vis, '--ir', ir,
                                     '--out', out, '--device', 'cpu', '--save', 'fused', 'grid'])
    refused(capsys, code, '--out')
    assert snapshot(tmp_path) == before


def test_fuse_video_output_equal_to_input_video(tmp_path, capsys, fuse_inputs):
    _, ckpt = fuse_inputs
    for name in ('vis.avi', 'ir.avi'):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*'MJPG'), 5, (16, 12))
        for k in range(2):
            writer.write(np.full((12, 16, 3), 40 * k, np.uint8))
        writer.release()
    before = snapshot(tmp_path)
    code = load_script('fuse').main(['--weights', str(ckpt), '--vis', str(tmp_path / 'vis.avi'),
                                     '--ir', str(tmp_path / 'ir.avi'), '--out',
                                     str(tmp_path / '.' / 'ir.avi'), '--device', 'cpu'])
    refused(capsys, code, '--out', f"--ir {tmp_path / 'ir.avi'}")
    assert snapshot(tmp_path) == before and not list(tmp_path.glob('.*partial*'))


# ---------------------------------------------------------------- the other writers

def test_convert_checkpoint_output_is_the_input_through_a_link(tmp_path, capsys):
    ckpt = small_checkpoint(tmp_path / 'c2.pth')
    os.symlink(ckpt, tmp_path / 'alias.pth')
    before = ckpt.read_bytes()
    code = load_script('convert_checkpoint').main(['--input', str(ckpt), '--output',
                                                   str(tmp_path / 'alias.pth'), '--to', 'published'])
    refused(capsys, code, f"--output {tmp_path / 'alias.pth'}", f"--input {ckpt}")
    assert ckpt.read_bytes() == before


def test_export_onnx_output_is_the_weights_file(tmp_path, capsys):
    ckpt = small_checkpoint(tmp_path / 'model.onnx')  # a checkpoint under an .onnx name
    before = ckpt.read_bytes()
    code = load_script('export_onnx').main(['--weights', str(ckpt), '--out', f"{tmp_path}/./model.onnx"])
    refused(capsys, code, '--out', f'--weights {ckpt}')
    assert ckpt.read_bytes() == before


def test_plot_curves_output_inside_the_validation_folder(tmp_path, capsys):
    run = tmp_path / 'run'
    (run / 'val').mkdir(parents=True)
    (run / 'train_log.jsonl').write_text('{"iter": 1, "total": 1.0}\n')
    code = load_script('plot_curves').main([str(run), '--out', str(run / 'val' / 'curves.png')])
    refused(capsys, code, '--out', 'validation folder')
    assert not (run / 'val' / 'curves.png').exists()


def test_reference_eval_work_folder_inside_the_data(tmp_path, capsys):
    (tmp_path / 'data').mkdir()
    ckpt = small_checkpoint(tmp_path / 'c2.pth')
    code = load_script('reference_eval').main(['--weights', str(ckpt), '--data', str(tmp_path / 'data'),
                                               '--work', str(tmp_path / 'data' / 'work'), '--no-card'])
    refused(capsys, code, '--work', f"--data {tmp_path / 'data'}")
    assert not (tmp_path / 'data' / 'work').exists()
