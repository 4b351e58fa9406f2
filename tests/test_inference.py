"""basicsr.inference: pair reading, 16-bit range rules, fuse (sizes, tiles), memory guard, tables."""
from __future__ import annotations

import csv
import io
import logging
import math

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.contract import bytes_per_pixel as network_bytes_per_pixel
from basicsr.archs.dgfusion.memory import bytes_per_pixel
from basicsr.archs.dgfusion.module import DGFusion
from basicsr.inference import FrameTooLarge, check_fits, estimate_bytes, fuse, read_pair
from basicsr.inference.baselines import BASELINES
from basicsr.inference.memory import suggest_tile
from basicsr.inference.report import csv_text, markdown_table, mean_row
from basicsr.inference.tiling import fuse_tiled, tile_starts
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.ir_range import parse_ir_range


def tiny_net(seed: int = 0) -> DGFusion:
    torch.manual_seed(seed)
    return DGFusion(channels=2).train(False)


def write(path, img):
    cv2.imwrite(str(path), img)
    return path


# ---------------------------------------------------------------- read_pair

def test_read_pair_rgb_gray_and_three_channel_ir(tmp_path):
    rng = np.random.default_rng(0)
    vis_bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    ir_bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)       # unequal channels
    pair = read_pair(write(tmp_path / 'a.png', vis_bgr), write(tmp_path / 'b.png', ir_bgr))
    rgb = vis_bgr[..., ::-1]
    assert pair.stem == 'a' and pair.vis.shape == (3, 5, 7) and pair.ir.shape == (1, 5, 7)
    np.testing.assert_allclose(pair.vis.permute(1, 2, 0).numpy(), rgb / 255.0, rtol=1e-6)
    luma = ir_bgr[..., 2] * 0.299 + ir_bgr[..., 1] * 0.587 + ir_bgr[..., 0] * 0.114
    np.testing.assert_allclose(pair.ir[0].numpy() * 255, np.floor(luma + 0.5), atol=1e-4)
    np.testing.assert_array_equal(pair.ir_u8, ir_bgr[..., ::-1])     # stored channels kept
    np.testing.assert_array_equal(pair.vis_u8, rgb)
    gray = read_pair(write(tmp_path / 'g.png', vis_bgr[..., 0]), tmp_path / 'b.png')
    assert gray.vis_gray and gray.vis.shape == (1, 5, 7) and gray.vis_u8.shape == (5, 7)


def test_read_pair_size_mismatch_and_resize(tmp_path):
    vis = write(tmp_path / 'v.png', np.full((6, 8, 3), 90, np.uint8))
    ir = write(tmp_path / 'i.png', np.full((3, 4), 200, np.uint8))
    with pytest.raises(DataError, match=r'v\.png is 6x8 but .*i\.png is 3x4$'):
        read_pair(vis, ir)  # test sets and training cannot resample: no option is suggested
    with pytest.raises(DataError, match=r'is 3x4 \(use --resize\)$'):
        read_pair(vis, ir, size_hint=' (use --resize)')
    up = read_pair(vis, ir, resize='ir')
    assert up.ir.shape == (1, 6, 8) and up.ir_u8.shape == (6, 8)
    assert torch.allclose(up.ir, torch.full((1, 6, 8), 200 / 255))
    down = read_pair(vis, ir, resize='vis')
    assert down.vis.shape == (3, 3, 4) and down.vis_u8.shape == (3, 4, 3)
    assert torch.allclose(down.vis, torch.full((3, 3, 4), 90 / 255))


def test_read_pair_names_unreadable_files(tmp_path):
    (tmp_path / 'zero.png').write_bytes(b'')
    ok = write(tmp_path / 'ok.png', np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match='zero.png'):
        read_pair(tmp_path / 'zero.png', ok)


# ---------------------------------------------------------------- 16-bit range rules

RAW = (np.arange(200, dtype=np.uint16).reshape(10, 20) * 100 + 1000)  # 1000 .. 20900


@pytest.mark.parametrize('rule, lo, hi', [
    ('minmax', 1000.0, 20900.0),
    # numpy linear percentiles of 0..199 are 0.005*199 and 0.995*199 steps of 100
    ('percentile:0.5,99.5', 1000 + 100 * 0.995, 1000 + 100 * 198.005),
    ('percentile:10,90', 1000 + 100 * 19.9, 1000 + 100 * 179.1),
    ('fixed:5000,15000', 5000.0, 15000.0),
])
def test_16bit_infrared_range_modes(tmp_path, rule, lo, hi):
    vis = write(tmp_path / 'v.png', np.zeros((10, 20), np.uint8))
    ir = write(tmp_path / 'i.png', RAW)
    pair = read_pair(vis, ir, parse_ir_range(rule))
    expected = np.clip((RAW.astype(np.float64) - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(pair.ir[0].numpy(), expected, atol=2e-6)
    np.testing.assert_array_equal(pair.ir_u8, np.round(expected * 255).astype(np.uint8))
    assert pair.ir_limits == pytest.approx((lo, hi))


def test_held_limits_keep_a_sequence_from_flickering():
    """With the first frame's limits held, the same raw count maps to the same value."""
    first, brighter = RAW, RAW + 5000
    vis = np.zeros((10, 20), np.uint8)
    a = read_pair(vis, first, parse_ir_range('minmax'))
    b = read_pair(vis, brighter, parse_ir_range('minmax'), ir_limits=a.ir_limits)
    # raw 6000 is pixel (2, 10) of the first frame and pixel (0, 0) of the second
    assert float(b.ir[0, 0, 0]) == pytest.approx(float(a.ir[0, 2, 10]))
    free = read_pair(vis, brighter, parse_ir_range('minmax'))
    assert float(free.ir[0, 0, 0]) == 0.0  # per-frame range: the same count turns black


@pytest.mark.parametrize('text', ['gamma', 'percentile:5', 'percentile:50,20', 'fixed:0,70000',
                                  'minmax:1,2', 'fixed:a,b'])
def test_bad_range_rules_are_refused(text):
    with pytest.raises(ConfigError, match='--ir-range'):
        parse_ir_range(text)


# ---------------------------------------------------------------- fuse

@pytest.mark.parametrize('h, w', [(13, 7), (1, 9), (31, 33)])
def test_any_size_output_equals_input_size(h, w):
    net = tiny_net()
    vis, ir = torch.rand(2, 3, h, w), torch.rand(2, 1, h, w)
    out = fuse(net, vis, ir)
    assert out.shape == (2, 3, h, w) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert fuse(net, vis[:, :1], ir).shape == (2, 1, h, w)  # gray in, gray out


def test_fuse_follows_the_published_colour_pipeline():
    """fused = ycbcr->rgb(clamp(net(Y)), Cb, Cr) with BT.601 forward and the published inverse."""
    net = tiny_net(3).double()
    vis, ir = torch.rand(1, 3, 9, 11, dtype=torch.float64), torch.rand(1, 1, 9, 11, dtype=torch.float64)
    r, g, b = vis[0]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = (b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5
    with torch.no_grad():
        fy = net(y[None, None], ir)[0, 0].clamp(0, 1)
    expected = torch.stack([fy + 1.403 * (cr - 0.5), fy - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5),
                            fy + 1.773 * (cb - 0.5)]).clamp(0, 1)
    torch.testing.assert_close(fuse(net, vis, ir)[0].double(), expected, atol=2e-6, rtol=0)


def test_tile_covering_the_frame_is_the_whole_frame():
    net = tiny_net(1)
    vis, ir = torch.rand(1, 3, 20, 28), torch.rand(1, 1, 20, 28)
    assert torch.equal(fuse(net, vis, ir, tile=32), fuse(net, vis, ir))
    # forced through the tiling code: one tile, weights 1 everywhere
    vis_y, ir1 = torch.rand(1, 1, 11, 13), torch.rand(1, 1, 11, 13)
    with torch.no_grad():
        torch.testing.assert_close(fuse_tiled(net, vis_y, ir1, tile=16, overlap=4), net(vis_y, ir1))


def test_tiled_blend_is_exact_for_a_pointwise_network():
    """Blend weights sum to one per pixel, so a per-pixel network gives the untiled result."""
    g = torch.Generator().manual_seed(0)
    vis_y, ir = torch.rand(1, 1, 23, 30, generator=g), torch.rand(1, 1, 23, 30, generator=g)

    def pointwise(v, i):
        return 0.7 * v - 0.2 * i + v * i

    torch.testing.assert_close(fuse_tiled(pointwise, vis_y, ir, tile=8, overlap=3),
                               pointwise(vis_y, ir), rtol=1e-6, atol=1e-6)


def test_tile_starts_cover_with_overlap():
    assert tile_starts(10, 4, 1) == [0, 3, 6]      # tiles [0,4) [3,7) [6,10)
    assert tile_starts(9, 4, 1) == [0, 3, 5]       # last tile flush with the border
    assert tile_starts(4, 8, 2) == [0]


def test_small_tiles_and_bad_overlap_refused():
    net = tiny_net()
    vis, ir = torch.rand(1, 3, 40, 40), torch.rand(1, 1, 40, 40)
    with pytest.raises(ConfigError, match='at least 32'):
        fuse(net, vis, ir, tile=16)
    with pytest.raises(ConfigError, match='overlap 32'):
        fuse(net, vis, ir, tile=32, overlap=32)


def test_mismatched_tensors_are_a_clear_error():
    with pytest.raises(DataError, match='differ'):
        fuse(tiny_net(), torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 9))


# ---------------------------------------------------------------- memory guard

def test_estimate_is_pixels_times_bytes_per_pixel():
    assert bytes_per_pixel(16) == 512 + 160 * 16
    assert estimate_bytes(bytes_per_pixel(2), 30, 40, batch=3) == (512 + 320) * 1200 * 3
    assert network_bytes_per_pixel(tiny_net()) == bytes_per_pixel(2)  # DGFusion's spec, its width


def test_suggested_tile_is_the_largest_multiple_of_32_that_fits():
    c4 = bytes_per_pixel(4)
    budget = estimate_bytes(c4, 200, 200)            # fits 192 (a multiple of 32), not 224
    assert suggest_tile(c4, budget) == 192
    assert suggest_tile(c4, estimate_bytes(c4, 31, 31)) is None


def test_guard_refuses_a_huge_frame_before_any_work():
    """A 60000x60000 frame (as a PNG header may declare) is refused from its size alone."""
    c16 = bytes_per_pixel(16)
    with pytest.raises(FrameTooLarge) as info:
        check_fits(c16, (60000, 60000), 1, torch.device('cpu'), budget=8 * 2 ** 30,
                   network='DGFusion')
    msg = str(info.value)
    need = estimate_bytes(c16, 60000, 60000) / 2 ** 30
    assert f"{need:.1f} GiB" in msg and '8.0 GiB' in msg and f'DGFusion: {c16:,} bytes per pixel' in msg
    assert f"--tile {suggest_tile(c16, 8 * 2 ** 30)}" in msg


def test_guard_without_a_memory_model_does_not_block(caplog):
    """A network without a memory model in its spec is not refused, and the log says why."""
    caplog.set_level(logging.INFO, logger='basicsr.inference.memory')
    check_fits(None, (60000, 60000), 1, torch.device('cpu'), budget=1, network='Unmodelled')
    assert 'Unmodelled has no memory model' in caplog.text
    average = BASELINES['average']()  # registers no spec
    assert fuse(average, torch.rand(1, 3, 40, 40), torch.rand(1, 1, 40, 40),
                memory_budget=1).shape == (1, 3, 40, 40)


def test_fuse_fails_fast_and_the_suggested_tile_works():
    net = tiny_net()
    vis, ir = torch.rand(1, 3, 70, 90), torch.rand(1, 1, 70, 90)
    budget = estimate_bytes(bytes_per_pixel(2), 64, 64)
    with pytest.raises(FrameTooLarge, match='--tile 64'):
        fuse(net, vis, ir, memory_budget=budget)
    assert fuse(net, vis, ir, tile=64, memory_budget=budget).shape == (1, 3, 70, 90)


# ---------------------------------------------------------------- tables

def test_tables_show_n_a_and_count_the_mean():
    rows = [{'image': 'a', 'EN': 1.0, 'SSIM': 0.5}, {'image': 'b', 'EN': 2.0, 'SSIM': math.nan},
            {'image': 'c', 'EN': 4.0, 'SSIM': 0.25}]
    mean = mean_row(rows)
    assert mean['EN'] == pytest.approx(7 / 3) and mean['SSIM'] == pytest.approx(0.375)
    table = markdown_table(rows, 'set')
    assert '| b | 2.0000 | n/a |' in table
    assert '| mean (3 images) | 2.3333 | 0.3750 (2 of 3) |' in table
    got = list(csv.reader(io.StringIO(csv_text(rows))))
    assert got[0] == ['image', 'EN', 'SSIM'] and got[2] == ['b', '2.0', 'n/a']
    assert got[4] == ['mean', repr(7 / 3), '0.375'] and got[5] == ['images', '3', '2']
    complete = list(csv.reader(io.StringIO(csv_text(rows[:1]))))
    assert [r[0] for r in complete] == ['image', 'a', 'mean']  # no count row when complete
