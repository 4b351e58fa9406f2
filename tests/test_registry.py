"""Registries: explicit imports cover every module, clear errors for unknown or duplicate names."""
from __future__ import annotations

import ast

import pytest

from basicsr.utils.errors import RegistryError
from basicsr.utils.registry import Registry, build_from_cfg
from tests.conftest import REPO

PACKAGES = {'archs': '_arch.py', 'data': '_dataset.py', 'losses': '_losses.py', 'models': '_model.py',
            'metrics': '.py'}


@pytest.mark.parametrize('package,suffix', sorted(PACKAGES.items()))
def test_every_module_is_imported_explicitly(package, suffix):
    init = REPO / 'basicsr' / package / '__init__.py'
    tree = ast.parse(init.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == f"basicsr.{package}":
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"basicsr.{package}."):
            imported.add(node.module.rsplit('.', 1)[1])
    modules = {p.stem for p in (REPO / 'basicsr' / package).glob(f"*{suffix}") if p.name != '__init__.py'}
    if package == 'metrics':
        modules = {m for m in modules if m.endswith(('_metrics', '_metric'))}
    if package == 'archs':  # a network is a sub-package (archs/<name>/) or an *_arch.py file
        modules |= {p.parent.name for p in (REPO / 'basicsr' / package).glob('*/__init__.py')}
    assert modules and modules <= imported, f"not imported in {init}: {sorted(modules - imported)}"


def test_unknown_name_lists_available_and_closest():
    reg = Registry('thing')
    reg.register(type('Alpha', (), {}))
    reg.register(type('Beta', (), {}))
    with pytest.raises(RegistryError) as info:
        reg.get('Alhpa')
    assert str(info.value) == "unknown thing type 'Alhpa' (available: Alpha, Beta); did you mean 'Alpha'?"


def test_duplicate_name_names_both_places():
    reg = Registry('thing')

    @reg.register()
    class Same:  # noqa: D401
        pass

    with pytest.raises(RegistryError, match="name 'Same' registered twice .*test_registry.*Same"):
        reg.register(type('Same', (), {}))


def test_build_does_not_mutate_and_checks_kwargs():
    import basicsr.archs  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY
    cfg = {'type': 'DGFusion', 'channels': 2}
    net = build_from_cfg(ARCH_REGISTRY, cfg)
    assert cfg == {'type': 'DGFusion', 'channels': 2}
    assert net.channels == 2
    with pytest.raises(RegistryError, match='network_g.chanels: unknown option for DGFusion; did you mean'):
        build_from_cfg(ARCH_REGISTRY, {'type': 'DGFusion', 'chanels': 2}, where='network_g')


# Layers from the bottom up: a module may import its own package and strictly lower layers only
# (see ``Which way imports run`` in the house style). Every module of basicsr/ must be placed.
LAYERS = {
    'utils': 0,
    'archs': 1, 'data': 1, 'losses': 1, 'metrics': 1,
    'models': 2,
    'inference': 3,
    'validation': 4, 'options': 4, 'deploy': 4,
    'trainer': 5,
    'train': 6, 'test': 6,
    'tools': 7,
}


def _unit(module: str) -> str:
    """``basicsr.utils.dist`` -> ``utils``; ``basicsr.train`` -> ``train``."""
    return module.split('.')[1] if module.count('.') >= 1 else ''


def _modules():
    for path in sorted((REPO / 'basicsr').rglob('*.py')):
        rel = path.relative_to(REPO).with_suffix('')
        parts = list(rel.parts[:-1]) if rel.name == '__init__' else list(rel.parts)
        yield '.'.join(parts), path, rel.name == '__init__'


def _imports(module: str, path, is_pkg: bool):
    """Every basicsr module ``module`` imports (function-local imports included)."""
    package = module if is_pkg else module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]
                                + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        yield from (n for n in names if n.split('.')[0] == 'basicsr')


def _graph():
    modules = {m: (p, pkg) for m, p, pkg in _modules()}
    graph = {}
    for module, (path, pkg) in modules.items():
        graph[module] = {n for n in _imports(module, path, pkg) if n in modules and n != module}
    return graph


def test_every_module_has_a_layer():
    units = {_unit(m) for m in _graph() if m != 'basicsr'}
    assert units <= set(LAYERS), f"place these in LAYERS: {sorted(units - set(LAYERS))}"


def test_imports_only_look_down():
    bad = []
    for module, targets in _graph().items():
        if module == 'basicsr':
            continue
        own = _unit(module)
        for target in targets:
            other = _unit(target)
            if target != 'basicsr' and other != own and LAYERS[other] >= LAYERS[own]:
                bad.append(f"{module} imports {target}")
    assert not bad, '\n'.join(sorted(bad))


ALLOWED_CYCLES: set = set()


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = 'open'
        for nxt in sorted(graph[node]):
            loop = ' -> '.join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else ''
            if state.get(nxt) == 'open' and loop not in ALLOWED_CYCLES:
                cycles.append(loop)
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 'done'

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, '\n'.join(cycles)


def test_layering_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The checks above fail on an upward import and on a cycle (a planted pair)."""
    graph = {'basicsr.utils.x': {'basicsr.models.y'}, 'basicsr.models.y': {'basicsr.utils.x'}}
    monkeypatch.setattr(__import__(__name__, fromlist=['_graph']), '_graph', lambda: graph)
    with pytest.raises(AssertionError, match='basicsr.utils.x imports basicsr.models.y'):
        test_imports_only_look_down()
    with pytest.raises(AssertionError, match='basicsr.models.y -> basicsr.utils.x -> basicsr.models.y'
                       '|basicsr.utils.x -> basicsr.models.y -> basicsr.utils.x'):
        test_no_import_cycles()
