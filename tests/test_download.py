"""The data downloader: manifest, mirror copy, HTTP on loopback (404, corrupt, cut transfer),
resume, exit codes, and the option checker's pointer to it."""
from __future__ import annotations

import csv
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
import pytest

from basicsr.options import load_options
from basicsr.data import download as dl
from basicsr.utils.errors import ConfigError, Interrupted
from basicsr.utils.yaml_io import load_yaml_file
from tests.conftest import REPO

SHARED = REPO.parent / 'shared' / 'data'
needs_shared = pytest.mark.skipif(not (SHARED / 'MANIFEST.csv').is_file(),
                                  reason='../shared/data is not present')


# ---------------------------------------------------------------- a synthetic set

def make_set(root: Path, n: int = 4) -> List[Dict[str, object]]:
    """``n`` files of random bytes in a mirror under ``root`` (upstream layout ``up/...``), and
    their manifest rows (local layout ``Toy/{vis,ir}/NN.bin``)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        role = 'vis' if i % 2 == 0 else 'ir'
        data = rng.integers(0, 256, 1000 + 997 * i, dtype=np.uint8).tobytes()
        mirror_path = f"up/{role}/{i:02d} x.bin"  # a space: the URL must be quoted
        (root / mirror_path).parent.mkdir(parents=True, exist_ok=True)
        (root / mirror_path).write_bytes(data)
        rows.append({'set': 'toy', 'path': f"Toy/{role}/{i:02d}.bin", 'mirror_path': mirror_path,
                     'repository': 'owner/repo', 'commit': 'c' * 40, 'source_path': mirror_path,
                     'sha256': hashlib.sha256(data).hexdigest(), 'bytes': len(data)})
    return rows


def write_manifest(path: Path, rows: List[Dict[str, object]]) -> Path:
    with open(path, 'w', newline='', encoding='utf-8') as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dl.MANIFEST_COLUMNS), lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def toy(tmp_path):
    mirror = tmp_path / 'mirror'
    rows = make_set(mirror)
    manifest = write_manifest(tmp_path / 'manifest.csv', rows)
    return {'mirror': mirror, 'rows': rows, 'manifest': manifest, 'out': tmp_path / 'out'}


def run(capsys, *args) -> tuple:
    code = dl.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(root: Path) -> List[Path]:
    """Hidden (temporary) files anywhere under ``root``."""
    return [p for p in root.rglob('.*') if p.is_file()] if root.exists() else []


# ---------------------------------------------------------------- the shipped manifest

def test_shipped_manifest_lists_the_three_sets_in_the_option_files_layout():
    entries = dl.read_manifest()
    assert dl.set_names(entries) == ['roadscene', 'tno', 'vifb']
    paths = [e.path for e in entries]
    assert len(paths) == len(set(paths))
    counts = {}
    for e in entries:
        folder = str(Path(e.path).parent)
        counts[folder] = counts.get(folder, 0) + 1
        assert e.url().startswith(f"https://raw.githubusercontent.com/{e.repository}/{e.commit}/")
        assert len(e.commit) == 40
    assert counts['RoadScene/train/vis'] == counts['RoadScene/train/ir'] == 179
    assert counts['RoadScene/val/vis'] == counts['RoadScene/val/ir'] == 20
    assert counts['TNO/vis'] == counts['TNO/ir'] == counts['TNO/fused/SeAFusion'] == 10
    for folder in ('VIFB/vis', 'VIFB/ir', 'VIFB/fused/IFCNN', 'VIFB/fused/SeAFusion',
                   'VIFB/fused/U2Fusion', 'VIFB/fused/VSMWLS'):
        assert counts[folder] == 21, folder
    # every pair has both images: same stems in vis and ir of each split
    stems = {f: {Path(e.path).stem for e in entries if str(Path(e.path).parent) == f} for f in counts}
    for split in ('RoadScene/train', 'RoadScene/val', 'TNO', 'VIFB'):
        assert stems[f"{split}/vis"] == stems[f"{split}/ir"]


@pytest.mark.parametrize('opt_file', ['options/test/DGFusion.yml',
                                      'options/train/DGFusion_RoadScene.yml'])
def test_public_option_files_read_the_downloaded_layout(opt_file):
    entries = dl.read_manifest()
    folders = {str(Path('datasets') / Path(e.path).parent) for e in entries}
    opt = load_yaml_file(REPO / opt_file)
    for ds in opt['datasets'].values():
        for key in ('dataroot_vis', 'dataroot_ir'):
            assert ds[key] in folders, (opt_file, key, ds[key])
            assert dl.download_hint(ds[key]).startswith('python scripts/download_data.py ')


@needs_shared
def test_shipped_manifest_is_the_upstream_manifest():
    with open(SHARED / 'MANIFEST.csv', newline='', encoding='utf-8') as fh:
        upstream = {r['local_path']: r for r in csv.DictReader(fh)}
    entries = dl.read_manifest()
    assert sorted(e.mirror_path for e in entries) == sorted(upstream)
    for e in entries:
        row = upstream[e.mirror_path]
        assert (e.repository, e.commit, e.source_path, e.sha256, e.size) == (
            row['repository'], row['commit'], row['path_in_repository'], row['sha256'],
            int(row['bytes']))


def test_no_shipped_file_names_the_development_folder():
    """A user's clone has no development folder beside it: no shipped code, option or doc
    names it (tests may, and skip without it)."""
    skip = {'tests', 'datasets', 'results', 'experiments', 'build', 'dist'}
    files = [REPO / 'datasets' / 'README.md']
    for folder, dirs, names in os.walk(REPO):
        top = Path(folder) == REPO
        dirs[:] = [d for d in dirs if not d.startswith('.') and not (top and d in skip)
                   and not d.endswith('.egg-info')]
        files += [Path(folder) / n for n in names if n.endswith(('.py', '.yml', '.md'))]
    hits = []
    for path in files:
        for no, line in enumerate(path.read_text(encoding='utf-8', errors='replace').splitlines(), 1):
            if 'shared' + '/' in line:
                hits.append(f"{path.relative_to(REPO)}:{no}: {line.strip()}")
    assert not hits, '\n'.join(hits)


# ---------------------------------------------------------------- hints

def test_download_hint_names_the_set_and_a_non_default_root():
    assert dl.download_hint('datasets/TNO/vis') == 'python scripts/download_data.py tno'
    assert dl.download_hint('datasets/VIFB/fused/IFCNN') == 'python scripts/download_data.py vifb'
    assert dl.download_hint('/data/x/RoadScene/val/ir') == (
        'python scripts/download_data.py roadscene --to /data/x')
    assert dl.download_hint('datasets/DGFusion/train/vis') is None
    assert dl.download_hint('datasets/TNO/vis/01.png') is None  # a file, not a folder


def test_missing_public_folder_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_options(REPO / 'options' / 'test' / 'DGFusion.yml')
    msg = str(info.value)
    assert ("datasets.test_2.dataroot_vis: folder 'datasets/TNO/vis' does not exist; get it "
            "with: python scripts/download_data.py tno") in msg
    assert ("datasets.test_1.dataroot_ir: folder 'datasets/RoadScene/val/ir' does not exist; "
            "get it with: python scripts/download_data.py roadscene") in msg
    assert "get it with: python scripts/download_data.py vifb" in msg


# ---------------------------------------------------------------- local mirror

def test_mirror_copy_verifies_and_a_rerun_skips_everything(toy, capsys):
    code, out, err = run(capsys, 'toy', '--from', toy['mirror'], '--to', toy['out'],
                         '--manifest', toy['manifest'])
    assert code == 0, err
    for row in toy['rows']:
        assert (toy['out'] / row['path']).read_bytes() == (toy['mirror'] / row['mirror_path']).read_bytes()
    assert '4 fetched, 0 already in place, 0 failed' in out
    code, out, err = run(capsys, 'all', '--from', toy['mirror'], '--to', toy['out'],
                         '--manifest', toy['manifest'])
    assert code == 0 and '0 fetched, 4 already in place, 0 failed' in out
    assert not leftovers(toy['out'])


def test_mirror_laid_out_like_the_data_root_works_too(toy, capsys):
    assert run(capsys, 'toy', '--from', toy['mirror'], '--to', toy['out'],
               '--manifest', toy['manifest'])[0] == 0
    again = toy['out'].parent / 'again'
    code, out, err = run(capsys, 'toy', '--from', toy['out'], '--to', again, '--manifest', toy['manifest'])
    assert code == 0, err
    assert all((again / r['path']).is_file() for r in toy['rows'])


def test_resume_fetches_only_missing_or_wrong_files_and_clears_stale_temps(toy, capsys):
    args = ('toy', '--from', toy['mirror'], '--to', toy['out'], '--manifest', toy['manifest'])
    assert run(capsys, *args)[0] == 0
    rows = toy['rows']
    gone, bad, kept = (toy['out'] / rows[i]['path'] for i in range(3))
    gone.unlink()
    bad.write_bytes(b'\0' * rows[1]['bytes'])  # right size, wrong content
    stale = gone.with_name(f".{gone.name}.0123456789ab.part")
    stale.write_bytes(b'partial')  # what a killed run leaves
    kept_mtime = kept.stat().st_mtime_ns
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert '2 fetched, 2 already in place, 0 failed' in out
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == rows[1]['sha256']
    assert gone.is_file() and not stale.exists()
    assert kept.stat().st_mtime_ns == kept_mtime  # verified files are not rewritten


def test_mirror_missing_a_file_fails_that_file_only(toy, capsys):
    missing = toy['rows'][3]
    (toy['mirror'] / missing['mirror_path']).unlink()
    code, out, err = run(capsys, 'toy', '--from', toy['mirror'], '--to', toy['out'],
                         '--manifest', toy['manifest'])
    assert code == 1
    assert f"failed: {missing['path']}: not in the mirror" in err
    assert '3 fetched, 0 already in place, 1 failed' in out
    assert not (toy['out'] / missing['path']).exists() and not leftovers(toy['out'])


# ---------------------------------------------------------------- HTTP on loopback

class Server:
    """A loopback HTTP server of ``files`` (URL path -> bytes) with per-path faults:
    ``404``, ``corrupt`` (same length, other bytes) or ``cut`` (half the body, then close)."""

    def __init__(self, files: Dict[str, bytes]) -> None:
        self.files, self.faults, self.requests = files, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                data, fault = server.files.get(self.path), server.faults.get(self.path)
                if data is None or fault == '404':
                    self.send_error(404)
                    return
                if fault == 'corrupt':
                    data = bytes(255 - b for b in data)
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if fault == 'cut':
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/base"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> 'Server':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(toy, monkeypatch) -> Iterator[Server]:
    files = {}
    for row in toy['rows']:
        url_path = '/base/' + '/'.join([str(row['repository']), str(row['commit']),
                                        str(row['source_path']).replace(' ', '%20')])
        files[url_path] = (toy['mirror'] / row['mirror_path']).read_bytes()
    with Server(files) as server:
        monkeypatch.setenv(dl.BASE_URL_ENV, server.url)
        yield server


def test_http_download_from_pinned_urls(toy, served, capsys):
    code, out, err = run(capsys, 'toy', '--to', toy['out'], '--manifest', toy['manifest'])
    assert code == 0, err
    assert sorted(served.requests) == sorted(served.files)  # one request per file, quoted paths
    for row in toy['rows']:
        assert hashlib.sha256((toy['out'] / row['path']).read_bytes()).hexdigest() == row['sha256']


def test_http_faults_are_named_nothing_half_written_and_a_rerun_resumes(toy, served, capsys):
    rows, urls = toy['rows'], sorted(served.files)
    faults = {urls[0]: '404', urls[1]: 'corrupt', urls[2]: 'cut'}
    served.faults.update(faults)
    args = ('toy', '--to', toy['out'], '--manifest', toy['manifest'])
    code, out, err = run(capsys, *args)
    assert code == 1
    by_url = {('/base/owner/repo/' + 'c' * 40 + '/' + str(r['source_path']).replace(' ', '%20')): r
              for r in rows}
    lines = [ln for ln in err.splitlines() if ln.startswith('failed: ')]
    assert len(lines) == 3
    expect = {'404': 'HTTP 404', 'corrupt': 'SHA-256 mismatch', 'cut': 'transfer interrupted after'}
    for url, fault in faults.items():
        row = by_url[url]
        line = next(ln for ln in lines if ln.startswith(f"failed: {row['path']}: "))
        assert expect[fault] in line
        assert not (toy['out'] / row['path']).exists()
    assert '1 fetched, 0 already in place, 3 failed' in out
    assert not leftovers(toy['out'])
    served.faults.clear()
    served.requests.clear()
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert '3 fetched, 1 already in place, 0 failed' in out
    assert sorted(served.requests) == sorted(faults)  # only the failed files were fetched again


def test_interrupt_keeps_verified_files_and_leaves_no_temp(toy, capsys, monkeypatch):
    entries = dl.read_manifest(toy['manifest'])

    class Stops:
        def __init__(self, data: bytes) -> None:
            self.data, self.calls = data, 0

        def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return self.data[:n]

        def close(self) -> None:
            pass

    real = dl.mirror_opener(toy['mirror'])

    def opener(entry):
        if entry == entries[2]:
            return Stops(b'x' * 100)
        return real(entry)

    with pytest.raises(Interrupted, match='2 of 4 files verified'):
        dl.download(entries, toy['out'], opener, show_progress=False)
    assert (toy['out'] / entries[0].path).is_file() and (toy['out'] / entries[1].path).is_file()
    assert not (toy['out'] / entries[2].path).exists() and not leftovers(toy['out'])
    monkeypatch.setattr(dl, 'mirror_opener', lambda mirror: opener)
    code, out, err = run(capsys, 'toy', '--from', toy['mirror'], '--to', toy['out'],
                         '--manifest', toy['manifest'])
    assert code == 130 and 'interrupted: 2 of 4 files verified' in err and 'Traceback' not in err


# ---------------------------------------------------------------- bad arguments

def test_bad_arguments_exit_2_with_one_line(toy, capsys, monkeypatch, tmp_path):
    base = ('--manifest', toy['manifest'], '--from', toy['mirror'])
    code, out, err = run(capsys, 'toy', 'zzz', '--to', toy['out'], *base)
    assert code == 2 and err.strip() == "error: unknown set 'zzz' (available: toy, all)"
    a_file = tmp_path / 'file'
    a_file.write_text('x')
    code, out, err = run(capsys, 'toy', '--to', a_file, *base)
    assert code == 2 and err.strip() == f"error: --to folder {a_file} exists and is not a folder"
    code, out, err = run(capsys, 'toy', '--to', toy['out'], '--manifest', toy['manifest'],
                         '--from', tmp_path / 'nowhere')
    assert code == 2 and '--from' in err and str(tmp_path / 'nowhere') in err
    monkeypatch.setenv(dl.BASE_URL_ENV, 'file:///etc')
    code, out, err = run(capsys, 'toy', '--to', toy['out'], '--manifest', toy['manifest'])
    assert code == 2 and dl.BASE_URL_ENV in err
    assert not toy['out'].exists() or not any(toy['out'].rglob('*.bin'))


def test_bad_manifest_row_is_named_by_line(toy):
    rows = [dict(r) for r in toy['rows']]
    rows[1]['sha256'] = 'abc'
    path = write_manifest(toy['manifest'], rows)
    with pytest.raises(Exception, match=r'manifest\.csv:3: expected a 64-digit SHA-256'):
        dl.read_manifest(path)


def test_script_exits_2_on_an_unknown_set(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / 'scripts' / 'download_data.py'), 'roadscen',
                          '--to', str(tmp_path / 'd')], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: unknown set 'roadscen' (available: roadscene, tno, vifb, all); did you mean 'roadscene'?"]
    assert not (tmp_path / 'd').exists()


def test_no_answer_from_the_server_stops_early_and_creates_nothing(toy, capsys, monkeypatch):
    import socket
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(dl.BASE_URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setattr(dl, 'MAX_UNREACHABLE', 2)
    code, out, err = run(capsys, 'toy', '--to', toy['out'], '--manifest', toy['manifest'])
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith('failed: ') for ln in lines[:3])
    assert 'cannot fetch http://127.0.0.1' in lines[0]
    assert lines[2] == 'failed: 2 more file(s) not tried: the server did not answer 2 times in a row'
    assert lines[3].startswith('4 file(s) failed: ')
    assert '0 fetched, 0 already in place, 4 failed' in out
    assert list(toy['out'].iterdir()) == []  # no empty data folders that would hide the hint
