"""Reading disks back after a run: what the contract's paths hold, every disk through one fresh appliance."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from provision.core.layout import load_layout
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image

LAYOUT = load_layout()


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
