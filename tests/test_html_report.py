"""report.html of test.py, scripts/evaluate.py and scripts/reference_eval.py: the tables equal the
CSVs, the best cells follow each metric's direction, links reach the files, names are escaped."""
from __future__ import annotations

import csv
import importlib
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from basicsr.inference.html_report import (ImageColumn, MetricTable, Section, directions,
                                           parse_compare, render_report, thumbnail_uri,
                                           write_report)
from basicsr.inference.report import read_csv, write_csv
from basicsr.test import main as run_test_cli
from basicsr.utils.errors import ConfigError
from tests.conftest import write_pairs

ODD = 'a<b&c"d'  # a name the HTML must escape


class Cell:
    def __init__(self, tag: str, attrs: Dict[str, Optional[str]]):
        self.tag, self.attrs, self.text = tag, attrs, ''
        self.links: List[str] = []
        self.images: List[Dict[str, Optional[str]]] = []


class Page(HTMLParser):
    """Tables of a report: per table its class, and rows of cells per part (thead/tbody/tfoot)."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: List[dict] = []
        self._part, self._cell = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'table':
            self.tables.append({'class': attrs.get('class', ''), 'thead': [], 'tbody': [],
                                'tfoot': []})
        elif tag in ('thead', 'tbody', 'tfoot'):
            self._part = tag
        elif tag == 'tr':
            self.tables[-1][self._part].append([])
        elif tag in ('td', 'th'):
            self._cell = Cell(tag, attrs)
            self.tables[-1][self._part][-1].append(self._cell)
        elif tag == 'a' and self._cell is not None:
            self._cell.links.append(attrs['href'])
        elif tag == 'img' and self._cell is not None:
            self._cell.images.append(attrs)

    def handle_endtag(self, tag):
        if tag in ('td', 'th'):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.text += data

    def table(self, cls: str) -> dict:
        found = [t for t in self.tables if cls in t['class'].split()]
        assert len(found) == 1, [t['class'] for t in self.tables]
        return found[0]


def load_script(name: str):
    """The module behind ``scripts/<name>.py``: ``basicsr.tools.<name>``."""
    return importlib.import_module(f'basicsr.tools.{name}')


def solid(path: Path, rgb, size=(24, 32)) -> Path:
    img = np.zeros(size + (3,), np.uint8)
    img[:] = rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def noisy_folder(folder: Path, stems, seed: int, suffix: str = '', size=(24, 32)) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}{suffix}.png"), rng.integers(0, 256, size + (3,), np.uint8))
    return folder


def csv_rows(path: Path) -> List[List[str]]:
    with open(path, newline='', encoding='utf-8') as fh:
        return list(csv.reader(fh))


def check_links(page: Page, base: Path) -> int:
    """Every link of the thumbnail table resolves to an existing file; returns their number."""
    n = 0
    for row in page.table('thumbs')['tbody']:
        for c in row:
            for href in c.links:
                assert not href.startswith(('/', 'file:', 'http')), href
                assert (base / unquote(href)).is_file(), href
                n += 1
    return n


# ----------------------------------------------------------------------------- library

def test_directions_follow_the_metric_registry():
    from basicsr.metrics import higher_is_better
    got = directions(['EN', 'Qcv', 'CE', 'latency_ms', 'image_size'], 'vifb')
    assert got == {'EN': higher_is_better('EN', 'vifb'), 'Qcv': higher_is_better('Qcv', 'vifb'),
                   'CE': higher_is_better('CE', 'vifb'), 'latency_ms': False}
    assert got['EN'] and not got['Qcv'] and not got['CE']
    assert 'Qcv' not in directions(['Qcv'], 'cddfuse')  # not a metric of that convention


def test_best_cell_follows_each_columns_direction(tmp_path):
    rng = np.random.default_rng(3)
    rows = [{'image': f"im{k}", 'EN': float(rng.random()), 'Qcv': float(rng.random() * 100),
             'latency_ms': float(rng.random()), 'other': float(rng.random())} for k in range(5)]
    rows[1]['Qcv'] = float('nan')              # n/a is never best
    rows[3]['EN'] = rows[0]['EN'] = 2.0        # a tie: both marked
    table = MetricTable('t', {'': rows}, directions(['EN', 'Qcv', 'latency_ms', 'other'], 'vifb'))
    page = Page(render_report('r', [Section('s', [table])], tmp_path))
    body = page.table('images')['tbody']
    header = [c.text.split()[0] for c in page.table('images')['thead'][0]]
    assert header == ['image', 'EN', 'Qcv', 'latency_ms', 'other']
    marked = {header[i]: {r[0].text for r in body if r[i].attrs.get('class') == 'best'}
              for i in range(1, 5)}
    finite_qcv = [r for r in rows if math.isfinite(r['Qcv'])]
    assert marked['EN'] == {'im0', 'im3'}
    assert marked['Qcv'] == {min(finite_qcv, key=lambda r: r['Qcv'])['image']}
    assert marked['latency_ms'] == {min(rows, key=lambda r: r['latency_ms'])['image']}
    assert marked['other'] == set()            # no direction known: not ranked
    qcv_na = next(r for r in body if r[0].text == 'im1')[2]
    assert qcv_na.text == 'n/a' and qcv_na.attrs['data-value'] == ''
    foot = page.table('images')['tfoot']
    assert len(foot) == 1 and foot[0][0].text == 'mean (5 images)'
    assert foot[0][2].text.endswith('(4 of 5)')


def test_means_table_marks_the_best_method(tmp_path):
    groups = {'A': [{'image': 'x', 'EN': 1.0, 'Qcv': 5.0}, {'image': 'y', 'EN': 3.0, 'Qcv': 7.0}],
              'B': [{'image': 'x', 'EN': 2.5, 'Qcv': 4.0}, {'image': 'y', 'EN': 2.0, 'Qcv': 5.0}]}
    table = MetricTable('t', groups, directions(['EN', 'Qcv'], 'vifb'))
    page = Page(render_report('r', [Section('s', [table])], tmp_path))
    means = page.table('means')['tbody']
    best = {(r[0].text, i) for r in means for i in (2, 3) if r[i].attrs.get('class') == 'best'}
    assert best == {('B', 2), ('B', 3)}  # EN 2.25 > 2.0; Qcv 4.5 < 6.0 (lower is better)
    assert [float(r[2].attrs['data-value']) for r in means] == [2.0, 2.25]


def test_names_are_escaped_and_links_reach_the_files(tmp_path):
    img = solid(tmp_path / 'imgs' / f"{ODD}#1.png", (10, 200, 30))
    rows = [{'image': ODD, 'EN': 1.5}]
    section = Section(f"set {ODD}", [MetricTable(ODD, {ODD: rows, 'B': rows}, {'EN': True})],
                      [ODD], [ImageColumn(f"col {ODD}", {ODD: img}), ImageColumn('none', {})])
    out = write_report(tmp_path / 'out' / 'report.html', f"title {ODD}", [section])
    text = out.read_text(encoding='utf-8')
    assert ODD not in text and 'a&lt;b&amp;c&quot;d' in text
    page = Page(text)
    assert page.table('images')['tbody'][0][0].text == ODD
    thumbs = page.table('thumbs')
    assert thumbs['thead'][0][1].text == f"col {ODD}"
    row = thumbs['tbody'][0]
    assert row[0].text == ODD and row[2].text == 'no image'
    assert check_links(page, out.parent) == 1
    assert (out.parent / unquote(row[1].links[0])).resolve() == img.resolve()
    assert row[1].images[0]['src'].startswith('data:image/jpeg;base64,')


def test_thumbnail_is_a_small_jpeg_of_the_image(tmp_path):
    import base64
    big = solid(tmp_path / 'big.png', (200, 40, 10), size=(400, 1000))
    uri = thumbnail_uri(big)
    data = np.frombuffer(base64.b64decode(uri.split(',', 1)[1]), np.uint8)
    thumb = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert thumb.shape == (64, 160, 3)
    assert np.abs(thumb[32, 80].astype(int) - [10, 40, 200]).max() <= 6  # BGR, JPEG tolerance
    deep = tmp_path / 'ir16.png'
    cv2.imwrite(str(deep), np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 50)
    gray = cv2.imdecode(np.frombuffer(base64.b64decode(thumbnail_uri(deep).split(',', 1)[1]),
                                      np.uint8), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (20, 30) and gray.min() < 20 and gray.max() > 235


@pytest.mark.parametrize('item, needle', [('SeAFusion', 'expected NAME=FOLDER'),
                                          ('=x', 'expected NAME=FOLDER'),
                                          ('A=/no/such/folder', 'not found')])
def test_parse_compare_errors_name_the_item(item, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_compare([item])


def test_parse_compare_refuses_a_name_twice(tmp_path):
    assert parse_compare([f"A={tmp_path}"]) == {'A': tmp_path}
    with pytest.raises(ConfigError, match="'A' given twice"):
        parse_compare([f"A={tmp_path}", f"A={tmp_path}"])


def test_read_csv_gives_back_the_rows(tmp_path):
    groups = {'A': [{'image': 'x', 'EN': 0.1 + 0.2, 'SSIM': float('nan')}],
              'B': [{'image': 'x', 'EN': 1 / 3, 'SSIM': 2.0}]}
    write_csv(tmp_path / 't.csv', groups)
    back = read_csv(tmp_path / 't.csv')
    assert list(back) == ['A', 'B'] and back['B'] == groups['B']
    assert back['A'][0]['EN'] == 0.1 + 0.2 and math.isnan(back['A'][0]['SSIM'])


# ----------------------------------------------------------------------------- evaluate.py

@pytest.fixture
def sources(tmp_path):
    data = write_pairs(tmp_path / 'data', n=3, size=(24, 32), masks=False, seed=4)
    stems = ['000', '001', '002']
    noisy_folder(tmp_path / 'ours', stems, seed=5)
    noisy_folder(tmp_path / 'published', stems, seed=6, suffix=f'_{ODD}')
    return data, stems


def test_evaluate_report_equals_its_csv(tmp_path, sources, capsys):
    (vis, ir), stems = (sources[0]['vis'], sources[0]['ir']), sources[1]
    out = tmp_path / 'tables' / 't.csv'
    code = load_script('evaluate').main([
        '--fused', str(tmp_path / 'ours'), '--fused-suffix', '', '--vis', str(vis), '--ir', str(ir),
        '--compare', f"{ODD}={tmp_path / 'published'}", '--metrics', 'EN', 'Qabf', 'SSIM',
        '--workers', '1', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    report = out.parent / 'report.html'
    assert f"report written to {report}" in capsys.readouterr().out
    rows = csv_rows(out)
    assert rows[0] == ['method', 'image', 'EN', 'Qabf', 'SSIM']
    expected = {(r[0], r[1]): r[2:] for r in rows[1:]}
    assert {m for m, _ in expected} == {'ours', ODD}
    page = Page(report.read_text(encoding='utf-8'))
    table = page.table('images')
    seen = {}
    for row in table['tbody'] + table['tfoot']:
        key = (row[0].text, 'mean' if row[1].text.startswith('mean') else row[1].text)
        seen[key] = [c.attrs['data-value'] for c in row[2:]]
        assert [c.text for c in row[2:]] == [f"{float(v):.4f}" for v in seen[key]]
    assert seen == expected
    means = {r[0].text: [c.attrs['data-value'] for c in r[2:]] for r in page.table('means')['tbody']}
    assert means == {m: v for (m, i), v in expected.items() if i == 'mean'}
    thumbs = page.table('thumbs')
    assert [c.text for c in thumbs['thead'][0]] == ['image', 'vis', 'ir', 'ours', ODD]
    assert [r[0].text for r in thumbs['tbody']] == stems
    assert all(len(c.images) == 1 for r in thumbs['tbody'] for c in r[1:])
    assert check_links(page, report.parent) == 12


def test_evaluate_no_report_and_compare_errors(tmp_path, sources, capsys):
    (vis, ir) = (sources[0]['vis'], sources[0]['ir'])
    evaluate = load_script('evaluate')
    base = ['--fused', str(tmp_path / 'ours'), '--fused-suffix', '', '--vis', str(vis), '--ir',
            str(ir), '--metrics', 'EN', '--workers', '1', '--out', str(tmp_path / 'x' / 't.csv')]
    assert evaluate.main(base + ['--no-report']) == 0
    assert (tmp_path / 'x' / 't.csv').is_file() and not (tmp_path / 'x' / 'report.html').exists()
    empty = tmp_path / 'empty'
    noisy_folder(empty, ['zzz'], seed=1)
    capsys.readouterr()
    for extra, needle in ((['--compare', 'nofolder'], 'expected NAME=FOLDER'),
                          (['--compare', f"X={empty}"], f"--compare X={empty}: no image named"),
                          (['--compare', f"ours={tmp_path / 'published'}"], "'ours' is already taken"),
                          (['--no-report', '--report', str(tmp_path / 'r.html')], 'exclude each other')):
        assert evaluate.main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error: ') and needle in err[0], err


# ----------------------------------------------------------------------------- test.py

def test_test_script_report_beside_its_table(tmp_path, capsys):
    import torch
    from basicsr.archs.dgfusion.module import DGFusion
    data = write_pairs(tmp_path / 'data', n=3, size=(20, 28), masks=False, seed=8)
    torch.manual_seed(0)
    torch.save(DGFusion(channels=2).state_dict(), tmp_path / 'c2.pth')
    other = noisy_folder(tmp_path / 'other', ['000', '002'], seed=9, suffix='_Other', size=(20, 28))
    opt = tmp_path / 'test.yml'
    opt.write_text(f"""name: tiny_test
device: cpu
datasets:
  test_1:
    name: set_a
    dataroot_vis: {data['vis']}
    dataroot_ir: {data['ir']}
path:
  results_root: {tmp_path / 'results'}
  pretrain_network_g: {tmp_path / 'c2.pth'}
val:
  metrics:
    names: [EN, Qabf]
    convention: tang
""")
    assert run_test_cli(['-opt', str(opt), '--compare', f"Other={other}"]) == 0
    out = tmp_path / 'results' / 'tiny_test' / 'set_a'
    rows = csv_rows(out / 'metrics_tang.csv')
    page = Page((out / 'report.html').read_text(encoding='utf-8'))
    table = page.table('images')
    assert [c.text.split()[0] for c in table['thead'][0]] == rows[0]
    got = [[r[0].text] + [c.attrs['data-value'] for c in r[1:]] for r in table['tbody']]
    assert got == rows[1:4]
    assert [c.attrs['data-value'] for c in table['tfoot'][0][1:]] == rows[4][1:]
    best = [r[0].text for r in table['tbody'] if r[1].attrs.get('class') == 'best']
    assert best == [min(rows[1:4], key=lambda r: float(r[1]))[0]]  # latency: lower is better
    thumbs = page.table('thumbs')
    assert [c.text for c in thumbs['thead'][0]] == ['image', 'vis', 'ir', 'fused', 'Other']
    assert [r[4].text for r in thumbs['tbody']] == ['', 'no image', '']
    assert check_links(page, out) == 3 * 3 + 2
    assert thumbs['tbody'][0][3].links == ['000.png']


def test_test_script_bad_compare_exits_2_before_any_work(tmp_path, capsys):
    assert run_test_cli(['-opt', str(tmp_path / 'none.yml'), '--compare', 'X']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compare 'X': expected NAME=FOLDER" in err[0]


# ----------------------------------------------------------------------------- reference_eval.py

def test_reference_eval_section_from_its_csvs(tmp_path):
    ref = load_script('reference_eval')
    stems = ['p1', 'p2']
    data = tmp_path / 'data'
    vis, ir = noisy_folder(data / 'vi', stems, 1), noisy_folder(data / 'ir', stems, 2)
    work = tmp_path / 'work'
    for k, label in enumerate(('ours', 'average', 'maximum')):
        noisy_folder(work / label, stems, 3 + k)
    noisy_folder(data / 'pub', ['p1'], 7, suffix='_M')
    es = ref.EvalSet('Tiny', 'vi', 'ir', {'M': ('pub', '_M')})
    rng = np.random.default_rng(0)
    groups = {m: [{'image': s, 'EN': float(rng.random()), 'Qcv': float(rng.random())} for s in stems]
              for m in ('ours', 'average', 'maximum', 'M')}
    write_csv(tmp_path / 'tiny_vifb.csv', groups)
    section = ref.report_section(es, vis, ir, data, work, {'vifb': tmp_path / 'tiny_vifb.csv'})
    out = write_report(tmp_path / 'report.html', 'ref', [section])
    page = Page(out.read_text(encoding='utf-8'))
    rows = csv_rows(tmp_path / 'tiny_vifb.csv')
    table = page.table('images')
    got = [[r[0].text, r[1].text] + [c.attrs['data-value'] for c in r[2:]] for r in table['tbody']]
    assert got == [r for r in rows[1:] if r[1] != 'mean']
    qcv_best = [(r[0].text, r[1].text) for r in table['tbody'] if r[3].attrs.get('class') == 'best']
    flat = [(m, row['image'], row['Qcv']) for m, rs in groups.items() for row in rs]
    assert qcv_best == [min(flat, key=lambda t: t[2])[:2]]  # Qcv: lower is better in vifb
    thumbs = page.table('thumbs')
    assert [c.text for c in thumbs['thead'][0]] == ['image', 'vis', 'ir', 'ours', 'average',
                                                    'maximum', 'M']
    assert [r[6].text for r in thumbs['tbody']] == ['', 'no image']
    assert check_links(page, tmp_path) == 2 * 5 + 1


# ----------------------------------------------------------------------------- browser

@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, capsys):
    """The report opened from disk by a real browser shows the table and the thumbnails: the
    screenshot (kept in the test's temp folder) holds the best-cell green and the colours of
    the test images (solid top halves); a click on a header sorts the rows by that column."""
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    if browser is None:
        pytest.skip('chromium is not installed (Debian: apt-get install chromium)')
    colours = {'vis': (220, 40, 40), 'ir': (128, 128, 128), 'ours': (40, 60, 220),
               'Other': (240, 200, 0)}
    rng = np.random.default_rng(0)
    for role, rgb in colours.items():
        (tmp_path / role).mkdir()
        for stem in ('000', '001', '002'):
            img = np.zeros((60, 90, 3), np.uint8)
            img[:30] = rgb
            img[30:] = rng.integers(0, 256, (30, 90, 3), np.uint8)  # metrics differ per image
            cv2.imwrite(str(tmp_path / role / f"{stem}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / 'eval' / 't.csv'
    code = load_script('evaluate').main([
        '--fused', str(tmp_path / 'ours'), '--fused-suffix', '', '--vis', str(tmp_path / 'vis'),
        '--ir', str(tmp_path / 'ir'), '--compare', f"Other={tmp_path / 'Other'}",
        '--metrics', 'EN', 'SD', '--workers', '1', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    report = out.parent / 'report.html'
    shot = tmp_path / 'report.png'
    done = subprocess.run([browser, '--headless', '--no-sandbox', '--disable-gpu',
                           '--hide-scrollbars', f'--screenshot={shot}', '--window-size=900,1300',
                           report.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    img = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB).astype(int)

    def pixels(rgb, tol=12) -> int:
        return int((np.abs(img - np.array(rgb)).max(axis=2) <= tol).sum())

    assert pixels((0xd8, 0xf0, 0xd8), 2) > 200  # best cells of the tables
    for role, rgb in colours.items():
        assert pixels(rgb) > 3 * 0.8 * 30 * 90, role  # three solid half-thumbnails

    clicked = tmp_path / 'clicked.html'  # the report, plus a click on the EN header once loaded
    clicked.write_text(report.read_text(encoding='utf-8').replace(
        '</body>', "<script>document.querySelector('table.images th[data-column=EN]').click()"
                   "</script></body>"), encoding='utf-8')
    dom = subprocess.run([browser, '--headless', '--no-sandbox', '--disable-gpu', '--dump-dom',
                          clicked.as_uri()], capture_output=True, text=True, timeout=120).stdout
    table = Page(dom).table('images')
    en = [float(r[2].attrs['data-value']) for r in table['tbody']]
    assert len(en) == 6 and en == sorted(en) and en != [float(r[2]) for r in csv_rows(out)[1:]
                                                         if r[1] != 'mean']
    assert [r[1].text for r in table['tfoot']] == ['mean (3 images)'] * 2
