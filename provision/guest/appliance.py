"""One libguestfs appliance over one or more images: launch (launch.py), the disks and their partitions,
finding persist, mounting it, and a clean shutdown. guestfs is imported lazily (in launch.py), so that
`zvm-provision --help` never loads it.

Safety rules (docs: shared/reference/security-notes.md section 1):
- every image is added with the format diskformat.probe_image found (never probed by qemu);
- tracing and verbose output are forced off (a trace prints write payloads: secrets);
- network stays off; the direct backend runs qemu as our own child;
- only persist is mounted, with mount_vfs and an explicit ext4 type;
- no path operation follows a symlink (persistfs.py).

Every call to the appliance is a round trip, and calls that name a device start `udevadm settle` in it
(about 0.1 s under TCG): persist is found with a few reads, mounted read-only for the first look and
remounted read-write for the writes, stat calls are batched, and shutdown flushes once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from provision.host import writing as hostfiles
from provision.core.disk import ImageInfo, Partition
from provision.core.layout import load_layout
from provision.errors import APPLIANCE_HINT, ApplianceError, ImageUnusableError, ProvisionError
from provision.guest.launch import Accel, Launcher, Notice
from provision.guest.persistfs import PersistFS
from provision.guest.rawdisk import (
    EXT_SUPERBLOCK_OFFSET,
    EXT_SUPERBLOCK_SIZE,
    FIRST_READ,
    ext_probe,
    gpt_entries,
    plain_label,
)


@dataclass(frozen=True)
class NewPartition:
    """One partition for Appliance.create_gpt_layout (sectors of 512 bytes, end inclusive)."""

    name: str  # GPT partition name
    start: int
    end: int
    fs_type: str  # "vfat", "ext4"...
    label: str
    gpt_type: str | None = None  # GPT type GUID, e.g. the EFI system partition's


class Appliance:
    """One libguestfs handle over one or more images (batch seeds many disks per launch)."""

    def __init__(
        self,
        images: Sequence[ImageInfo],
        *,
        readonly: bool,
        accel: Accel = "auto",
        kvm_timeout: float | None = None,
        tcg_timeout: float | None = None,
        notice: Notice | None = None,
    ) -> None:
        if not images:
            raise ValueError("an appliance needs at least one image")
        self.images = tuple(images)
        self.readonly = readonly
        self.accel = accel
        self._launcher = Launcher(images, readonly=readonly, accel=accel, kvm_timeout=kvm_timeout,
                                  tcg_timeout=tcg_timeout, notice=notice)
        self.accel_used: str | None = None  # "kvm" or "tcg" once launched
        self._g: Any = None
        self._mounted: tuple[int, bool] | None = None  # (disk index, read-only) of the mounted persist
        self._in_use = False  # a mount_persist block is running
        self._raw_writes = False
        self._partitions: dict[int, list[Partition]] = {}
        self._persist: dict[int, Partition] = {}
        self._raw: dict[int, list[tuple[str, int, tuple[str, str, int] | None]] | None] = {}
        self._devices: list[str] | None = None  # device and partition lists, read once per launch
        self._all_partitions: list[str] | None = None

    # -- launch ----------------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the appliance. Blocking; the GIL is released, so a caller may run it in a thread.

        Ctrl-C: the handle uses set_pgroup(True), so qemu runs in its own process group and a
        terminal's SIGINT (sent to the foreground process group) never reaches it; only this process
        gets it and can then shut the appliance down cleanly (close()). Blocking SIGINT with
        pthread_sigmask around launch() was not used: qemu may reset its signal mask, while the process
        group is decided by libguestfs in the forked child before exec, which is reliable.
        """
        if self._g is not None:
            raise RuntimeError("the appliance is already launched")
        if not self.readonly:
            for info in self.images:
                if info.read_only_file:
                    raise ImageUnusableError(
                        f"{info.path} is read-only (no write permission); make it writable "
                        "or use inspect / --dry-run, which do not write"
                    )
        self._launcher.launch()
        self._g, self.accel_used = self._launcher.handle, self._launcher.accel_used

    def cancel_launch(self) -> None:
        """From another thread, while launch() runs: stop it now (launch.Launcher.cancel)."""
        self._launcher.cancel()

    @property
    def handle(self) -> Any:
        """The launched guestfs.GuestFS."""
        if self._g is None:
            raise RuntimeError("the appliance is not launched")
        return self._g

    # -- partitions ------------------------------------------------------------------------------

    def device(self, index: int) -> str:
        if self._devices is None:
            self._devices = self.handle.list_devices()
        devices = self._devices
        if not 0 <= index < len(devices):
            raise IndexError(f"no disk number {index}; the appliance has {len(devices)}")
        return devices[index]

    def partitions(self, index: int) -> list[Partition]:
        """Partitions of disk `index`, by device (clones share labels and UUIDs). Listed once per disk:
        each blkid costs a round trip to the appliance, and starts a program there."""
        if index not in self._partitions:
            self._partitions[index] = self._quick_partitions(index) or self._list_partitions(index)
        return list(self._partitions[index])

    def _quick_partitions(self, index: int) -> list[Partition] | None:
        """The listing blkid would give, from the superblocks _raw_partitions read: an ext partition's label
        and type come from its superblock, only the others (the ESP) are asked of blkid. Sizes are the GPT's,
        as part_list gives them. blkid (a program started per partition, a udev settle each) was most of an
        audit's time per disk (issue 20)."""
        raw = self._raw_partitions(index)
        if not raw:
            return None
        result = []
        for dev, size, probe in raw:
            if probe is None or not plain_label(probe[0]):  # not ext, or a label blkid's output would escape
                label, fs_type = self._blkid(dev)
            else:
                label, fs_type = probe[0] or None, probe[1]
            result.append(Partition(device=dev, label=label, fs_type=fs_type, size=size))
        return result

    def _list_partitions(self, index: int) -> list[Partition]:
        g = self.handle
        disk = self.device(index)
        devices = self._partition_devices(disk)
        if not devices:
            return []
        sizes = {p["part_num"]: p["part_size"] for p in g.part_list(disk)}
        result = []
        for dev in devices:
            label, fs_type = self._blkid(dev)
            result.append(Partition(device=dev, label=label, fs_type=fs_type, size=sizes.get(int(dev[len(disk) :]), 0)))
        return result

    def _blkid(self, dev: str) -> tuple[str | None, str | None]:
        """(label, type) of one partition, as blkid names them; (None, None) when it finds no filesystem."""
        try:
            probe = self.handle.blkid(dev)  # label and type in one call (vfs_label + vfs_type would be two)
        except RuntimeError:
            probe = {}
        return probe.get("LABEL") or None, probe.get("TYPE") or None

    def _partition_devices(self, disk: str) -> list[str]:
        # Each call costs ~0.3 s under TCG, so no part_to_dev per partition: /dev/sdb's partitions are
        # /dev/sdb<N> (and /dev/sdbc1 belongs to /dev/sdbc, whose suffix is not all digits).
        if self._all_partitions is None:
            self._all_partitions = self.handle.list_partitions()
        return [dev for dev in self._all_partitions if dev.startswith(disk) and dev[len(disk) :].isdigit()]

    def find_persist(self, index: int) -> Partition:
        """The one ext4 partition labelled persist on disk `index`; anything else is refused, listing
        every partition found."""
        if index not in self._persist:
            self._persist[index] = self._quick_persist(index) or self._persist_from_listing(index)
        return self._persist[index]

    def _quick_persist(self, index: int) -> Partition | None:
        """The common case, fast: a GPT disk with exactly one partition whose superblock says ext4 with the
        persist label (size: the filesystem's own, which fills the partition). A few preads, where listing
        devices and partitions costs two udev settles and blkid starts a program per partition. Anything
        unusual falls back to the full listing with blkid, and its error message."""
        layout = load_layout()
        found = [(dev, probe) for dev, _size, probe in self._raw_partitions(index) or ()
                 if probe is not None and probe[0] == layout.label]
        if len(found) != 1 or found[0][1][1] != layout.fs_type:
            return None
        dev, (label, fs_type, size) = found[0]
        return Partition(device=dev, label=label, fs_type=fs_type, size=size)

    def _raw_partitions(self, index: int) -> list[tuple[str, int, tuple[str, str, int] | None]] | None:
        """(device, partition size, ext_probe of its superblock or None) of each partition in disk `index`'s
        GPT, read once per disk (find_persist and partitions share it); None when the disk is unusual (no
        GPT the kernel reads as parsed here, a read that fails): the callers then ask the kernel."""
        if index not in self._raw:
            self._raw[index] = self._read_raw_partitions(index)
        return self._raw[index]

    def _read_raw_partitions(self, index: int) -> list[tuple[str, int, tuple[str, str, int] | None]] | None:
        g = self.handle
        # One image: its disk is /dev/sda, with no listing. The daemon refuses the appliance's own disk, and
        # every other disk is ours, so a read that succeeds reads this image.
        disk = "/dev/sda" if len(self.images) == 1 and self._devices is None else self.device(index)
        try:
            first = g.pread_device(disk, FIRST_READ, 0)
        except RuntimeError:
            return None
        table = gpt_entries(first, self.images[index].virtual_size)
        if not table:
            return None
        found = []
        for number, start, size in table:
            dev = f"{disk}{number}"
            at = start + EXT_SUPERBLOCK_OFFSET
            try:
                if at + EXT_SUPERBLOCK_SIZE <= len(first):  # already read: the table says where it starts
                    probe = ext_probe(first[at : at + EXT_SUPERBLOCK_SIZE])
                else:
                    probe = ext_probe(g.pread_device(dev, EXT_SUPERBLOCK_SIZE, EXT_SUPERBLOCK_OFFSET))
            except RuntimeError:
                return None
            found.append((dev, size, probe))
        return found

    def _persist_from_listing(self, index: int) -> Partition:
        layout = load_layout()
        parts = self.partitions(index)
        labelled = [p for p in parts if p.label == layout.label]
        if len(labelled) == 1 and labelled[0].fs_type == layout.fs_type:
            return labelled[0]
        found = "; ".join(p.describe() for p in parts) or "none"
        image = self.images[index].path
        if not labelled:
            problem = f"no partition labelled {layout.label!r}"
        elif len(labelled) > 1:
            problem = f"{len(labelled)} partitions labelled {layout.label!r} (exactly one is expected)"
        else:
            problem = f"the partition labelled {layout.label!r} is not {layout.fs_type}"
        raise ImageUnusableError(f"{image}: {problem}; partitions found: {found}")

    @contextmanager
    def mount_persist(self, index: int, *, writable: bool | None = None) -> Iterator[PersistFS]:
        """Mount one disk's persist at the appliance's / (one disk at a time) for the `with` block.

        writable=False mounts read-only even on a writable appliance: reading the state that way leaves
        the image byte-identical (a read-write mount of ext4 updates its superblock). The default is
        read-write exactly when the appliance is.

        The filesystem stays mounted after the block: a later block on the same disk costs nothing, or one
        remount from read-only to read-write (a first look, then the writes), where unmounting and mounting
        again would start two programs in the appliance; another disk's block unmounts it first; close()
        unmounts it, checked, before the appliance shuts down. The PersistFS handed out works only inside
        its block.
        """
        readonly = self.readonly if writable is None else not writable
        if writable and self.readonly:
            raise RuntimeError("a read-only appliance cannot mount persist for writing")
        if self._in_use:
            raise RuntimeError("a persist filesystem is already in use; leave its block first")
        g = self.handle
        part = self.find_persist(index)
        self._mount(index, part, readonly)
        fs = PersistFS(g, readonly=readonly, device=part.device)
        self._in_use = True
        try:
            yield fs
        finally:
            self._in_use = False
            fs.retire()

    def _mount(self, index: int, part: Partition, readonly: bool) -> None:
        g = self.handle
        if self._mounted == (index, readonly):
            return
        if self._mounted is not None and self._mounted[0] == index:
            try:
                g.remount("/", rw=not readonly)
            except RuntimeError as exc:
                raise ImageUnusableError(
                    f"{self.images[index].path}: cannot remount persist ({part.device}) "
                    f"{'read-only' if readonly else 'read-write'}: {exc}"
                ) from None
            self._mounted = (index, readonly)
            return
        if self._mounted is not None:
            self._unmount()
        try:
            g.mount_vfs("ro" if readonly else "", load_layout().fs_type, part.device, "/")
        except RuntimeError as exc:
            raise ImageUnusableError(
                f"{self.images[index].path}: cannot mount persist ({part.device}): {exc}"
            ) from None
        self._mounted = (index, readonly)

    def _unmount(self) -> None:
        """Unmount the mounted persist (another disk's is next). No sync: umount writes the filesystem
        out, and close() is what makes an image complete."""
        assert self._mounted is not None
        index = self._mounted[0]
        self._mounted = None
        try:
            self.handle.umount("/")
        except RuntimeError as exc:
            device = self._persist[index].device if index in self._persist else "persist"
            raise ApplianceError(f"cannot unmount persist ({device}): {exc}", hint=APPLIANCE_HINT) from None

    def create_gpt_layout(self, index: int, partitions: Sequence[NewPartition]) -> None:
        """Write a new GPT with formatted partitions on disk `index` (sample disks, test fixtures)."""
        if self.readonly:
            raise RuntimeError("create_gpt_layout needs a writable appliance")
        if self._mounted is not None and self._mounted[0] == index:
            self._unmount()
        self._raw_writes = True  # written through the block device, not a filesystem: close() syncs
        self._partitions.pop(index, None)
        self._persist.pop(index, None)
        self._raw.pop(index, None)
        self._all_partitions = None
        g = self.handle
        disk = self.device(index)
        g.part_init(disk, "gpt")
        for number, part in enumerate(partitions, start=1):
            g.part_add(disk, "p", part.start, part.end)
            g.part_set_name(disk, number, part.name)
            if part.gpt_type:
                g.part_set_gpt_type(disk, number, part.gpt_type)
        devices = self._partition_devices(disk)
        for dev, part in zip(devices, partitions, strict=True):
            g.mkfs(part.fs_type, dev, label=part.label)

    # -- shutdown --------------------------------------------------------------------------------

    def close(self) -> None:
        """Durable end: unmount (checked), shut down (checked), close. Idempotent.

        Unmounting ext4 writes it out and flushes the disk (qemu then flushes the image file), so a sync
        after it would only flush again: libguestfs's autosync (umount_all + sync) is switched off for the
        shutdown. A disk written through its block device (create_gpt_layout) is synced explicitly.
        """
        self._launcher.close_spares()
        g, self._g = self._g, None
        self._mounted = None
        if g is None:
            return
        failure = None
        try:
            try:
                g.umount_all()
            except RuntimeError as exc:
                failure = exc
            try:
                if self._raw_writes:
                    g.sync()
                g.set_autosync(failure is not None)  # after a failed unmount, let libguestfs try once more
                g.shutdown()
            except RuntimeError as exc:
                failure = failure or exc
        finally:
            g.close()
        if failure is not None:
            raise ApplianceError(
                f"the appliance did not shut down cleanly; the image may not be completely written: {failure}",
                hint=APPLIANCE_HINT,
            )
        if not self.readonly:
            for info in self.images:
                hostfiles.sync_image(info.path)  # a failure is never ignored: the writes may be lost

    def __enter__(self) -> Appliance:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        close_keeping_the_cause(self.close, exc)


def close_keeping_the_cause(close: Callable[[], None], cause: BaseException | None) -> None:
    """Run `close`. While an exception is on its way, a failure to close must not replace it: that
    exception says why the work stopped, and the failure to close is often its consequence (a dead qemu).
    The close failure is kept as a note on it (shown in a traceback, with --debug)."""
    if cause is None:
        close()
        return
    try:
        close()
    except Exception as failure:  # noqa: BLE001 - kept, as a note, on the exception that explains more
        text = failure.message if isinstance(failure, ProvisionError) else f"{type(failure).__name__}: {failure}"
        cause.add_note(f"while closing the appliance after this error: {text}")
