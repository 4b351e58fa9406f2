"""The shipped reference model, its model card, and the tools that made them: weight-free
baselines, the curves exporter and the evaluation script that writes the card."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.data.download import main as download_main
from basicsr.inference import fuse, load_model, read_pair
from basicsr.inference.baselines import PixelAverage, PixelMaximum
from basicsr.inference.loader import REFERENCE_WEIGHTS
from basicsr.utils.plotting import moving_average, nice_ticks
from tests.conftest import REPO, write_pairs
from tests.test_scripts_fuse_benchmark import load_script, run_fuse, run_script

CARD = REPO / 'pretrained_model' / 'README.md'
EVAL_DIR = REPO / 'pretrained_model' / 'eval'
SHARED = REPO.parent / 'shared' / 'data'
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason='../shared/data is not present')
METRICS = ('EN', 'SD', 'SF', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM')


# ---------------------------------------------------------------- the shipped file

def test_reference_file_loads_safely_with_its_width_and_size():
    assert REFERENCE_WEIGHTS.is_file(), f"{REFERENCE_WEIGHTS} is not in the checkout"
    assert REFERENCE_WEIGHTS.stat().st_size <= 15 * 2 ** 20
    ckpt = torch.load(REFERENCE_WEIGHTS, map_location='cpu', weights_only=True)
    assert ckpt['format'] == 'dgfusion-ckpt-v1'
    assert ckpt['network_g'] == {'type': 'DGFusion', 'channels': 16}
    assert set(ckpt) == {'format', 'network_g', 'params'}  # EMA weights only, no optimiser state
    net = load_model(REFERENCE_WEIGHTS, 'cpu').net
    assert net.channels == 16
    assert sum(p.numel() for p in net.parameters()) == 3_091_971
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_card_states_the_files_sha256():
    digest = hashlib.sha256(REFERENCE_WEIGHTS.read_bytes()).hexdigest()
    stated = re.findall(r'SHA-256 `([0-9a-f]{64})`', CARD.read_text(encoding='utf-8'))
    assert stated == [digest]


def test_fuse_script_defaults_to_the_reference_model(tmp_path, capsys):
    data = write_pairs(tmp_path / 'd', n=1, size=(33, 40), masks=False)
    vis, ir = data['vis'] / '000.png', data['ir'] / '000.png'
    out = tmp_path / 'fused.png'
    code, stdout, err = run_fuse(capsys, '--vis', vis, '--ir', ir, '--out', out)
    assert code == 0, err
    assert str(REFERENCE_WEIGHTS.name) in stdout
    pair = read_pair(vis, ir)
    net = load_model(REFERENCE_WEIGHTS, 'cpu').net
    expected = (fuse(net, pair.vis[None], pair.ir[None])[0].permute(1, 2, 0).numpy() * 255).round()
    got = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert got.shape == (33, 40, 3)
    assert np.abs(got.astype(float) - expected).max() <= 1


@needs_shared
def test_reference_model_fuses_a_small_real_pair():
    pair = read_pair(SHARED / 'crops' / 'vi' / 'manWalking.png', SHARED / 'crops' / 'ir' / 'manWalking.png')
    net = load_model(REFERENCE_WEIGHTS, 'cpu').net
    fused = fuse(net, pair.vis[None], pair.ir[None])
    assert fused.shape == (1, 3, 83, 121)
    assert torch.isfinite(fused).all()
    # a fusion, not a copy of one input: the fused luminance keeps the brighter (infrared)
    # person and the visible texture, so it differs from both sources
    y = fused[0].mul(torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0)
    vis_y = pair.vis.mul(torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0)
    assert (y - vis_y).abs().mean() > 0.01 and (y - pair.ir[0]).abs().mean() > 0.01


# ---------------------------------------------------------------- the model card's tables

def read_rows(path: Path):
    with open(path, newline='', encoding='utf-8') as fh:
        return [r for r in csv.DictReader(fh)]


def card_table(title_start: str):
    """Metric names and ``method -> [floats]`` of the card table under the heading that starts
    with ``title_start``."""
    text = CARD.read_text(encoding='utf-8')
    block = text.split(f"#### {title_start}", 1)[1].split('####', 1)[0]
    rows = [[c.strip() for c in line.strip().strip('|').split('|')]
            for line in block.splitlines() if line.startswith('|')]
    names = rows[0][1:]
    out = {r[0]: [float(c) for c in r[1:]] for r in rows[2:]
           if all(re.fullmatch(r'-?\d+\.\d+', c) for c in r[1:])}
    return names, out


@pytest.mark.parametrize('name, title', [('roadscene_val_cddfuse', 'RoadScene val'),
                                         ('tno_cddfuse', 'TNO'), ('vifb_cddfuse', 'VIFB (21 pairs), `cddfuse`'),
                                         ('vifb_vifb', 'VIFB (21 pairs), `vifb`')])
def test_card_tables_are_the_means_of_the_shipped_csvs(name, title):
    rows = read_rows(EVAL_DIR / f"{name}.csv")
    names, table = card_table(title)
    expected_names = ['EN', 'SD', 'SF', 'MI', 'Qabf', 'SSIM'] if name == 'vifb_vifb' else list(METRICS)
    assert names == expected_names
    methods = sorted({r['method'] for r in rows})
    assert 'ours' in methods and 'average' in methods and 'maximum' in methods
    for method in methods:
        per_image = [r for r in rows if r['method'] == method and r['image'] not in ('mean', 'images')]
        means = [np.mean([float(r[m]) for r in per_image]) for m in names]
        label = {'ours': next(k for k in table if k.endswith('(ours)**')),
                 'average': 'baseline: pixel average', 'maximum': 'baseline: pixel maximum'
                 }.get(method, method)
        np.testing.assert_allclose(table[label], means, atol=5e-5, err_msg=f"{name} {method}")
    if name.startswith('vifb'):
        refs = ['IFCNN', 'SeAFusion', 'U2Fusion', 'VSMWLS']
        assert len([r for r in rows if r['method'] == 'ours' and r['image'] != 'mean']) == 21
        median = np.median([table[m] for m in refs], axis=0)
        np.testing.assert_allclose(table['median of the 4 methods'], median, atol=5e-5)


@needs_shared
@pytest.mark.slow
def test_test_options_on_downloaded_data_give_the_cards_numbers(tmp_path):
    """A user's path on a fresh clone: the downloader (here from a local mirror) fills
    ``datasets/``, then ``test.py -opt options/test/DGFusion.yml`` gives the card's per-image
    values (its TNO set, cut to the two smallest pairs to keep the check short)."""
    stems = ['05', '08']
    assert download_main(['tno', '--from', str(SHARED), '--to', str(tmp_path / 'datasets')]) == 0
    for role in ('vis', 'ir'):
        for path in (tmp_path / 'datasets' / 'TNO' / role).iterdir():
            if path.stem not in stems:
                path.unlink()
    (tmp_path / 'pretrained_model').symlink_to(REPO / 'pretrained_model')
    opt = yaml.safe_load((REPO / 'options' / 'test' / 'DGFusion.yml').read_text(encoding='utf-8'))
    opt['datasets'] = {'test_1': opt['datasets']['test_2']}
    assert opt['datasets']['test_1']['name'] == 'TNO'
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump(opt), encoding='utf-8')
    res = subprocess.run([sys.executable, str(REPO / 'test.py'), '-opt', 'opt.yml'], cwd=tmp_path,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {r['image']: r for r in read_rows(tmp_path / 'results' / opt['name'] / 'TNO'
                                              / 'metrics_cddfuse.csv')}
    shipped = {r['image']: r for r in read_rows(EVAL_DIR / 'tno_cddfuse.csv') if r['method'] == 'ours'}
    for stem in stems:
        got = [float(rows[stem][m]) for m in METRICS]
        want = [float(shipped[stem][m]) for m in METRICS]
        # a rounding flip of a few 8-bit pixels across CPUs, as in the evaluation script's check
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3, err_msg=stem)


@needs_shared
@pytest.mark.slow
def test_card_rows_are_reproduced_by_the_evaluation_script(tmp_path):
    """Re-run scripts/reference_eval.py on two VIFB pairs: same per-image rows as shipped."""
    stems = ['carLight', 'fight']
    assert download_main(['vifb', '--from', str(SHARED), '--to', str(tmp_path / 'datasets')]) == 0
    res = run_script('reference_eval', '--sets', 'vifb', '--images', *stems, '--no-card',
                     '--data', tmp_path / 'datasets', '--work', tmp_path / 'work',
                     '--out-dir', tmp_path / 'eval', '--workers', 2)
    assert res.returncode == 0, res.stderr[-2000:]
    for conv in ('cddfuse', 'vifb'):
        new = {(r['method'], r['image']): r for r in read_rows(tmp_path / 'eval' / f"vifb_{conv}.csv")}
        shipped = {(r['method'], r['image']): r for r in read_rows(EVAL_DIR / f"vifb_{conv}.csv")}
        methods = {m for m, _ in new}
        assert methods == {'ours', 'average', 'maximum', 'IFCNN', 'SeAFusion', 'U2Fusion', 'VSMWLS'}
        for method in methods:
            for stem in stems:
                names = [k for k in new[method, stem] if k not in ('method', 'image')]
                assert names == [k for k in shipped[method, stem] if k not in ('method', 'image')]
                a = [float(new[method, stem][m]) for m in names]
                b = [float(shipped[method, stem][m]) for m in names]
                # ours may differ by a rounding flip of a few 8-bit pixels across CPUs
                tol = 2e-3 if method == 'ours' else 1e-9
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{conv} {method} {stem}")


# ---------------------------------------------------------------- baselines

def test_baselines_are_the_pixel_average_and_maximum():
    a = torch.tensor([[[[0.0, 0.2], [1.0, 0.5]]]])
    b = torch.tensor([[[[1.0, 0.4], [0.0, 0.5]]]])
    assert torch.equal(PixelAverage()(a, b), torch.tensor([[[[0.5, 0.3], [0.5, 0.5]]]]))
    assert torch.equal(PixelMaximum()(a, b), torch.tensor([[[[1.0, 0.4], [1.0, 0.5]]]]))


def test_fuse_script_baseline_keeps_visible_colour(tmp_path, capsys):
    """A gray visible image (Cb = Cr = 0.5) gives gray output equal to max(vis, ir)."""
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (12, 17), dtype=np.uint8)
    ir = rng.integers(0, 256, (12, 17), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'v.png'), np.repeat(gray[:, :, None], 3, axis=2))
    cv2.imwrite(str(tmp_path / 'i.png'), ir)
    code, _, err = run_fuse(capsys, '--engine', 'maximum', '--vis', tmp_path / 'v.png',
                            '--ir', tmp_path / 'i.png', '--out', tmp_path / 'f.png')
    assert code == 0, err
    got = cv2.imread(str(tmp_path / 'f.png'))
    expected = np.maximum(gray, ir).astype(int)
    assert np.abs(got.astype(int) - expected[:, :, None]).max() <= 1


def test_fuse_script_baseline_refuses_weights(tmp_path, capsys):
    code, _, err = run_fuse(capsys, '--engine', 'average', '--weights', REFERENCE_WEIGHTS,
                            '--vis', tmp_path / 'v.png', '--ir', tmp_path / 'i.png', '--out', tmp_path / 'f.png')
    assert code == 2 and '--weights' in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- curves

def test_nice_ticks_and_moving_average():
    assert nice_ticks(0, 2000) == [0, 500, 1000, 1500, 2000]
    assert nice_ticks(1.3, 2.6) == [1.5, 2.0, 2.5]
    np.testing.assert_allclose(moving_average([1, 3, 5, 7], 2), [1, 2, 4, 6])


def test_plot_curves_reads_the_run_logs(tmp_path):
    run = tmp_path / 'run'
    (run / 'val').mkdir(parents=True)
    records = [{'iter': i, 'total': 5.0 - i / 100, 'A': 1.0, 'lr': 1e-3, 'grad_norm': 2.0}
               for i in (10, 20, 30)]
    records.append({'iter': 20, 'total': 9.0, 'A': 2.0, 'lr': 1e-3})  # a resume re-logged 20
    (run / 'train_log.jsonl').write_text('\n'.join(json.dumps(r) for r in records) + '\n')
    for it in (10, 30):
        (run / 'val' / f"metrics_iter_{it:08d}.csv").write_text(
            'image,EN,SSIM\na,1.0,0.5\nmean,1.0,0.5\n')
    mod = load_script('plot_curves')
    logged = mod.read_train_log(run / 'train_log.jsonl')
    assert list(logged) == [10, 20, 30] and logged[20]['total'] == 9.0
    assert mod.read_val_means(run / 'val') == {10: {'EN': 1.0, 'SSIM': 0.5}, 30: {'EN': 1.0, 'SSIM': 0.5}}
    res = run_script('plot_curves', run, '--out', tmp_path / 'c.png')
    assert res.returncode == 0, res.stderr
    img = cv2.imread(str(tmp_path / 'c.png'))
    # total, A, learning rate, EN, SSIM: 5 panels of 300x460 in rows of 3
    assert img.shape == (2 * 300 + 6, 3 * 460 + 12, 3)


def test_plot_curves_bad_log_is_one_line(tmp_path):
    (tmp_path / 'train_log.jsonl').write_text('{"iter": 1, "total": 1}\nnot json\n')
    res = run_script('plot_curves', tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {tmp_path / 'train_log.jsonl'}:2: not a log "
                                               f"record (expected JSON with 'iter')"]


# ---------------------------------------------------------------- the evaluation script's parts

def test_border_steps_hand_computed(tmp_path):
    img = np.full((10, 12), 100, np.uint8)
    img[0, :] = 80     # top row 20 darker
    img[:, -1] = 130   # right column 30 brighter (its top pixel too)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    steps, interior, n = load_script('reference_eval').border_steps(tmp_path)
    assert n == 1
    # top row mean (11*80 + 130)/12 vs next row (11*100 + 130)/12
    assert steps['top'] == pytest.approx(-20 * 11 / 12)
    assert steps['right'] == pytest.approx((9 * 130 + 130) / 10 - (9 * 100 + 80) / 10)
    assert steps['bottom'] == pytest.approx(0) and steps['left'] == pytest.approx(0)
    assert interior == pytest.approx(0)


def test_means_markdown_median_and_count():
    mod = load_script('reference_eval')
    metrics = METRICS
    means = {'ours': dict.fromkeys(metrics, 2.0), 'average': dict.fromkeys(metrics, 0.0),
             'maximum': dict.fromkeys(metrics, 0.0)}
    for k, label in enumerate(['A', 'B', 'C', 'D']):
        means[label] = dict.fromkeys(metrics, float(k))     # median of 0, 1, 2, 3 = 1.5
    means['D']['EN'] = 10.0                                 # median of EN: (1 + 2) / 2 = 1.5
    means['A']['SD'], means['B']['SD'] = 5.0, 5.0           # median of SD: (3 + 5) / 2 = 4.0
    lines = mod.means_markdown(means, 'M', ['A', 'B', 'C', 'D'], 'cddfuse')
    median = [ln for ln in lines if ln.startswith('| median')][0]
    assert median.split('|')[2].strip() == '1.5000' and median.split('|')[3].strip() == '4.0000'
    assert any('**7 of 8**' in ln for ln in lines)


def test_write_card_needs_markers(tmp_path):
    mod = load_script('reference_eval')
    card = tmp_path / 'card.md'
    card.write_text(f"head\n{mod.BEGIN}\nold\n{mod.END}\ntail\n")
    mod.write_card(card, ['new', 'lines'])
    assert card.read_text() == f"head\n{mod.BEGIN}\nnew\nlines\n{mod.END}\ntail\n"
    card.write_text('no markers')
    with pytest.raises(Exception, match='markers'):
        mod.write_card(card, ['x'])


def test_evaluation_script_names_the_download_command_for_missing_data(tmp_path):
    data = tmp_path / 'data'  # outputs stay apart from the data folder
    data.mkdir()
    res = run_script('reference_eval', '--sets', 'tno', '--no-card', '--data', data,
                     '--work', tmp_path / 'work', '--out-dir', tmp_path / 'eval')
    assert res.returncode == 1 and 'Traceback' not in res.stderr
    assert (f"failed: tno: TNO: visible folder {data / 'TNO' / 'vis'} not found; get it with: "
            f"python scripts/download_data.py tno --to {data}") in res.stderr
    res = run_script('reference_eval', '--no-card', '--data', tmp_path / 'none',
                     '--work', tmp_path / 'work', '--out-dir', tmp_path / 'eval')
    assert res.returncode == 2
    assert 'get them with: python scripts/download_data.py roadscene tno vifb' in res.stderr
