"""The seed command's options (SeedOptions, what cli.py parsed), and the flags read from them: every file
read, every key source fetched, every value checked, before the image is opened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provision.commands.certoptions import CertOptions, read_cert_options
from provision.core.credentials.identity import validate_hostname
from provision.core.credentials.netbird import validate_management_url
from provision.core.keyremoval import KeySelector, parse_selector
from provision.core.plan import refuse_replace_with_remove
from provision.core.request import PasswordChoice, SeedFlags
from provision.errors import UsageError
from provision.host.operator import operator
from provision.host.reading import (
    KeyFetch,
    read_key_sources,
    read_signer_files,
    read_netbird_setup_key_file,
    read_password_file,
    read_password_hash_file,
    read_password_stdin,
)
from provision.secret import Secret

if TYPE_CHECKING:
    from provision.core.credentials.sshkeys import AuthorizedKey
    from provision.guest.launch import Accel


@dataclass(frozen=True)
class SeedOptions:
    """The seed command line, as given (nothing read or checked yet): commands/seed/run.py runs it."""

    image: Path
    password_stdin: bool = False
    password_file: Path | None = None
    password_hash_file: Path | None = None
    no_password: bool = False
    ssh_keys: tuple[str, ...] = ()
    replace_keys: bool = False
    remove_keys: tuple[str, ...] = ()
    netbird_setup_key_file: Path | None = None
    netbird_management_url: str | None = None
    no_host_keys: bool = False
    new_host_keys: bool = False
    new_machine_id: bool = False
    hostname: str | None = None
    update_signers: tuple[Path, ...] = ()  # public key files of release signers (--update-signer)
    operator: str | None = None
    dry_run: bool = False
    json_out: bool = False
    yes: bool = False
    accel: Accel = "auto"
    output: Path | None = None  # a new image to hand over; IMAGE stays byte-identical
    compress: bool = False
    format_name: str | None = None
    certs: CertOptions = CertOptions()


def read_seed_flags(
    *,
    password_stdin: bool = False,
    password_file: Path | None = None,
    password_hash_file: Path | None = None,
    no_password: bool = False,
    ssh_keys: Sequence[str] | None = None,
    fetch_keys: KeyFetch | None = None,
    replace_keys: bool = False,
    remove_keys: Sequence[str] | None = None,
    netbird_setup_key_file: Path | None = None,
    netbird_management_url: str | None = None,
    no_host_keys: bool = False,
    new_host_keys: bool = False,
    new_machine_id: bool = False,
    hostname: str | None = None,
    update_signers: Sequence[Path] = (),
    operator_given: str | None = None,
    certs: CertOptions | None = None,
) -> SeedFlags:
    """The seed command's flags, every file read, every key source fetched (through `fetch_keys`) and every
    value checked: bad input fails here, before the image is opened. A plain password is kept (as a Secret)
    to be hashed while the appliance starts."""
    chosen = [name for name, given in (
        ("--password-stdin", password_stdin), ("--password-file", password_file is not None),
        ("--password-hash-file", password_hash_file is not None), ("--no-password", no_password),
    ) if given]
    if len(chosen) > 1:
        raise UsageError(f"choose one password source, not {' and '.join(chosen)}")
    if no_host_keys and new_host_keys:
        raise UsageError("--no-host-keys and --new-host-keys contradict each other")
    refuse_replace_with_remove(replace_keys, remove_keys or ())
    selectors = tuple(parse_selector(text) for text in remove_keys or ())
    plain = None
    password = None
    if password_stdin:
        plain = Secret(read_password_stdin())
    elif password_file is not None:
        plain = Secret(read_password_file(password_file))
    elif password_hash_file is not None:
        password = PasswordChoice.from_hash(read_password_hash_file(password_hash_file))
    elif no_password:
        password = PasswordChoice.locked()
    setup_key = read_netbird_setup_key_file(netbird_setup_key_file) if netbird_setup_key_file else None
    url = validate_management_url(netbird_management_url) if netbird_management_url is not None else None
    signers = read_signer_files(update_signers) if update_signers else None
    cert_flags = read_cert_options(certs or CertOptions())
    keys, fetched = read_key_sources(ssh_keys, fetch_keys) if ssh_keys else (None, [])  # the network: last
    _refuse_removing_a_key_given(selectors, keys or ())
    return SeedFlags(
        password_plain=plain,
        password=password,
        keys=tuple(keys) if keys is not None else None,
        replace_keys=replace_keys,
        remove_keys=selectors,
        fetched=tuple(fetched),
        host_keys=not no_host_keys,
        new_host_keys=new_host_keys,
        new_machine_id=new_machine_id,
        netbird_setup_key=setup_key,
        netbird_management_url=url,
        hostname=validate_hostname(hostname, "--hostname") if hostname is not None else None,
        update_signers=signers,
        operator=operator(operator_given),
        host_cert=cert_flags.host_cert,
        user_cas=cert_flags.user_cas,
        user_principals=cert_flags.user_principals,
    )


def _refuse_removing_a_key_given(selectors: Sequence[KeySelector], keys: Sequence[AuthorizedKey]) -> None:
    """A fingerprint given to --remove-key that names a key --ssh-key gives: refused before the image is
    opened, in the words the plan would use (a comment cannot be judged yet: it names the image's keys)."""
    for selector in selectors:
        if selector.fingerprint is None:
            continue
        for key in keys:
            if selector.matches(key):
                raise UsageError(
                    f"{key.fingerprint} is both removed (--remove-key) and added (--ssh-key); keep one of the two"
                )
