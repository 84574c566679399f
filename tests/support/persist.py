"""Writing a file into a mounted persist as the tests set images up: through PersistFS's own staged write
(stage, sync, commit: what core.apply does for every file of a plan), never following a link."""

from __future__ import annotations

from provision.guest.persistfs import PersistFS


def write_file(fs: PersistFS, path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    """Atomically replace `path` with `data`; a failure leaves no staged file behind."""
    tmp = fs.stage_file(path, data, uid, gid, mode)
    try:
        fs.sync()
        fs.commit_file(tmp, path)
    except BaseException:
        fs.discard(tmp)
        raise
