"""basicsr/tools: every command's logic in the package, scripts/*.py as thin wrappers, console
entry points, no import-path edits anywhere, and one timer for the benchmarks."""
from __future__ import annotations

import ast
import importlib
import os
import re
import statistics
from pathlib import Path
from typing import List

import pytest
import torch

from basicsr.inference import timing
from basicsr.utils.cli import package_env, run_module
from tests.conftest import REPO

ENTRY_POINTS = ('train', 'test', 'fuse', 'evaluate', 'saliency', 'export', 'convert', 'plot',
                'benchmark', 'download')


def python_files() -> List[Path]:
    """The repository's own Python files (no virtual environment, no hidden folder)."""
    return [p for p in sorted(REPO.rglob('*.py'))
            if not any(part.startswith('.') or part in ('venv', '__pycache__')
                       for part in p.relative_to(REPO).parts)]


def edits_import_path(node: ast.AST) -> bool:
    """``sys.path.insert(...)``-style calls, ``sys.path = ...`` and ``sys.path[...] = ...``."""
    def is_sys_path(n: ast.AST) -> bool:
        return (isinstance(n, ast.Attribute) and n.attr == 'path' and isinstance(n.value, ast.Name)
                and n.value.id == 'sys')
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return is_sys_path(node.func.value)
    if isinstance(node, (ast.Assign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(is_sys_path(t.value if isinstance(t, ast.Subscript) else t) for t in targets)
    return False


def test_no_file_edits_the_import_path():
    found = [f"{path.relative_to(REPO)}:{node.lineno}" for path in python_files()
             for node in ast.walk(ast.parse(path.read_text(encoding='utf-8')))
             if edits_import_path(node)]
    assert found == []


def test_the_import_path_check_catches_an_edit():
    for line in ('sys.path.insert(0, "x")', 'sys.path.append("x")', 'sys.path = ["x"]',
                 'sys.path[:0] = ["x"]', 'sys.path += ["x"]'):
        assert any(edits_import_path(n) for n in ast.walk(ast.parse(line))), line
    assert not any(edits_import_path(n) for n in ast.walk(ast.parse('print(sys.path[0])')))


def wrapper_module(script: Path) -> str:
    """The module a ``scripts/*.py`` wrapper runs; fails unless the file is only a docstring,
    ``import sys``, ``from <module> import main`` and ``sys.exit(main())`` under ``__main__``."""
    body = ast.parse(script.read_text(encoding='utf-8')).body
    kinds = [type(node).__name__ for node in body]
    assert kinds == ['Expr', 'Import', 'ImportFrom', 'If'], f"{script.name}: {kinds}"
    assert [a.name for a in body[1].names] == ['sys'] and [a.name for a in body[2].names] == ['main']
    assert ast.unparse(body[3]) == "if __name__ == '__main__':\n    sys.exit(main())"
    return body[2].module


def test_every_script_is_a_thin_wrapper_of_a_package_main():
    scripts = sorted((REPO / 'scripts').glob('*.py'))
    assert len(scripts) >= 13
    for script in scripts:
        module = importlib.import_module(wrapper_module(script))
        assert callable(module.main), script.name
        assert module.__name__.startswith(('basicsr.tools.', 'basicsr.data.')), script.name


def test_every_command_module_has_a_script():
    """Each module of basicsr/tools with a ``main`` is reachable as ``scripts/<name>.py``."""
    wrapped = {wrapper_module(s) for s in (REPO / 'scripts').glob('*.py')}
    commands = {f"basicsr.tools.{p.stem}" for p in (REPO / 'basicsr' / 'tools').glob('*.py')
                if re.search(r'^def main\(', p.read_text(encoding='utf-8'), re.M)}
    assert commands and commands <= wrapped, sorted(commands - wrapped)


def console_scripts() -> dict:
    """``CONSOLE_SCRIPTS`` of setup.py (read, not run: running it would install)."""
    tree = ast.parse((REPO / 'setup.py').read_text(encoding='utf-8'))
    node = next(n for n in tree.body if isinstance(n, ast.Assign)
                and [t.id for t in n.targets if isinstance(t, ast.Name)] == ['CONSOLE_SCRIPTS'])
    return ast.literal_eval(node.value)


def test_console_entry_points_run_the_scripts_mains():
    entries = console_scripts()
    assert set(ENTRY_POINTS) <= set(entries)
    wrapped = {wrapper_module(s) for s in (REPO / 'scripts').glob('*.py')}
    for name, module in entries.items():
        assert callable(importlib.import_module(module).main), name
        assert module in wrapped or module in ('basicsr.train', 'basicsr.test'), name
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    named = set(re.findall(r'`dgfusion-([a-z]+)`', readme))
    assert named == set(entries), named ^ set(entries)


def test_a_console_entry_point_is_the_script(capsys):
    """``dgfusion-plot --help`` and ``python scripts/plot_curves.py --help`` are one parser."""
    main = importlib.import_module(console_scripts()['plot']).main
    with pytest.raises(SystemExit) as stop:
        main(['--help'])
    assert stop.value.code == 0 and 'usage:' in capsys.readouterr().out


def test_package_env_puts_this_checkout_first():
    env = package_env({'PYTHONPATH': os.pathsep.join(['/a', '/b']), 'OTHER': '1'})
    assert env['PYTHONPATH'].split(os.pathsep) == [str(REPO), '/a', '/b'] and env['OTHER'] == '1'
    assert package_env({})['PYTHONPATH'] == str(REPO)


def test_run_module_child_imports_this_package_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv('PYTHONPATH', raising=False)
    monkeypatch.chdir(tmp_path)
    res = run_module('basicsr.tools.benchmark_network', [], capture_output=True, text=True)
    assert res.returncode == 2 and 'usage: this module is run by scripts/benchmark.py' in res.stderr


# ---------------------------------------------------------------- one timer

class FakeClock:
    """``time.perf_counter`` stand-in: advanced only by the timed function."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timings_time_each_call_after_the_warmup(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, 'perf_counter', clock)
    steps = iter([9.0, 8.0, 0.003, 0.001, 0.002])  # two warm-up calls, then three timed ones

    def work() -> None:
        clock.now += next(steps)
    times = timing.timings(work, torch.device('cpu'), repeat=3, warmup=2)
    assert times == pytest.approx([0.003, 0.001, 0.002])
    steps = iter([9.0, 0.003, 0.001, 0.002])
    assert timing.median_ms(work, torch.device('cpu'), 3, 1) == pytest.approx(
        1000.0 * statistics.median([0.003, 0.001, 0.002]))


BENCHMARKS = ('tools/benchmark.py', 'tools/benchmark_metrics.py', 'tools/benchmark_network.py',
              'tools/benchmark_saliency.py', 'tools/gpu_check.py', 'deploy/onnx_bench.py')


@pytest.mark.parametrize('name', BENCHMARKS)
def test_benchmarks_time_with_the_one_timer(name):
    """No private clock in the benchmark entry points: they time through inference/timing.py."""
    source = (REPO / 'basicsr' / name).read_text(encoding='utf-8')
    clocks = [n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)
              and n.attr in ('perf_counter', 'time', 'monotonic', 'process_time')]
    assert clocks == [] and 'basicsr.inference.timing import' in source
