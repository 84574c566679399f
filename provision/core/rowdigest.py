"""What a batch row asks of its image, as a keyed digest: HMAC-SHA256 under the output folder's own key
(commands.batch.rowkey), kept in report.json. A later run compares it with the row as it is now, so a changed
Netbird setup key or password hash, a password now generated, an overlay where a standalone image is asked
for (or the other way round), or another output format makes the image again, while the report keeps no
secret, nor a plain hash that a short secret could be guessed back from."""

from __future__ import annotations

import hashlib
import hmac
import json

from provision.core.manifest import User
from provision.core.outputformat import OutputSpec

KEY_BYTES = 32
DIGEST_FIELD = "row_digest"


def row_digest(key: bytes, user: User, *, overlay_of: str | None, output: OutputSpec) -> str:
    """The row's inputs, canonical (sorted keys, blobs in hex), under `key`: equal exactly when they are."""
    inputs = {
        "name": user.name,
        "keys": sorted(k.blob.hex() for k in user.keys),
        "password_hash": user.password_hash.reveal() if user.password_hash is not None else None,
        "netbird_setup_key": user.netbird_setup_key.reveal() if user.netbird_setup_key is not None else None,
        "netbird_management_url": user.netbird_management_url,
        "hostname": user.hostname,
        "overlay_of": overlay_of,
        "format": output.format.value,
        "compressed": output.compress,
    }
    message = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def same_row(recorded: object, current: str) -> bool:
    """Whether a report's recorded digest is the current row's (constant time)."""
    return isinstance(recorded, str) and hmac.compare_digest(recorded, current)
