"""Persist as the tests set images up and read them back: a file written into a mounted persist through
PersistFS's own staged write (stage, sync, commit: what core.apply does for every file of a plan), never
following a link; and what the contract's paths hold after a run, every disk through one fresh appliance."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from provision.core.layout import load_layout
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from provision.guest.persistfs import PersistFS

LAYOUT = load_layout()
# Contract files written only when asked for (--host-ca, --user-ca; --update-signer): absent after a seeding
# without them.
CERTIFICATE_ROLES = ("host-certificate", "trusted-user-ca-keys", "authorized-principals")
ASKED_FOR_ROLES = (*CERTIFICATE_ROLES, "update-signers")


def write_file(fs: PersistFS, path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    """Atomically replace `path` with `data`; a failure leaves no staged file behind."""
    tmp = fs.stage_file(path, data, uid, gid, mode)
    try:
        fs.sync()
        fs.commit_file(tmp, path)
    except BaseException:
        fs.discard(tmp)
        raise


def read_back(disks: list[Path], *, extra: Iterable[str] = (),
              also: Callable[..., dict] | None = None,
              replay_journal: bool = False) -> list[dict]:
    """Per disk: "stats", the lstat of every contract path and of `extra`; "files", the content of each of
    them that is a regular file; and what `also(fs, stats)` adds. Mounts are read-only.

    replay_journal: a writable appliance (the mounts still read-only), for a disk whose run was killed: its
    ext4 journal may need replaying, as the VM's first boot would do; nothing else is written."""
    paths = [*(entry.path for entry in LAYOUT.entries), *extra]
    results = []
    images = [probe_image(disk) for disk in disks]
    with Appliance(images, readonly=not replay_journal, accel="tcg") as appliance:
        appliance.launch()
        for index in range(len(disks)):
            with appliance.mount_persist(index, writable=False) as fs:
                stats = {path: fs.lstat(path) for path in paths}
                files = {path: fs.read_file(path) for path, st in stats.items()
                         if st is not None and st.kind == "file"}
                results.append({"stats": stats, "files": files, **(also(fs, stats) if also else {})})
    return results
