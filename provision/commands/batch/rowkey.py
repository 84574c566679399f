"""The output folder's own key for the rows' digests (core.rowdigest): DIR/.zvm-provision-batch.key, 32
random bytes, 0600 from its creation, never read through a link nor when others may read it. Shards sharing
the folder share it: the first run to need it links a complete file into place, the others read that one."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from provision.core.rowdigest import KEY_BYTES
from provision.errors import ProvisionError
from provision.host.writing import create_exclusive

KEY_FILE = ".zvm-provision-batch.key"


def folder_key(out_dir: Path) -> bytes:
    """DIR's key: read, or made first when there is none."""
    path = out_dir / KEY_FILE
    if not os.path.lexists(path):
        tmp = out_dir / f".{KEY_FILE}.{secrets.token_hex(6)}"
        create_exclusive(tmp, secrets.token_bytes(KEY_BYTES), 0o600)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # never over another run's key
        finally:
            os.unlink(tmp)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read it ({exc.strerror})",
                             hint="move it away: the next run makes a new key, and then every image in the folder again") from None
    try:
        st = os.fstat(fd)
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.getuid() or len(data) != KEY_BYTES:
        raise ProvisionError(f"{path} is not a key this tool made (a private file of {KEY_BYTES} bytes)",
                             hint="move it away: the next run makes a new key, and then every image in the folder again")
    return data
