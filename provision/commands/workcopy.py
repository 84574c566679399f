"""An image made beside its final name, never under it until complete: a working copy of the base (a qcow2
overlay, or a standalone copy) under a hidden name, seeded by the caller, converted into the output's format
under a second hidden name when asked, and only then given the final name. seed --output and batch's chunks
make their images this way; keys --out-dir names its copies the same way.

Batch hides the copy behind the launch: the appliance seeds a small overlay backed by the base
(`.FINAL.seeding`) while the standalone copy (`.FINAL.partial`: a reflink of the base where the filesystem
shares blocks, else a sparse copy) is made beside it; then the overlay is pointed at the copy (which holds the
base's bytes) and committed into it. A converted output (--format, --compress) needs no copy at all: the seeded
overlay is converted, reading the base through it.

One naming scheme for the hidden files, so every place that looks for leftovers agrees: `.FINAL.partial`
(the qcow2 copy, seeded or to be), `.FINAL.seeding` (batch's overlay being seeded) and `.FINAL.converting`
(the conversion). A run that holds the folder's lock (batch,
keys) uses them as they are, and removes a killed run's leftovers at its start. seed --output holds no lock:
its names end in the run's own token (`.FINAL.partial-TOKEN`), and a later run only names the leftovers.

Each hidden file is created here, exclusively and 0600 (host.writing.create_private), before guest.qemuimg
writes into it: never through a link planted under its name, never a file that was there before, never
readable by others (the image holds the password hash, the host key, the Netbird setup key), whatever the
umask. A run that holds the lock removes what stands under its hidden names first (`remove`: a link is
removed, never followed); seed --output's names are new.
"""

from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from provision.core.disk import ImageInfo
from provision.core.outputformat import OutputFormat, OutputSpec
from provision.errors import UsageError
from provision.guest import qemuimg
from provision.host.clone import can_clone, clone_file
from provision.guest.convert import convert_image
from provision.host.writing import create_private, fsync

PARTIAL = "partial"
SEEDING = "seeding"
CONVERTING = "converting"
REFLINK_PROBE = ".zvm-provision-reflink-probe"  # batch (holding the folder's lock) asks the folder with it


@dataclass(frozen=True)
class WorkCopy:
    final: Path
    token: str = ""  # seed --output: this run's own; batch and keys: none (they hold the folder's lock)

    @property
    def partial(self) -> Path:
        """The working copy being seeded (a qcow2)."""
        return self._hidden(PARTIAL)

    @property
    def seeding(self) -> Path:
        """Batch's overlay of the base being seeded while the copy is made (committed into it afterwards)."""
        return self._hidden(SEEDING)

    @property
    def converting(self) -> Path:
        """The conversion of the seeded copy into the output's format (--format, --compress)."""
        return self._hidden(CONVERTING)

    def _hidden(self, stage: str) -> Path:
        return self.final.with_name(f".{self.final.name}.{stage}" + (f"-{self.token}" if self.token else ""))

    def make(self, base: ImageInfo, *, overlay: bool, failed: str | None = None, full: str | None = None) -> None:
        """The working copy of `base`: an overlay backed by it, or a standalone sparse qcow2. `failed` and
        `full` name the overlay's purpose in its errors (qemuimg.create_overlay)."""
        if overlay:
            create_working_file(self.partial)
            qemuimg.create_overlay(base, self.partial, failed=failed, full=full)
        else:
            copy_base(base, self.partial)

    def make_seeding(self, base: ImageInfo) -> None:
        """The overlay of `base` to seed while the copy is made (or, for a converted output, instead of it)."""
        create_working_file(self.seeding)
        qemuimg.create_overlay(base, self.seeding, failed=qemuimg.COPY_FAILED, full="for the overlay to seed")

    def commit_seeding(self) -> None:
        """The seeded overlay written into the finished copy (.partial, which holds the base's bytes), synced;
        the overlay is gone afterwards."""
        try:
            qemuimg.rebase_unsafe(self.seeding, self.partial)
            qemuimg.commit(self.seeding)
            fsync(self.partial)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.seeding)

    def copy(self, source: ImageInfo) -> None:
        """The working copy: `source` converted into a plain qcow2 (keys --out-dir), synced."""
        create_working_file(self.partial)
        convert_image(Path(source.path), source.format, self.partial, OutputSpec())

    def finish(self, spec: OutputSpec, *, convert: bool, replace: bool, seeded: Path | None = None,
               placing: contextlib.AbstractContextManager[object] | None = None) -> None:
        """The seeded copy (`seeded`, by default .partial) under the final name: converted into `spec`'s format
        first when `convert`, then renamed over whatever is there (`replace`), or linked where nothing is (an
        existing file is never replaced: UsageError), inside `placing` when given (batch writes the image's
        password row around it). The hidden files are gone afterwards, whatever happened."""
        try:
            done = self.partial
            if convert:
                create_working_file(self.converting)
                convert_image(seeded or self.partial, "qcow2", self.converting, spec)
                done = self.converting
            with placing or contextlib.nullcontext():  # batch writes the image's password row around it
                if replace:
                    os.replace(done, self.final)
                else:
                    _link_new(done, self.final)
        finally:
            self.remove()

    def remove(self) -> None:
        for path in (self.partial, self.seeding, self.converting):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def copies_share_blocks(base: ImageInfo, folder: Path) -> bool:
    """Whether copy_base into `folder` makes reflinks (asked once, with a probe file the caller's lock owns)."""
    return _clonable(base) and can_clone(Path(base.path), folder, REFLINK_PROBE)


def _clonable(base: ImageInfo) -> bool:
    """A reflink of the base's file is a standalone qcow2 copy only of a qcow2 with no backing file."""
    return base.format == "qcow2" and base.backing_file is None


def copy_base(base: ImageInfo, target: Path) -> None:
    """A standalone qcow2 copy of `base` at `target`: a reflink of the file where the base is a qcow2 of its
    own (no backing file) and the filesystem shares blocks, else a sparse copy (guest.qemuimg)."""
    if _clonable(base):
        try:
            if clone_file(Path(base.path), target):  # made exclusively, 0600, as create_working_file does
                return
        except FileExistsError:
            pass  # create_working_file below says so
        except OSError:
            pass  # the real copy says what is wrong with the folder, if anything is
    create_working_file(target)
    qemuimg.copy_qcow2(base, target)


def create_working_file(path: Path) -> None:
    """A hidden working file, empty, exclusively and 0600 (host.writing.create_private), for guest.qemuimg to fill."""
    try:
        create_private(path)
    except FileExistsError:
        raise UsageError(f"{path} already exists; a working file is never reused or written through",
                         hint="remove it if no other zvm-provision run writes there, and run again") from None


def remove_leftovers(folder: Path, name: str) -> None:
    """A killed run's hidden files for DIR/NAME, each format's: a run holding the folder's lock owns them."""
    for suffix in sorted({OutputSpec(fmt).suffix for fmt in OutputFormat}):
        WorkCopy(folder / f"{name}{suffix}").remove()


def tokened_leftovers(final: Path) -> list[Path]:
    """The hidden files of earlier seed --output runs to `final` (any token), sorted."""
    escaped = glob.escape(final.name)
    found = [path for stage in (PARTIAL, SEEDING, CONVERTING) for path in final.parent.glob(f".{escaped}.{stage}-*")]
    return sorted(found)


def _link_new(complete: Path, out: Path) -> None:
    """Give the complete file its final name, never replacing a file that appeared meanwhile."""
    try:
        os.link(complete, out)
    except FileExistsError:
        raise UsageError(f"{out} appeared while the image was made; it is left as it is",
                         hint="remove it, or give --output another name, and run again") from None
    except OSError:
        if os.path.lexists(out):
            raise
        os.rename(complete, out)  # a filesystem without hard links
