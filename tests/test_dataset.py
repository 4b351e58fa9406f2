"""PairedFusionDataset: pairing, errors, aligned crops/augmentation, masks, sampling."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from basicsr.data import build_dataset
from basicsr.data.fusion_dataset import PairedFusionDataset
from basicsr.data.saliency import saliency_mask
from basicsr.data.sampler import StreamSampler
from basicsr.utils.errors import DataError
from tests.conftest import write_pairs


def test_pairs_by_stem_across_extensions(tmp_path):
    dirs = write_pairs(tmp_path, n=3, ext_vis='.jpg', ext_ir='.bmp')
    ds = PairedFusionDataset(str(dirs['vis']), str(dirs['ir']), str(dirs['mask']), phase='train',
                             patch_size=8)
    assert [p['stem'] for p in ds.pairs] == ['000', '001', '002']
    assert ds.pairs[0]['vis'].suffix == '.jpg' and ds.pairs[0]['ir'].suffix == '.bmp'
    item = ds[0]
    assert item['vis'].shape == (3, 8, 8) and item['ir'].shape == (1, 8, 8)
    assert item['mask'].shape == (1, 8, 8)


def test_unmatched_stems_named(tmp_path):
    dirs = write_pairs(tmp_path, n=3, masks=False)
    (dirs['ir'] / '001.png').rename(dirs['ir'] / 'zzz.png')
    with pytest.raises(DataError) as info:  # training refuses the set
        PairedFusionDataset(str(dirs['vis']), str(dirs['ir']), phase='train')
    msg = str(info.value)
    assert 'unmatched image names' in msg and '(001)' in msg and '(zzz)' in msg
    ds = PairedFusionDataset(str(dirs['vis']), str(dirs['ir']))  # testing lists and skips them
    assert [p['stem'] for p in ds.pairs] == ['000', '002']
    assert [stem for stem, _ in ds.unmatched] == ['001', 'zzz']
    assert 'no infrared image' in ds.unmatched[0][1] and 'no visible image' in ds.unmatched[1][1]


def test_size_mismatch_and_unreadable_name_the_file(tmp_path):
    dirs = write_pairs(tmp_path, n=2, masks=False)
    cv2.imwrite(str(dirs['ir'] / '001.png'), np.zeros((5, 7), np.uint8))
    (dirs['vis'] / '000.png').write_bytes(b'not an image')
    ds = PairedFusionDataset(str(dirs['vis']), str(dirs['ir']))
    with pytest.raises(DataError, match=r"000\.png: cannot read image"):
        ds[0]
    with pytest.raises(DataError, match=r"001\.png is 20x24 but .*001\.png is 5x7"):
        ds[1]


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match='folder does not exist'):
        PairedFusionDataset(str(tmp_path / 'a'), str(tmp_path / 'b'))


def coordinate_pair(root, h=23, w=29):
    """vis R channel = ir = mask code of each pixel, so any misalignment shows up."""
    code = (np.arange(h * w).reshape(h, w) % 251 + 2).astype(np.uint8)
    for sub in ('vis', 'ir', 'mask'):
        (root / sub).mkdir(parents=True)
    vis = np.stack([code, np.zeros_like(code), np.zeros_like(code)], axis=2)  # RGB
    cv2.imwrite(str(root / 'vis' / 'a.png'), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / 'ir' / 'a.png'), code)
    cv2.imwrite(str(root / 'mask' / 'a.png'), code)  # mask read as code/255
    return code


def test_crop_and_augment_keep_alignment(tmp_path):
    code = coordinate_pair(tmp_path)
    ds = PairedFusionDataset(str(tmp_path / 'vis'), str(tmp_path / 'ir'), str(tmp_path / 'mask'),
                             phase='train', patch_size=9)
    seen = set()
    for seed in range(40):
        item = ds[(0, seed)]
        r = np.rint(item['vis'][0].numpy() * 255)
        ir = np.rint(item['ir'][0].numpy() * 255)
        mask = np.rint(item['mask'][0].numpy() * 255)
        assert np.array_equal(r, ir) and np.array_equal(r, mask)
        # the patch is a flipped/rotated window of the original code image
        windows = [np.rot90(v, k) for v in (r, r[:, ::-1]) for k in range(4)]
        assert any(_is_window(code, win) for win in windows)
        seen.add(r.tobytes())
    assert len(seen) > 10  # crops and augmentations vary with the seed
    again = ds[(0, 3)]
    assert np.array_equal(again['vis'].numpy(), ds[(0, 3)]['vis'].numpy())  # deterministic per seed


def _is_window(code, win):
    h, w = win.shape
    for top, left in itertools.product(range(code.shape[0] - h + 1), range(code.shape[1] - w + 1)):
        if np.array_equal(code[top:top + h, left:left + w], win):
            return True
    return False


def test_auto_mask_from_full_pair(tmp_path):
    dirs = write_pairs(tmp_path, n=1, size=(12, 14), masks=False)
    ds = PairedFusionDataset(str(dirs['vis']), str(dirs['ir']), 'auto', phase='train',
                             patch_size=12, use_hflip=False, use_rot=False)
    vis = cv2.cvtColor(cv2.imread(str(dirs['vis'] / '000.png')), cv2.COLOR_BGR2RGB)
    ir = cv2.imread(str(dirs['ir'] / '000.png'), cv2.IMREAD_UNCHANGED)
    full = saliency_mask(vis, ir, 'dgfusion')
    item = ds[(0, 5)]
    got = item['mask'][0].numpy()
    assert any(np.array_equal(got, full[:, c:c + 12]) for c in range(3))
    assert set(np.unique(got)) <= {0.0, 1.0}


def test_test_phase_whole_images_no_mask_gray_and_16bit(tmp_path):
    (tmp_path / 'vis').mkdir()
    (tmp_path / 'ir').mkdir()
    gray_vis = np.full((6, 7), 100, np.uint8)
    ir16 = np.arange(42, dtype=np.uint16).reshape(6, 7) * 1000 + 5000
    cv2.imwrite(str(tmp_path / 'vis' / 'x.png'), gray_vis)
    cv2.imwrite(str(tmp_path / 'ir' / 'x.tif'), ir16)
    ds = build_dataset({'name': 't', 'type': 'PairedFusionDataset', 'dataroot_vis': str(tmp_path / 'vis'),
                        'dataroot_ir': str(tmp_path / 'ir'), 'batch_size_per_gpu': 1,
                        'ir_range': 'minmax'})
    item = ds[0]
    assert 'mask' not in item and item['vis_gray'] is True
    assert item['vis'].shape == (3, 6, 7) and float(item['vis'][1, 0, 0]) == pytest.approx(100 / 255)
    ir = item['ir'][0].numpy()
    assert ir.min() == 0.0 and ir.max() == 1.0           # 16-bit: min-max per image
    assert ir[0, 1] == pytest.approx(1000 / 41000)
    # the metrics' reference: 8-bit as stored, round(255 * scaled)
    assert item['ir_u8'][0, 1] == round(255 * 1000 / 41000) and item['vis_u8'].shape == (6, 7)
    # default rule: 0.5th..99.5th percentile (numpy's linear interpolation) of the raw values
    ds = PairedFusionDataset(str(tmp_path / 'vis'), str(tmp_path / 'ir'))
    lo, hi = 5000 + 1000 * 0.005 * 41, 5000 + 1000 * 0.995 * 41
    ir = ds[0]['ir'][0].numpy()
    assert ir[0, 0] == 0.0 and ir[5, 6] == 1.0
    assert ir[2, 3] == pytest.approx((ir16[2, 3] - lo) / (hi - lo), rel=1e-6)


def test_three_channel_ir_taken_as_gray(tmp_path):
    (tmp_path / 'vis').mkdir()
    (tmp_path / 'ir').mkdir()
    cv2.imwrite(str(tmp_path / 'vis' / 'x.png'), np.zeros((4, 4, 3), np.uint8))
    ir = np.zeros((4, 4, 3), np.uint8)
    ir[..., 0], ir[..., 1], ir[..., 2] = 10, 20, 30          # BGR as stored
    cv2.imwrite(str(tmp_path / 'ir' / 'x.png'), ir)
    item = PairedFusionDataset(str(tmp_path / 'vis'), str(tmp_path / 'ir'))[0]
    expected = np.floor(0.299 * 30 + 0.587 * 20 + 0.114 * 10 + 0.5)  # R=30, G=20, B=10
    assert float(item['ir'][0, 0, 0]) == pytest.approx(expected / 255)


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_splits_global_batches_across_ranks():
    single = _take(StreamSampler(10, 4, seed=3), 4 * 6)
    r0 = _take(StreamSampler(10, 2, seed=3, world_size=2, rank=0), 2 * 6)
    r1 = _take(StreamSampler(10, 2, seed=3, world_size=2, rank=1), 2 * 6)
    for it in range(6):
        assert single[4 * it:4 * it + 4] == r0[2 * it:2 * it + 2] + r1[2 * it:2 * it + 2]
    # each epoch is a permutation of all items
    assert sorted(k[0] for k in single[:10]) == list(range(10))
    # resuming at iteration 3 continues the same stream
    assert _take(StreamSampler(10, 4, seed=3, start_iter=3), 8) == single[12:20]


def test_absent_mask_folder_means_auto_and_3ch_ir_mask_uses_the_file(tmp_path):
    (tmp_path / 'vis').mkdir()
    (tmp_path / 'ir').mkdir()
    rng = np.random.default_rng(4)
    vis = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    ir3 = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)  # unequal channels
    cv2.imwrite(str(tmp_path / 'vis' / 'p.png'), vis)
    cv2.imwrite(str(tmp_path / 'ir' / 'p.png'), ir3)
    ds = PairedFusionDataset(str(tmp_path / 'vis'), str(tmp_path / 'ir'), phase='train', patch_size=10,
                             use_hflip=False, use_rot=False)
    assert ds.mask_source == 'auto'
    # the VSM script's gray rule (channel mean) on the file as stored, not the dataset's luma
    expected = saliency_mask(cv2.cvtColor(vis, cv2.COLOR_BGR2RGB), cv2.cvtColor(ir3, cv2.COLOR_BGR2RGB))
    got = ds[(0, 1)]['mask'][0].numpy()
    assert any(np.array_equal(got, expected[:, c:c + 10]) for c in range(3))
    none = PairedFusionDataset(str(tmp_path / 'vis'), str(tmp_path / 'ir'), 'none', phase='train', patch_size=10)
    assert 'mask' not in none[(0, 1)]


def test_hidden_files_ignored_and_written_images_readable(tmp_path):
    import os
    import stat

    from basicsr.utils.img_util import list_images, write_image
    write_image(tmp_path / 'a.png', np.zeros((3, 4, 3), np.uint8))
    (tmp_path / '._a.png').write_bytes(b'junk')
    (tmp_path / '.a.png.1234.tmp.png').write_bytes(b'junk')
    assert list(list_images(tmp_path)) == ['a']
    mode = stat.S_IMODE(os.stat(tmp_path / 'a.png').st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
