"""The release signers an image's hourly update verifies against (persist-layout.json, role "update-signers"):
git's SSH `allowed_signers` file (ssh-keygen(1), ALLOWED SIGNERS), which nix/modules/update-source.sh hands to
`git verify-tag` / `verify-commit` as gpg.ssh.allowedSignersFile. One line per key:

    PRINCIPAL namespaces="git" KEYTYPE BASE64 [COMMENT]

`namespaces="git"` limits each key to git's signatures. Git accepts any principal the file lists for the key,
so the principal only names the signer: the key's comment when it is one word (alice@example.org), else
"release-signer"."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from provision.core.credentials.authorizedkeys import read_authorized_keys
from provision.core.credentials.sshkeys import AuthorizedKey, from_key_line, merge_keys

NAMESPACES = 'namespaces="git"'
DEFAULT_PRINCIPAL = "release-signer"
# ssh-keygen's principals are comma-separated patterns: a name may hold none of ",*?!" or white space.
_PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
# allowed_signers' own options (cert-authority, namespaces="...", valid-after="...", valid-before="...").
_OPTIONS_RE = re.compile(r'^(?:[a-z-]+(?:="[^"]*")?)(?:,[a-z-]+(?:="[^"]*")?)*[ \t]+')


@dataclass(frozen=True)
class UpdateSigner:
    principal: str
    key: AuthorizedKey

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint


def principal_for(key: AuthorizedKey) -> str:
    comment = key.comment.strip()
    return comment if _PRINCIPAL_RE.match(comment) else DEFAULT_PRINCIPAL


def signers_from_keys(keys: Sequence[AuthorizedKey]) -> tuple[UpdateSigner, ...]:
    """One signer per distinct key (the first occurrence wins); authorized_keys options are not carried over."""
    return tuple(UpdateSigner(principal_for(key), key) for key in merge_keys([], keys, replace=True))


def render_allowed_signers(signers: Sequence[UpdateSigner]) -> bytes:
    lines = []
    for signer in signers:
        key = signer.key
        base = key.line if key.options is None else key.line[len(key.options):].lstrip(" \t")
        lines.append(f"{signer.principal} {NAMESPACES} {base}\n")
    return "".join(lines).encode("utf-8")


def parse_allowed_signers(text: str) -> tuple[tuple[UpdateSigner, ...], tuple[str, ...]]:
    """An allowed_signers file read from an image (untrusted): its signers and one problem per line that is
    not one; never raises."""
    signers = []
    problems = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        principal, _, rest = line.partition(" ")
        rest = rest.lstrip(" \t")
        # The options (namespaces="git", valid-after=...) come before the key.
        options = _OPTIONS_RE.match(rest)
        if options and not rest.startswith(("ssh-", "ecdsa-", "sk-")):
            rest = rest[options.end():]
        # the key as the access model reads a key line (one model of what a key is); a certificate signs nothing
        read = read_authorized_keys(rest.encode("utf-8", "surrogateescape"))
        if (principal and len(read) == 1 and read[0].key is not None and read[0].problem is None
                and not read[0].key.certificate):
            signers.append(UpdateSigner(principal, from_key_line(read[0])))
        else:
            problems.append(f"line {lineno}: not a principal followed by a public key")
    return tuple(signers), tuple(problems)
