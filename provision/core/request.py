"""What the person asked for, validated: the input to planning. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from provision.core.credentials.certificates import HostCertRequest
from provision.core.credentials.keysources import FetchedKeys
from provision.core.credentials.passwords import hash_password
from provision.core.credentials.sshkeys import AuthorizedKey
from provision.core.keyremoval import KeySelector
from provision.secret import Secret

if TYPE_CHECKING:
    from provision.core.state import ImageState


class Missing(StrEnum):
    """What a run without a terminal lacks (commands.flagwords names the flags that give it)."""

    PASSWORD = "password"  # a password source
    KEY = "key"  # an SSH public key


class PasswordKind(StrEnum):
    HASH = "hash"  # write the hash
    LOCKED = "locked"  # write the locked marker: key-only login
    KEEP = "keep"  # leave what the image holds; refused later if it holds nothing


@dataclass(frozen=True)
class PasswordChoice:
    """How /passwords/zvm should end up."""

    kind: PasswordKind
    hash: Secret | None = None

    @classmethod
    def from_hash(cls, hashed: Secret) -> PasswordChoice:
        return cls(PasswordKind.HASH, hashed)

    @classmethod
    def locked(cls) -> PasswordChoice:
        return cls(PasswordKind.LOCKED)

    @classmethod
    def keep(cls) -> PasswordChoice:
        return cls(PasswordKind.KEEP)


@dataclass(frozen=True)
class SeedRequest:
    password: PasswordChoice = field(default_factory=PasswordChoice.keep)
    keys: tuple[AuthorizedKey, ...] = ()
    replace_keys: bool = False
    remove_keys: tuple[KeySelector, ...] = ()  # keys of the image to take out (--remove-key, the wizard)
    fetched: tuple[FetchedKeys, ...] = ()  # where keys fetched from gh:/gl:/https came from, for the plan
    host_keys: bool = True  # generate a host key when the image has none
    new_host_keys: bool = False  # replace an existing host key (a copy of a base must not share it)
    new_machine_id: bool = False
    netbird_setup_key: Secret | None = None
    netbird_management_url: str | None = None
    hostname: str | None = None  # None: keep what the image has
    update_signers: tuple[AuthorizedKey, ...] | None = None  # the release signers' keys; None: keep the list
    operator: str | None = None  # who seeds, for the seeding record
    batch_row: str | None = None  # the manifest row (batch), for the seeding record
    record_change: bool = False  # name the keys removed and added in the seeding record (`keys`)
    host_cert: HostCertRequest | None = None  # sign the host key (--host-ca)
    user_cas: tuple[AuthorizedKey, ...] | None = None  # the trusted user CA keys (--user-ca); None: keep
    user_principals: tuple[str, ...] | None = None  # who a user CA's certificate may name (--user-principal)


@dataclass(frozen=True)
class SeedFlags:
    """What the command line gave; None means "not given" (the wizard may ask for it)."""

    password_plain: Secret | None = None  # hashed just before planning, while the appliance starts
    password: PasswordChoice | None = None  # a ready hash, or locked
    keys: tuple[AuthorizedKey, ...] | None = None
    replace_keys: bool = False
    remove_keys: tuple[KeySelector, ...] = ()
    fetched: tuple[FetchedKeys, ...] = ()  # the sources among `keys` that were fetched, with what they served
    host_keys: bool = True
    new_host_keys: bool = False
    new_machine_id: bool = False
    netbird_setup_key: Secret | None = None
    netbird_management_url: str | None = None
    hostname: str | None = None
    update_signers: tuple[AuthorizedKey, ...] | None = None
    operator: str | None = None
    host_cert: HostCertRequest | None = None
    user_cas: tuple[AuthorizedKey, ...] | None = None
    user_principals: tuple[str, ...] | None = None

    @property
    def has_password_source(self) -> bool:
        return self.password_plain is not None or self.password is not None

    @property
    def asks_for_nothing(self) -> bool:
        """No flag asks for any change: a run without a terminal has nothing to do, whatever the image holds.
        (`--new-machine-id --new-host-keys` alone is a whole request: a copy of a seeded image keeps the rest.)"""
        return not (
            self.has_password_source or self.keys is not None or self.remove_keys or self.new_host_keys
            or self.new_machine_id or self.netbird_setup_key is not None or self.netbird_management_url is not None
            or self.hostname is not None or self.update_signers is not None or self.host_cert is not None
            or self.user_cas is not None or self.user_principals is not None
        )

    def to_request(self) -> SeedRequest:
        """Finish the request: hash a plain password (about 0.7 s at 656000 rounds)."""
        password = self.password or PasswordChoice.keep()
        if self.password_plain is not None:
            password = PasswordChoice.from_hash(hash_password(self.password_plain.reveal()))
        return SeedRequest(
            password=password,
            keys=self.keys or (),
            replace_keys=self.replace_keys,
            remove_keys=self.remove_keys,
            fetched=self.fetched,
            host_keys=self.host_keys,
            new_host_keys=self.new_host_keys,
            new_machine_id=self.new_machine_id,
            netbird_setup_key=self.netbird_setup_key,
            netbird_management_url=self.netbird_management_url,
            hostname=self.hostname,
            update_signers=self.update_signers,
            operator=self.operator,
            host_cert=self.host_cert,
            user_cas=self.user_cas,
            user_principals=self.user_principals,
        )


def missing_flags(flags: SeedFlags, state: ImageState | None) -> list[Missing]:
    """What a run without a terminal lacks. `state` None: the image was not read yet,
    so whatever the image may already hold counts as missing."""
    missing = []
    if not flags.has_password_source and (state is None or state.password is None):
        missing.append(Missing.PASSWORD)
    # A key is wanted where none would be left, unless a password is set: the console is a way in too.
    no_key = state is None or not state.authorized_keys
    # A trusted user CA (with its principals, zvm by default) lets people in as a key does.
    no_key = no_key and not flags.user_cas
    if flags.keys is None and (flags.replace_keys or (no_key and not _password_will_be_set(flags, state))):
        missing.append(Missing.KEY)
    return missing


def _password_will_be_set(flags: SeedFlags, state: ImageState | None) -> bool:
    if flags.password_plain is not None:
        return True
    if flags.password is not None:
        return flags.password.kind == PasswordKind.HASH
    return state is not None and state.password is not None and state.password.state == "set"
