"""CheckpointFolder: naming, the ``latest`` pointer, pruning, finding the newest file."""
from pathlib import Path

from basicsr.utils.checkpoint_folder import CheckpointFolder, resolve_checkpoint_path


def _save(folder: CheckpointFolder, it: int) -> Path:
    folder.root.mkdir(parents=True, exist_ok=True)
    path = folder.path_for(it)
    path.write_bytes(b'x')
    folder.point_to(path)
    return path


def test_naming_pointer_and_pruning(tmp_path):
    folder = CheckpointFolder(tmp_path / 'checkpoints')
    assert folder.path_for(1200).name == 'iter_00001200.pth'
    for it in (2, 10, 9):  # saved out of order: the pointer wins over the name
        _save(folder, it)
    assert (folder.root / 'latest').read_text() == 'iter_00000009.pth'
    assert folder.newest() == folder.root / 'iter_00000009.pth'
    folder.prune(2)
    assert sorted(p.name for p in folder.root.iterdir()) == [
        'iter_00000009.pth', 'iter_00000010.pth', 'latest']
    folder.prune(0)  # 0 keeps everything
    assert len(folder.periodic()) == 2
    assert not list(folder.root.glob('.*tmp'))


def test_newest_without_a_usable_pointer(tmp_path):
    folder = CheckpointFolder(tmp_path)
    assert folder.newest() is None
    (tmp_path / 'iter_00000003.pth').write_bytes(b'x')
    (tmp_path / 'iter_00000011.pth').write_bytes(b'x')
    (tmp_path / 'latest').write_text('')  # e.g. a crash while the pointer was written
    assert folder.newest() == tmp_path / 'iter_00000011.pth'
    (tmp_path / 'latest').write_text('iter_00000099.pth')  # names a deleted file
    assert folder.newest() == tmp_path / 'iter_00000011.pth'


def test_resolve_checkpoint_path(tmp_path):
    folder = CheckpointFolder(tmp_path / 'ck')
    first = _save(folder, 1)
    _save(folder, 2)
    assert resolve_checkpoint_path(first) == first
    assert resolve_checkpoint_path(folder.root) == folder.path_for(2)
    assert resolve_checkpoint_path(tmp_path / 'absent') is None


def test_newest_without_a_pointer_prefers_the_periodic_files(tmp_path):
    """A folder without ``latest``: the newest iter_*.pth wins over other *.pth names that sort
    after it (``net.pth`` > ``iter_...`` by name)."""
    from basicsr.utils.checkpoint_folder import CheckpointFolder
    for name in ('iter_00000002.pth', 'iter_00000010.pth', 'net.pth'):
        (tmp_path / name).write_bytes(b'x')
    assert CheckpointFolder(tmp_path).newest() == tmp_path / 'iter_00000010.pth'
    for name in ('iter_00000002.pth', 'iter_00000010.pth'):
        (tmp_path / name).unlink()
    assert CheckpointFolder(tmp_path).newest() == tmp_path / 'net.pth'
