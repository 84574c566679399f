"""How one appliance starts: a libguestfs handle made safe (no trace, no network, qemu in its own process
group), each image added with the format its header probe found, and the launch under a watchdog.

--accel auto tries KVM with a watchdog on that launch's own qemu; a KVM that hangs or crashes is remembered for
this host (watchdog.py) and later runs go straight to TCG. A launch's failure becomes the tool's error: the image
in use (its lock), a read-only file, or the appliance's own trouble.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from provision.core.disk import ImageInfo
from provision.core.text import shown
from provision.errors import APPLIANCE_HINT, ApplianceError, ImageInUseError, ImageUnusableError
from provision.guest import watchdog

Accel = Literal["auto", "kvm", "tcg"]
# How guest and commands tell the person something as it happens (ui.progress.say: a line on stderr); they
# never print themselves.
Notice = Callable[[str], None]
ACCEL_CHOICES: tuple[Accel, ...] = ("auto", "kvm", "tcg")
KVM_LAUNCH_TIMEOUT = 60.0  # a working KVM launch takes 2-5 s; a broken nested KVM hangs forever
TCG_LAUNCH_TIMEOUT = 600.0  # about 15 s here; libguestfs itself would wait 20 minutes

_LOCK_RE = re.compile(r'Failed to get (?:shared )?"write" lock|Is another process using the image')
_LOCK_PATH_RE = re.compile(r"Is another process using the image \[([^\]]+)\]")
_READ_ONLY_RE = re.compile(r"Permission denied|Operation not permitted|Read-only file system")
_KVM_UNAVAILABLE = "kvm not available"  # libguestfs: "force_kvm supplied but kvm not available"
_OUTPUT_LIMIT = 1 << 16


class LaunchCancelled(Exception):
    """cancel() stopped the launch: its qemu was killed before the appliance was up (nothing was written)."""


class _KvmHangs(Exception):
    """Under --accel auto, KVM did not start the appliance before its watchdog fired."""


class _KvmUnavailable(Exception):
    """Under --accel auto, qemu says KVM is not there (nothing to remember: finding out costs nothing)."""


class _KvmCrashed(Exception):
    """Under --accel auto, the appliance failed at once under KVM (qemu aborted, for instance)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Launcher:
    """Starts the appliance over `images` once; `handle` and `accel_used` tell what it started."""

    def __init__(
        self,
        images: Sequence[ImageInfo],
        *,
        readonly: bool,
        accel: Accel,
        kvm_timeout: float | None = None,
        tcg_timeout: float | None = None,
        notice: Notice | None = None,
    ) -> None:
        if accel not in ACCEL_CHOICES:
            raise ValueError(f"accel must be one of {ACCEL_CHOICES}, not {accel!r}")
        self.images = tuple(images)
        self.readonly = readonly
        self.accel = accel
        self.kvm_timeout = KVM_LAUNCH_TIMEOUT if kvm_timeout is None else kvm_timeout
        self.tcg_timeout = TCG_LAUNCH_TIMEOUT if tcg_timeout is None else tcg_timeout
        self.notice = notice  # told of a fallback to TCG; None: nobody is (a test's own launch)
        self.handle: Any = None  # the launched guestfs.GuestFS
        self.accel_used: Literal["kvm", "tcg"] | None = None
        self._cancelled = threading.Event()
        self._guard: watchdog.Watchdog | None = None  # the running launch's, for cancel()
        # libguestfs's "print errors to stderr" handler is switched off per thread, in the thread that made
        # the handle. Make the handles here, in the caller's thread, which later runs the calls that may
        # fail on purpose (lstat of an absent path), even when launch() runs in a background thread.
        wanted = {"auto": ("kvm", "tcg")}.get(accel, (accel,))
        self._spare_handles = {name: self._make_handle(name) for name in wanted}

    def launch(self) -> None:
        if self.accel == "tcg":
            self._launch_once("tcg")
        elif self.accel == "kvm":
            self._launch_once("kvm")
        elif not watchdog.kvm_usable():
            self._launch_once("tcg")
        else:
            self._launch_auto()

    def cancel(self) -> None:
        """From another thread: stop the launch now, killing its qemu (or the qemu it is about to start), so
        that launch() ends at once with LaunchCancelled; no KVM verdict is recorded, no TCG retry made. Only
        the handle's own thread touches the handle: this sets a flag and wakes the watchdog."""
        self._cancelled.set()
        guard = self._guard
        if guard is not None:
            guard.poke()

    def close_spares(self) -> None:
        spares = list(self._spare_handles.values())
        self._spare_handles.clear()
        for spare in spares:
            spare.close()  # never launched: nothing to lose

    def _launch_auto(self) -> None:
        """KVM where it works; where it hangs or crashes, software emulation, and remember that for this host
        (kernel and qemu binary), so that later runs go straight to TCG."""
        g = self._new_handle("kvm")
        key = watchdog.host_key(g.get_hv())
        if watchdog.kvm_verdict(key) is not None:
            g.close()
            self._launch_once("tcg")
            return
        remembered = f"remembered in {watchdog.shown_path(watchdog.cache_file())}"
        try:
            self._launch_once("kvm", handle=g)
        except _KvmUnavailable:
            self._launch_once("tcg")
        except _KvmHangs:
            watchdog.remember_kvm_verdict(key, "hangs", f"no answer within {self.kvm_timeout:g} s")
            self._notice(f"KVM did not answer within {self.kvm_timeout:g} s; using software emulation (TCG) "
                         f"instead, {remembered}")
            self._launch_once("tcg")
        except _KvmCrashed as crash:
            # Remembered only once TCG works: if it fails as well, the fault is not KVM's, and its error is
            # the one to report.
            self._launch_once("tcg")
            watchdog.remember_kvm_verdict(key, "crashes", crash.detail)
            self._notice(f"KVM crashed the appliance ({crash.detail}); using software emulation (TCG) "
                         f"instead, {remembered}")

    def _notice(self, text: str) -> None:
        if self.notice is not None:
            self.notice(f"zvm-provision: {text}")

    def _new_handle(self, accel: str) -> Any:
        spare = self._spare_handles.pop(accel, None)
        return spare if spare is not None else self._make_handle(accel)

    def _make_handle(self, accel: str) -> Any:
        import guestfs  # lazily: only guest/ imports it, and only when an image is opened

        g = guestfs.GuestFS(python_return_dict=True, environment=True, close_on_exit=True)
        # environment=True lets an administrator set LIBGUESTFS_PATH, _MEMSIZE, _CACHEDIR...; the
        # settings that matter for safety are forced here, after it was read.
        g.set_trace(False)  # a trace prints the first 256 bytes of every write: secrets
        g.set_verbose(False)
        g.set_network(False)
        g.set_backend("direct")  # qemu as our child: watchdog, process group and lock messages rely on it
        g.set_backend_settings(["force_tcg"] if accel == "tcg" else ["force_kvm"])
        g.set_pgroup(True)  # keep the terminal's Ctrl-C away from qemu (see Appliance.launch())
        g.set_autosync(True)
        for index, info in enumerate(self.images):
            g.add_drive_opts(str(info.path), readonly=self.readonly, format=info.format)
            # qemu's default (werror=enospc) pauses the appliance when the host disk is full, and every call
            # then waits forever: the appliance gets an I/O error instead, and the tool says so
            for option in ("werror", "rerror"):
                g.config("-set", f"drive.hd{index}.{option}=report")
        return g

    def _launch_once(self, accel: Literal["kvm", "tcg"], *, handle: Any = None) -> None:
        g = handle if handle is not None else self._new_handle(accel)
        if self._cancelled.is_set():
            g.close()  # never launched
            raise LaunchCancelled()
        timeout = self.kvm_timeout if accel == "kvm" else self.tcg_timeout
        guard = self._guard = watchdog.Watchdog(g, timeout, self._cancelled)
        # qemu's own stderr (e.g. the lock message) reaches only event callbacks, not the exception text.
        # Only the launch is listened to: no write happens during it, so nothing secret is captured.
        output: list[str] = []
        event_handle = g.set_event_callback(
            lambda _ev, _eh, buf, _arr: _collect(output, buf),
            _events(),
        )
        _quiet_errors(g)  # this may be a background thread: the error becomes an exception, not stderr text
        started = time.monotonic()
        try:
            with guard:
                g.launch()
            g.delete_event_callback(event_handle)
        except RuntimeError as exc:
            g.close()
            if self._cancelled.is_set():  # its qemu was killed on purpose (or the launch failed anyway)
                raise LaunchCancelled() from None
            text = str(exc) + "\n" + "".join(output)
            probing_kvm = accel == "kvm" and self.accel == "auto"
            if guard.fired:
                if probing_kvm:
                    raise _KvmHangs() from None
                raise ApplianceError(
                    f"the appliance did not start within {timeout:g} s ({accel.upper()})"
                    + ("; try --accel tcg" if accel == "kvm" else ""),
                    hint=APPLIANCE_HINT,
                ) from None
            error = self._launch_error(text)
            if probing_kvm and type(error) is ApplianceError:  # not the image's fault (lock, permissions)
                if _KVM_UNAVAILABLE in text:
                    raise _KvmUnavailable() from None
                qemu_line = _qemu_line(text)
                after = f"after {time.monotonic() - started:.1f} s"
                raise _KvmCrashed(f"{shown(qemu_line, 64)}, {after}" if qemu_line else after) from None
            raise error from None
        except BaseException:  # Ctrl-C right after launch returned: do not leak the handle
            g.close()
            raise
        finally:
            self._guard = None
        g.umask(0o077)  # files and directories are born private; final modes are set explicitly
        self.handle = g
        self.accel_used = accel

    def _launch_error(self, text: str) -> Exception:
        if (in_use := in_use_error(text, self.images)) is not None:
            return in_use
        if _READ_ONLY_RE.search(text) and not self.readonly:
            paths = ", ".join(str(i.path) for i in self.images)
            return ImageUnusableError(
                f"{paths}: the image file is read-only (permission denied when opening it for writing)"
            )
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = _qemu_line(text) or (lines or ["unknown error"])[0]
        return ApplianceError(f"the libguestfs appliance failed to start: {first}", hint=APPLIANCE_HINT)


def in_use_error(text: str, images: Sequence[ImageInfo]) -> ImageInUseError | None:
    """What qemu's refusal to take an image's lock (in a launch's output, or guest.qemuimg's) says, else None."""
    if not _LOCK_RE.search(text):
        return None
    match = _LOCK_PATH_RE.search(text)
    where = match.group(1) if match else ", ".join(str(i.path) for i in images)
    return ImageInUseError(
        f"{where} is in use by another process: a running VM, or another zvm-provision on the same "
        "image (the wizard in another terminal, say); shut the VM down or let that run end, then try again",
        hint="a disk must not be seeded while a VM or another run has it open",
    )


def _qemu_line(text: str) -> str | None:
    """qemu's last own line in a launch's output: its error, if it printed one."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("qemu")]
    return lines[-1] if lines else None


def _events() -> int:
    import guestfs

    return guestfs.EVENT_APPLIANCE | guestfs.EVENT_LIBRARY | guestfs.EVENT_WARNING


def _collect(output: list[str], buf) -> None:
    if sum(map(len, output)) < _OUTPUT_LIMIT:
        output.append(buf.decode("utf-8", "replace") if isinstance(buf, bytes) else str(buf))


def _quiet_errors(g) -> None:
    """Keep libguestfs from printing its errors on stderr in this thread; they still arrive as exceptions.

    libguestfs keeps its error handler per thread, and the Python binding switches the printing off only in
    the thread that made the handle. A launch runs in another thread (session.ImageSession), where a KVM that
    hangs or crashes would print screens of "guestfs_launch failed" text. The binding has no call for it,
    so the C function is called on the handle the binding wraps; if that ever fails, errors are printed
    as before, nothing worse."""
    try:
        import ctypes

        capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi)
        )
        handle = capsule_pointer(g._o, b"guestfs_h")
        library = ctypes.CDLL("libguestfs.so.0")  # already loaded by the binding: the same library
        library.guestfs_set_error_handler.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        library.guestfs_set_error_handler(handle, None, None)
    except Exception:  # noqa: BLE001 - a missing nicety, never a failure
        pass
