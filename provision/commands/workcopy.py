"""An image made beside its final name, never under it until complete: a working copy of the base (a qcow2
overlay, or a standalone copy) under a hidden name, seeded by the caller, converted into the output's format
under a second hidden name when asked, and only then given the final name. seed --output and batch's chunks
make their images this way; keys --out-dir names its copies the same way.

One naming scheme for the hidden files, so every place that looks for leftovers agrees: `.FINAL.partial`
(the qcow2 being seeded) and `.FINAL.converting` (the conversion). A run that holds the folder's lock (batch,
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
from provision.guest.convert import convert_image
from provision.host.writing import create_private

PARTIAL = "partial"
CONVERTING = "converting"


@dataclass(frozen=True)
class WorkCopy:
    final: Path
    token: str = ""  # seed --output: this run's own; batch and keys: none (they hold the folder's lock)

    @property
    def partial(self) -> Path:
        """The working copy being seeded (a qcow2)."""
        return self._hidden(PARTIAL)

    @property
    def converting(self) -> Path:
        """The conversion of the seeded copy into the output's format (--format, --compress)."""
        return self._hidden(CONVERTING)

    def _hidden(self, stage: str) -> Path:
        return self.final.with_name(f".{self.final.name}.{stage}" + (f"-{self.token}" if self.token else ""))

    def make(self, base: ImageInfo, *, overlay: bool, failed: str | None = None, full: str | None = None) -> None:
        """The working copy of `base`: an overlay backed by it, or a standalone sparse qcow2. `failed` and
        `full` name the overlay's purpose in its errors (qemuimg.create_overlay)."""
        self._create(self.partial)
        if overlay:
            qemuimg.create_overlay(base, self.partial, failed=failed, full=full)
        else:
            qemuimg.copy_qcow2(base, self.partial)

    def copy(self, source: ImageInfo) -> None:
        """The working copy: `source` converted into a plain qcow2 (keys --out-dir), synced."""
        self._create(self.partial)
        convert_image(Path(source.path), source.format, self.partial, OutputSpec())

    @staticmethod
    def _create(path: Path) -> None:
        try:
            create_private(path)
        except FileExistsError:
            raise UsageError(f"{path} already exists; a working file is never reused or written through",
                             hint="remove it if no other zvm-provision run writes there, and run again") from None

    def finish(self, spec: OutputSpec, *, convert: bool, replace: bool,
               placing: contextlib.AbstractContextManager[object] | None = None) -> None:
        """The seeded copy under the final name: converted into `spec`'s format first when `convert`, then
        renamed over whatever is there (`replace`), or linked where nothing is (an existing file is never
        replaced: UsageError), inside `placing` when given. The hidden files are gone afterwards, whatever
        happened."""
        try:
            done = self.partial
            if convert:
                self._create(self.converting)
                convert_image(self.partial, "qcow2", self.converting, spec)
                done = self.converting
            with placing or contextlib.nullcontext():  # batch writes the image's password row around it
                if replace:
                    os.replace(done, self.final)
                else:
                    _link_new(done, self.final)
        finally:
            self.remove()

    def remove(self) -> None:
        for path in (self.partial, self.converting):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def remove_leftovers(folder: Path, name: str) -> None:
    """A killed run's hidden files for DIR/NAME, each format's: a run holding the folder's lock owns them."""
    for suffix in sorted({OutputSpec(fmt).suffix for fmt in OutputFormat}):
        WorkCopy(folder / f"{name}{suffix}").remove()


def tokened_leftovers(final: Path) -> list[Path]:
    """The hidden files of earlier seed --output runs to `final` (any token), sorted."""
    escaped = glob.escape(final.name)
    found = [*final.parent.glob(f".{escaped}.{PARTIAL}-*"), *final.parent.glob(f".{escaped}.{CONVERTING}-*")]
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
