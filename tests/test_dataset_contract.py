"""The dataset contract: a second dataset class, registered here only, goes through the option
checker, validation and test.py with no edit elsewhere."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import torch

from basicsr.data.contract import FusionDataset, ProblemLog, TrainingSet
from basicsr.data.fusion_dataset import PairedFusionDataset
from basicsr.data.pairs import Pair, read_pair
from basicsr.options import load_options
from basicsr.utils.errors import ConfigError
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, build_from_cfg
from tests.conftest import write_pairs


class ListFusionDataset:
    """Pairs listed in a text file, one ``<vis path> <ir path>`` line each; a line whose files
    are missing is unmatched (named by the visible file's stem)."""

    checked: List[Tuple[str, str]] = []  # (set, prefix) of every check_options call

    def __init__(self, list_file: str, phase: str = 'test') -> None:
        self.pairs: List[Dict[str, Path]] = []
        self.unmatched: List[Tuple[str, str]] = []
        for line in Path(list_file).read_text().splitlines():
            vis, ir = (Path(p) for p in line.split())
            if vis.is_file() and ir.is_file():
                self.pairs.append({'stem': vis.stem, 'vis': vis, 'ir': ir})
            else:
                self.unmatched.append((vis.stem, f"{line}: a file is missing"))

    def read(self, index: int) -> Pair:
        pair = self.pairs[index]
        return read_pair(pair['vis'], pair['ir'], stem=pair['stem'])

    @classmethod
    def check_options(cls, options: Dict[str, Any], phase: str, prefix: str,
                      problems: ProblemLog, scan: bool = False) -> None:
        cls.checked.append((phase, prefix))
        if not Path(options['list_file']).is_file():
            problems.add(prefix + 'list_file', f"'{options['list_file']}' is not a list file")

    @classmethod
    def data_folders(cls, options: Dict[str, Any], phase: str) -> List[Tuple[str, str, str]]:
        return [('list_file', str(Path(options['list_file']).parent), 'images')]


@pytest.fixture
def list_dataset(monkeypatch, tmp_path):
    """ListFusionDataset registered for one test; a list of 2 good pairs and 1 missing one."""
    monkeypatch.setitem(DATASET_REGISTRY._obj_map, 'ListFusionDataset', ListFusionDataset)
    monkeypatch.setattr(ListFusionDataset, 'checked', [])
    data = write_pairs(tmp_path / 'data', n=2, size=(20, 24), masks=False)
    lines = [f"{data['vis'] / f'{i:03d}.png'} {data['ir'] / f'{i:03d}.png'}" for i in range(2)]
    lines.append(f"{tmp_path / 'gone.png'} {data['ir'] / '000.png'}")
    listed = tmp_path / 'lists' / 'pairs.txt'
    listed.parent.mkdir()
    listed.write_text('\n'.join(lines) + '\n')
    return listed


def test_paired_dataset_meets_the_contract(tmp_path):
    data = write_pairs(tmp_path, n=2, masks=False)
    dataset = PairedFusionDataset(str(data['vis']), str(data['ir']))
    assert isinstance(dataset, FusionDataset)
    assert dataset.read(1).stem == dataset.pairs[1]['stem'] == '001'
    assert not isinstance(ListFusionDataset.__new__(ListFusionDataset), TrainingSet)


def test_paired_training_set_meets_the_training_contract(tmp_path):
    data = write_pairs(tmp_path, n=3, size=(20, 24), masks=True)
    dataset = PairedFusionDataset(str(data['vis']), str(data['ir']), str(data['mask']),
                                  phase='train', patch_size=16)
    assert isinstance(dataset, TrainingSet)
    item = dataset[0]
    assert item['vis'].shape[-2:] == item['ir'].shape[-2:] == item['mask'].shape[-2:] == (16, 16)
    assert dataset.summary().startswith('3 pairs, phase train, masks: ')


def test_option_checker_asks_the_registered_class(tmp_path, list_dataset):
    def write(list_file: Path, results: Path) -> Path:
        path = tmp_path / 'opt.yml'
        path.write_text(f"name: t\ndevice: cpu\ndatasets:\n  test_1:\n    type: ListFusionDataset\n"
                        f"    list_file: {list_file}\npath:\n  results_root: {results}\n"
                        f"  pretrain_network_g: {list_dataset}\n")
        return path

    loaded = load_options(write(list_dataset, tmp_path / 'res'), is_train=False)
    assert loaded.opt['datasets']['test_1']['list_file'] == str(list_dataset)
    assert ListFusionDataset.checked == [('test_1', 'datasets.test_1.')]
    with pytest.raises(ConfigError) as err:
        load_options(write(list_dataset.parent / 'absent.txt', tmp_path / 'res'), is_train=False)
    assert str(err.value).endswith(
        f"datasets.test_1.list_file: '{list_dataset.parent / 'absent.txt'}' is not a list file")
    assert 'dataroot' not in str(err.value)  # the paired dataset's keys are not asked for
    # the results folder is kept apart from the folders the class says it reads
    with pytest.raises(ConfigError, match=r'path\.results_root: .*datasets\.test_1\.list_file'):
        load_options(write(list_dataset, list_dataset.parent / 'res'), is_train=False)


def test_validation_and_test_script_use_the_contract(tmp_path, list_dataset, capsys):
    from basicsr.test import main as test_main
    from basicsr.validation import iter_set
    torch.manual_seed(0)
    net = build_from_cfg(ARCH_REGISTRY, {'type': 'DGFusion', 'channels': 2}).eval()
    dataset = ListFusionDataset(str(list_dataset))
    outcomes = list(iter_set(net, dataset, tmp_path / 'val', show_progress=False))
    assert [(o.stem, o.error is None) for o in outcomes] == [
        ('gone', False), ('000', True), ('001', True)]
    assert sorted(p.name for p in (tmp_path / 'val').iterdir()) == ['000.png', '001.png']

    ckpt = tmp_path / 'net.pth'
    torch.save(net.state_dict(), ckpt)
    opt = tmp_path / 'test.yml'
    opt.write_text(f"name: listed\ndevice: cpu\ndatasets:\n  test_1:\n    name: set_l\n"
                   f"    type: ListFusionDataset\n    list_file: {list_dataset}\n"
                   f"path:\n  results_root: {tmp_path / 'results'}\n  pretrain_network_g: {ckpt}\n")
    assert test_main(['-opt', str(opt)]) == 1  # the unmatched line is a failed item
    out = tmp_path / 'results' / 'listed' / 'set_l'
    assert sorted(p.name for p in out.glob('*.png')) == ['000.png', '001.png']
    assert (out / 'report.html').is_file()
    assert 'set_l: 1 pair(s) failed: gone' in capsys.readouterr().err
