"""VSM saliency masks: hand-worked tables, the spec's tie/NaN cases, rounding, the mask script."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from basicsr.data.saliency import (mask_from_saliency, mask_to_u8, read_mask, saliency_mask,
                                   saliency_mask_u8, saliency_table_int, to_gray_u8,
                                   vsm_saliency)
from basicsr.utils.errors import DataError
from basicsr.utils.rounding import matlab_round

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'scripts' / 'gen_saliency.py'
SHARED = Path(__file__).resolve().parents[1].parent / 'shared'


def brute_table(gray: np.ndarray) -> list:
    """T[j] = sum_i hist[i] * |j - i| by the literal double loop, in Python ints."""
    hist = [0] * 256
    for v in gray.ravel().tolist():
        hist[v] += 1
    return [sum(hist[i] * abs(j - i) for i in range(256)) for j in range(256)]


def exact_saliency(gray: np.ndarray) -> dict:
    """Gray level -> mat2gray-normalised saliency as an exact fraction (levels present only)."""
    table = brute_table(gray)
    levels = sorted(set(gray.ravel().tolist()))
    lo, hi = min(table[v] for v in levels), max(table[v] for v in levels)
    return {v: Fraction(0) if hi == lo else Fraction(table[v] - lo, hi - lo) for v in levels}


def spec_mask(gray_vis: np.ndarray, gray_ir: np.ndarray) -> np.ndarray:
    """Binary mask by the spec table, with exact fractions."""
    sv, si = exact_saliency(gray_vis), exact_saliency(gray_ir)
    table = np.zeros((256, 256), np.float32)
    for a in sv:
        for b in si:
            table[a, b] = 1.0 if sv[a] > si[b] or (sv[a] == si[b] and sv[a] > 0) else 0.0
    return table[gray_vis, gray_ir]


# --- rounding and gray conversion ----------------------------------------------------------

def test_matlab_round_half_away():
    np.testing.assert_array_equal(matlab_round(np.array([0.5, 1.5, 2.5, 0.49, 254.5])),
                                  [1, 2, 3, 0, 255])
    assert np.round(2.5) == 2  # numpy's banker's rounding, which the port must not use


def test_gray_rounds_channel_means():
    # means 1/3, 2/3, 4/3, 5/3 -> 0, 1, 1, 2 (truncation would give 0, 0, 1, 1)
    rgb = np.array([[[1, 0, 0], [1, 1, 0], [2, 1, 1], [2, 2, 1]]], np.uint8)
    np.testing.assert_array_equal(to_gray_u8(rgb), [[0, 1, 1, 2]])
    np.testing.assert_array_equal(to_gray_u8(rgb[:, :, ::-1]), [[0, 1, 1, 2]])  # BGR


def test_gray_every_channel_sum():
    # one pixel per channel sum s = 0..765; floor(s/3 + 1/2) = floor((2s + 3) / 6) in integers
    sums = np.arange(766)
    rgb = np.stack([sums // 3, (sums + 1) // 3, (sums + 2) // 3], axis=1).astype(np.uint8)
    assert (rgb.astype(int).sum(axis=1) == sums).all()
    np.testing.assert_array_equal(to_gray_u8(rgb[None]), [(2 * sums + 3) // 6])


def test_gray_single_and_equal_channels():
    gray = np.array([[0, 7], [200, 255]], np.uint8)
    np.testing.assert_array_equal(to_gray_u8(gray), gray)
    np.testing.assert_array_equal(to_gray_u8(gray[:, :, None]), gray)
    np.testing.assert_array_equal(to_gray_u8(np.repeat(gray[:, :, None], 3, axis=2)), gray)


def test_gray_uint16_minmax_and_half_rounding():
    # min 0, max 510: x * 255 / 510 = x / 2, so 1, 3, 5 land exactly on .5
    img = np.array([[0, 1, 3, 5, 510]], np.uint16)
    np.testing.assert_array_equal(to_gray_u8(img), [[0, 1, 2, 3, 255]])
    offset = (img.astype(np.int64) + 1000).astype(np.uint16)  # min-max removes the offset
    np.testing.assert_array_equal(to_gray_u8(offset), [[0, 1, 2, 3, 255]])
    np.testing.assert_array_equal(to_gray_u8(np.full((2, 3), 4000, np.uint16)), np.zeros((2, 3)))
    rgb16 = np.stack([img, img, img], axis=2)
    np.testing.assert_array_equal(to_gray_u8(rgb16), [[0, 1, 2, 3, 255]])


@pytest.mark.parametrize('bad', [np.zeros((2, 2), np.float32), np.zeros((2, 2, 2), np.uint8),
                                 np.zeros((1, 2, 2, 3), np.uint8), np.zeros((0, 3), np.uint8),
                                 np.zeros((2, 2), np.int32)])
def test_gray_rejects_other_inputs(bad):
    with pytest.raises(DataError):
        to_gray_u8(bad)


# --- saliency tables -----------------------------------------------------------------------

def test_two_level_table_is_constant_gives_zeros():
    # hist[0] = 2, hist[255] = 2: T[0] = 2*255 = 510, T[255] = 2*255 = 510, S constant
    img = np.array([[0, 0], [255, 255]], np.uint8)
    table = saliency_table_int(img)
    assert table[0] == 510 and table[255] == 510
    np.testing.assert_array_equal(vsm_saliency(img), np.zeros((2, 2)))


def test_three_level_table_by_hand():
    # hist[0] = 1, hist[10] = 2, hist[30] = 1
    # T[0] = 2*10 + 30 = 50; T[10] = 10 + 2*0 + 20 = 30; T[30] = 30 + 2*20 = 70
    # T[20] = 20 + 2*10 + 10 = 50; min 30, max 70 -> S = (50, 30, 30, 70 - 30) / 40
    img = np.array([[0, 10, 10, 30]], np.uint8)
    table = saliency_table_int(img)
    assert (table[0], table[10], table[20], table[30]) == (50, 30, 50, 70)
    s = vsm_saliency(img)
    assert s.dtype == np.float64
    np.testing.assert_array_equal(s, [[0.5, 0.0, 0.0, 1.0]])


def test_table_matches_double_loop():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (6, 7)).astype(np.uint8)
    np.testing.assert_array_equal(saliency_table_int(img), brute_table(img))
    img[0, 0], img[0, 1] = 0, 255  # extremes present
    np.testing.assert_array_equal(saliency_table_int(img), brute_table(img))


def test_constant_image_zeros():
    np.testing.assert_array_equal(vsm_saliency(np.full((3, 4), 77, np.uint8)), np.zeros((3, 4)))


# --- masks ---------------------------------------------------------------------------------

def test_spec_table_four_cases():
    s_vis = np.array([0.7, 0.2, 0.4, 0.0])
    s_ir = np.array([0.3, 0.6, 0.4, 0.0])
    #           vis>ir  vis<ir  equal>0  both 0
    np.testing.assert_array_equal(mask_from_saliency(s_vis, s_ir), [1, 0, 1, 0])
    np.testing.assert_array_equal(mask_from_saliency(s_vis, s_ir, 'weighted'),
                                  [0.7, 0.2 / 0.8, 0.5, 0.5])


def test_dgfusion_equals_literal_matlab_formula():
    rng = np.random.default_rng(1)
    levels = np.array([0.0, 0.25, 0.5, 1.0])  # few levels: many ties, both-zero and equal > 0
    s_vis = np.concatenate([levels[rng.integers(0, 4, 200)], rng.random(200)])
    s_ir = np.concatenate([levels[rng.integers(0, 4, 200)], rng.random(200)])
    with np.errstate(divide='ignore', invalid='ignore'):
        w = s_vis / (s_vis - s_ir)
    written = np.nan_to_num(np.clip(w, 0.0, 1.0), nan=0.0)  # what imwrite does with w
    np.testing.assert_array_equal(mask_from_saliency(s_vis, s_ir), written)
    assert np.isnan(w).any() and np.isinf(w).any()  # the quirky cases were exercised


def test_mask_from_images_by_hand():
    # vis [0,10,10,30] -> S_vis = [.5, 0, 0, 1]; ir [0,10,30,10] has the same histogram
    # -> S_ir = [.5, 0, 1, 0]: tie > 0, both zero, vis < ir, vis > ir
    vis = np.array([[0, 10, 10, 30]], np.uint8)
    ir = np.array([[0, 10, 30, 10]], np.uint8)
    mask = saliency_mask(np.repeat(vis[:, :, None], 3, axis=2), ir)
    assert mask.dtype == np.float32 and mask.shape == (1, 4)
    np.testing.assert_array_equal(mask, [[1, 0, 0, 1]])
    np.testing.assert_array_equal(saliency_mask(vis, ir, 'weighted'), [[0.5, 0.5, 0.0, 1.0]])


def test_mask_u8_as_written():
    vis = np.array([[0, 10, 10, 30]], np.uint8)
    ir = np.array([[0, 10, 30, 10]], np.uint8)
    out = saliency_mask_u8(vis, ir)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[255, 0, 0, 255]])
    np.testing.assert_array_equal(saliency_mask_u8(vis, ir, 'weighted'), [[128, 128, 0, 255]])


def test_mask_random_matches_exact_spec():
    rng = np.random.default_rng(2)
    vis = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    ir = rng.integers(0, 40, (9, 11)).astype(np.uint8)
    gray_vis = ((2 * vis.astype(np.int64).sum(axis=2) + 3) // 6).astype(np.uint8)  # floor(s/3+.5)
    np.testing.assert_array_equal(saliency_mask(vis, ir), spec_mask(gray_vis, ir))
    np.testing.assert_array_equal(saliency_mask(vis[:, :, ::-1], ir), spec_mask(gray_vis, ir))


def test_three_channel_infrared():
    rng = np.random.default_rng(3)
    vis = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    ir = rng.integers(0, 256, (5, 6)).astype(np.uint8)
    ir3_equal = np.repeat(ir[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(saliency_mask(vis, ir3_equal), saliency_mask(vis, ir))
    ir3 = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    ir_gray = ((2 * ir3.astype(np.int64).sum(axis=2) + 3) // 6).astype(np.uint8)
    np.testing.assert_array_equal(saliency_mask(vis, ir3), saliency_mask(vis, ir_gray))


def test_sixteen_bit_infrared():
    ir16 = np.array([[0, 1000, 1000, 3000]], np.uint16)  # -> 0, 85, 85, 255 after min-max
    vis = np.array([[0, 10, 10, 30]], np.uint8)
    np.testing.assert_array_equal(to_gray_u8(ir16), [[0, 85, 85, 255]])
    np.testing.assert_array_equal(saliency_mask(vis, ir16),
                                  saliency_mask(vis, np.array([[0, 85, 85, 255]], np.uint8)))


def test_mask_errors():
    with pytest.raises(DataError, match='size mismatch'):
        saliency_mask(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 6), np.uint8))
    with pytest.raises(DataError, match='mode'):
        saliency_mask(np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.uint8), 'soft')


def test_mask_to_u8_rounding():
    m = np.array([0.0, 1.0, 0.5, 5 / 510, 1 / 510, 1.2, -0.1, np.nan])
    # 0.5*255 = 127.5 -> 128; 5/510*255 = 2.5 -> 3 (banker's: 2); 1/510*255 = 0.5 -> 1
    np.testing.assert_array_equal(mask_to_u8(m), [0, 255, 128, 3, 1, 255, 0, 0])
    assert mask_to_u8(m).dtype == np.uint8


@pytest.mark.parametrize('dtype,top', [(np.uint8, 255), (np.uint16, 65535)])
def test_read_mask_8_and_16_bit(tmp_path, dtype, top):
    img = np.array([[0, top], [top, 0]], dtype)
    cv2.imwrite(str(tmp_path / 'm.png'), img)
    mask = read_mask(tmp_path / 'm.png')
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[0, 1], [1, 0]])
    with pytest.raises(DataError):
        read_mask(tmp_path / 'missing.png')


# --- the mask script -----------------------------------------------------------------------

def run_script(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def counts(stdout: str) -> tuple:
    hit = re.search(r'(\d+) written, (\d+) skipped, (\d+) failed', stdout)
    assert hit, stdout
    return tuple(int(x) for x in hit.groups())


@pytest.fixture
def pair_dirs(tmp_path):
    rng = np.random.default_rng(5)
    vis_dir, ir_dir = tmp_path / 'vis', tmp_path / 'ir'
    vis_dir.mkdir()
    ir_dir.mkdir()
    for name in ('a', 'b'):
        cv2.imwrite(str(vis_dir / f'{name}.png'), rng.integers(0, 256, (6, 8, 3)).astype(np.uint8))
        cv2.imwrite(str(ir_dir / f'{name}.png'), rng.integers(0, 256, (6, 8)).astype(np.uint8))
    cv2.imwrite(str(vis_dir / 'c.png'), rng.integers(0, 256, (6, 8, 3)).astype(np.uint8))
    cv2.imwrite(str(ir_dir / 'c.bmp'), rng.integers(0, 256, (6, 8)).astype(np.uint8))  # by stem
    ir16 = rng.integers(0, 65536, (6, 8)).astype(np.uint16)
    cv2.imwrite(str(vis_dir / 'd.png'), rng.integers(0, 256, (6, 8, 3)).astype(np.uint8))
    cv2.imwrite(str(ir_dir / 'd.png'), ir16)
    return vis_dir, ir_dir


def test_script_writes_masks_reports_failures(tmp_path, pair_dirs):
    vis_dir, ir_dir = pair_dirs
    (vis_dir / 'broken.png').write_bytes(b'not a png at all')
    cv2.imwrite(str(ir_dir / 'broken.png'), np.zeros((6, 8), np.uint8))
    cv2.imwrite(str(vis_dir / 'sized.png'), np.zeros((6, 8, 3), np.uint8))
    cv2.imwrite(str(ir_dir / 'sized.png'), np.zeros((5, 8), np.uint8))
    cv2.imwrite(str(vis_dir / 'lonely.jpg'), np.zeros((6, 8, 3), np.uint8))
    out = tmp_path / 'mask'
    res = run_script('--vis', vis_dir, '--ir', ir_dir, '--out', out, '--workers', 2)
    assert res.returncode == 1, res.stderr
    assert counts(res.stdout) == (4, 0, 3)
    for bad in ('broken', 'sized', 'lonely'):
        assert re.search(rf'error: {re.escape(bad)}\b', res.stderr), res.stderr
    assert 'size mismatch' in res.stderr
    assert sorted(p.name for p in out.glob('*.png')) == ['a.png', 'b.png', 'c.png', 'd.png']
    for name in ('a', 'c', 'd'):
        vis = cv2.imread(str(vis_dir / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        ir_path = next(ir_dir.glob(f'{name}.*'))
        ir = cv2.imread(str(ir_path), cv2.IMREAD_UNCHANGED)
        written = cv2.imread(str(out / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
        gray_vis = ((2 * vis.astype(np.int64).sum(axis=2) + 3) // 6).astype(np.uint8)
        if ir.dtype == np.uint16:  # min-max to 0..255 with half-up rounding, in exact integers
            lo, hi = int(ir.min()), int(ir.max())
            ir = ((2 * (ir.astype(np.int64) - lo) * 255 + (hi - lo)) // (2 * (hi - lo)))
            ir = ir.astype(np.uint8)
        np.testing.assert_array_equal(written, spec_mask(gray_vis, ir) * 255)


def test_script_skips_up_to_date_and_force(tmp_path, pair_dirs):
    vis_dir, ir_dir = pair_dirs
    out = tmp_path / 'mask'
    args = ('--vis', vis_dir, '--ir', ir_dir, '--out', out, '--workers', 0)
    assert counts(run_script(*args).stdout) == (4, 0, 0)
    res = run_script(*args)
    assert res.returncode == 0 and counts(res.stdout) == (0, 4, 0)
    os.utime(ir_dir / 'a.png', ns=(os.stat(out / 'a.png').st_mtime_ns + 10**9,) * 2)  # ir newer
    assert counts(run_script(*args).stdout) == (1, 3, 0)
    assert counts(run_script(*args, '--force').stdout) == (4, 0, 0)


def test_script_weighted_mode(tmp_path):
    vis_dir, ir_dir, out = tmp_path / 'v', tmp_path / 'i', tmp_path / 'm'
    vis_dir.mkdir()
    ir_dir.mkdir()
    cv2.imwrite(str(vis_dir / 'x.png'), np.array([[0, 10, 10, 30]], np.uint8))
    cv2.imwrite(str(ir_dir / 'x.png'), np.array([[0, 10, 30, 10]], np.uint8))
    res = run_script('--vis', vis_dir, '--ir', ir_dir, '--out', out, '--mode', 'weighted')
    assert res.returncode == 0, res.stderr
    # weighted [.5, .5, 0, 1] -> 127.5 rounds up to 128
    np.testing.assert_array_equal(cv2.imread(str(out / 'x.png'), cv2.IMREAD_UNCHANGED),
                                  [[128, 128, 0, 255]])


def test_script_option_file(tmp_path, pair_dirs):
    (tmp_path / 'opt.yml').write_text(
        'datasets:\n'
        '  train: {dataroot_vis: vis, dataroot_ir: ir, dataroot_mask: masks/train}\n'
        '  val: {dataroot_vis: vis, dataroot_ir: ir}\n', encoding='utf-8')
    res = run_script('-opt', 'opt.yml', cwd=tmp_path)  # relative paths: from the cwd
    assert res.returncode == 0, res.stderr
    assert counts(res.stdout) == (4, 0, 0)
    assert len(list((tmp_path / 'masks' / 'train').glob('*.png'))) == 4


def test_script_bad_input_one_line_error(tmp_path):
    res = run_script('-opt', tmp_path / 'nope.yml')
    assert res.returncode != 0 and res.stderr.startswith('error: ')
    assert 'Traceback' not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (tmp_path / 'o.yml').write_text('datasets: {train: {dataroot_vis: v}}\n', encoding='utf-8')
    res = run_script('-opt', tmp_path / 'o.yml')
    assert res.returncode != 0 and 'dataroot_mask' in res.stderr and 'Traceback' not in res.stderr
    res = run_script('--vis', tmp_path / 'x', '--ir', tmp_path / 'y', '--out', tmp_path / 'z')
    assert res.returncode != 0 and 'folder does not exist' in res.stderr and 'Traceback' not in res.stderr


# --- real pairs (only where ../shared is present) ------------------------------------------

def test_real_cases_follow_spec_table():
    cases = SHARED / 'data' / 'vsm_cases'
    if not cases.is_dir():
        pytest.skip('shared vsm_cases not available')
    for vis_path in sorted((cases / 'V').glob('*.png')):
        vis = cv2.imread(str(vis_path), cv2.IMREAD_UNCHANGED)
        ir = cv2.imread(str(cases / 'T' / vis_path.name), cv2.IMREAD_UNCHANGED)
        gray_vis = ((2 * vis.astype(np.int64).sum(axis=2) + 3) // 6).astype(np.uint8)
        mask = saliency_mask(vis, ir)
        assert set(np.unique(mask)) <= {0.0, 1.0}, vis_path.name
        np.testing.assert_array_equal(mask, spec_mask(gray_vis, ir), err_msg=vis_path.name)
