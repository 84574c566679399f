"""Resume: which images a previous run left in the output folder are complete for this manifest. They are
checked in read-only appliances (many disks per launch), with inspect's contract check and this row's own
wishes; any doubt makes the image again.

vmdk and vdi images (--format) are not opened: the tool probes only qcow2 and raw before qemu sees a file, and a
vmdk descriptor can name other host files. They are judged by what report.json recorded when they were made:
the file's sha256 must still match it (so it is the file this tool wrote), and the recorded keys, Netbird
settings and format must match the row. A row that gives its own password hash cannot be checked that way (the
report holds no secret): such an image is made again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from provision.commands.batch.model import BatchProgress, UserResult, UserStatus, describe_failure
from provision.commands.batch.outputs import read_report_entries
from provision.core.disk import ImageInfo
from provision.core.outputformat import OutputSpec
from provision.core.contractcheck import check_image_contract
from provision.core.inspection import InspectReport
from provision.core.layout import load_layout
from provision.core.manifest import User
from provision.core.rowdigest import DIGEST_FIELD, same_row
from provision.errors import ProvisionError
from provision.guest.appliance import Appliance
from provision.guest.convert import record_output
from provision.guest.diskformat import probe_image
from provision.guest.launch import Accel
from provision.guest.report import inspect_disk


def check_existing(
    users: Sequence[User], out_dir: Path, results: dict[str, UserResult], accel: Accel, max_disks: int,
    output: OutputSpec = OutputSpec(), shard: tuple[int, int] | None = None, *, progress: BatchProgress,
    debug: bool = False, overlay_of: str | None = None,
) -> Iterator[tuple[User, list[str]]]:
    """Yield (user, problems) for each existing output; no problems means complete for this manifest (and its
    result then holds the image's size and sha256). `progress` is told what a launch says as it happens."""
    recorded = read_report_entries(out_dir, shard)  # a shard reads its own report-K-of-N.json
    if not output.inspectable:
        for user in users:
            entry = recorded.get(user.name)
            yield user, (recorded_problems(entry, user, results[user.name], overlay_of)
                         or _judge_by_report(entry, user, results[user.name], output))
        return
    for user, problems in _inspect_existing(users, out_dir, results, accel, max_disks, progress, debug):
        if not problems:
            entry = recorded.get(user.name)
            problems = format_problems(entry, output) or recorded_problems(entry, user, results[user.name], overlay_of)
        if not problems:
            results[user.name].output = record_output(results[user.name].image, output)
        yield user, problems


def _inspect_existing(
    users: Sequence[User], out_dir: Path, results: dict[str, UserResult], accel: Accel, max_disks: int,
    progress: BatchProgress, debug: bool,
) -> Iterator[tuple[User, list[str]]]:
    openable: list[tuple[User, ImageInfo]] = []
    for user in users:
        try:
            openable.append((user, probe_image(results[user.name].image)))
        except ProvisionError as exc:
            yield user, [f"cannot open it: {exc.message}"]
    for start in range(0, len(openable), max_disks):
        chunk = openable[start : start + max_disks]
        judged: set[str] = set()
        try:
            with Appliance([info for _, info in chunk], readonly=True, accel=accel,
                           notice=progress.say) as appliance:
                appliance.launch()
                for index, (user, info) in enumerate(chunk):
                    try:
                        report = inspect_disk(appliance, index, info)
                        problems = check_image_contract(report) + row_problems(report, user, results[user.name])
                        if not problems and user.password_hash is not None:
                            problems = _hash_problems(appliance, index, user)
                    except Exception as exc:  # noqa: BLE001 - a bug while checking: make the image again
                        problems = [describe_failure(exc, progress, debug=debug)]
                    judged.add(user.name)
                    yield user, problems
        except Exception as exc:  # noqa: BLE001 - the appliance did not start or stop: make them again
            for user, _ in chunk:
                if user.name not in judged:  # a verdict read before a failed shutdown still holds
                    yield user, [f"cannot check it: {describe_failure(exc, progress, debug=debug)}"]


def row_problems(report: InspectReport, user: User, result: UserResult) -> list[str]:
    """Beyond inspect's contract check: does the image hold what this user's row asks for?"""
    problems = []
    if report.password.state != "set":
        problems.append(f"its password is {report.password.state}")
    if {k.blob for k in report.authorized_keys} != {k.blob for k in user.keys}:
        problems.append("its authorized keys differ from the manifest's")
    if report.host_key.state != "present":
        problems.append(f"its host key is {report.host_key.state}")
    if report.machine_id.state != "valid":
        problems.append(f"its machine-id is {report.machine_id.state}")
    if user.netbird_setup_key is not None and report.netbird.setup_key != "present":
        problems.append("it has no Netbird setup key")
    if user.netbird_management_url is not None and report.netbird.management_url != user.netbird_management_url:
        problems.append("its Netbird management URL differs from the manifest's")
    if report.hostname.value != user.hostname:
        problems.append(f"its hostname is {report.hostname.value or report.hostname.state}, not {user.hostname}")
    result.authorized_keys = report.authorized_keys
    host = report.host_key
    result.host_key = {"type": host.type, "fingerprint": host.fingerprint, "known_hosts": host.known_hosts}
    result.machine_id = report.machine_id.value
    result.netbird_setup_key = report.netbird.setup_key == "present"
    result.netbird_management_url = report.netbird.management_url
    result.password_generated = user.password_hash is None
    return problems


def _hash_problems(appliance: Appliance, index: int, user: User) -> list[str]:
    assert user.password_hash is not None
    with appliance.mount_persist(index) as fs:
        held = fs.read_file(load_layout().role("password-hash").path, 4096).decode("ascii", "replace").strip()
    return [] if held == user.password_hash.reveal() else ["its password hash differs from the manifest's"]


def format_problems(entry: dict[str, Any] | None, output: OutputSpec) -> list[str]:
    """Was the image written as this run asks (compressed or not)? An earlier run's entry says; an entry
    without the field comes from a version that never compressed. No entry: nothing to say."""
    if entry is None:
        return []
    was = OutputSpec(output.format, bool(entry.get("compressed") or False))
    return [] if was == output else [f"it was written as {was.describe()}; this run asks for {output.describe()}"]


def recorded_problems(entry: dict[str, Any] | None, user: User, result: UserResult, overlay_of: str | None,
                      ) -> list[str]:
    """Does the row still ask what the image was made for? The earlier run's entry says what it was made as
    (overlay or standalone, a generated or given password) and, keyed (core.rowdigest), every input of its
    row: a changed Netbird setup key or password hash shows only there. No entry: nothing to say."""
    if entry is None:
        return []
    problems = []
    if entry.get("overlay_of") != overlay_of:
        problems.append("it is an overlay of the base, and this run asks for a standalone image" if overlay_of is None
                        else "it is not an overlay of this base, and this run asks for one")
    if entry.get("password") == "given" and user.password_hash is None:
        problems.append("it holds a given password hash, and this row asks for a generated password")
    if problems:
        return problems
    if DIGEST_FIELD in entry and not same_row(entry[DIGEST_FIELD], result.row_digest or ""):
        problems.append("its manifest row changed since it was made (a password hash, a Netbird setup key, "
                        "the base or the format)")
    return problems


def _judge_by_report(entry: dict[str, Any] | None, user: User, result: UserResult, output: OutputSpec) -> list[str]:
    """A vmdk/vdi image: complete when report.json recorded it, it is still that file, and the record matches
    the row. Fills the user's result from the record."""
    kind = output.format.value
    if entry is None:
        return [f"report.json has no record of it (a {kind} image is not opened to check it)"]
    if entry.get("status") not in (UserStatus.SEEDED, UserStatus.SKIPPED):
        return [f"report.json records it as {entry.get('status')!r}"]
    if entry.get("format") != kind or not isinstance(entry.get("sha256"), str):
        return [f"report.json does not record it as a {kind} image with its sha256"]
    if user.password_hash is not None:
        return [f"its password hash cannot be checked without opening it (a {kind} image is not opened)"]
    record = record_output(result.image, output)
    if record.sha256 != entry["sha256"] or record.size != entry.get("size"):
        return ["it is not the file report.json recorded (its size or sha256 differs)"]
    problems = []
    recorded_keys = {k.get("fingerprint") for k in entry.get("authorized_keys") or [] if isinstance(k, dict)}
    if recorded_keys != {k.fingerprint for k in user.keys}:
        problems.append("its authorized keys differ from the manifest's")
    if entry.get("password") != "generated":
        problems.append("report.json records a given password, and this row asks for a generated one")
    if user.netbird_setup_key is not None and entry.get("netbird_setup_key_given") is not True:
        problems.append("it has no Netbird setup key")
    if user.netbird_management_url is not None and entry.get("netbird_management_url") != user.netbird_management_url:
        problems.append("its Netbird management URL differs from the manifest's")
    if entry.get("hostname") != user.hostname:
        problems.append("its hostname differs from the manifest's")
    if problems:
        return problems
    result.authorized_keys = user.keys
    host = entry.get("host_key")
    result.host_key = host if isinstance(host, dict) else None
    result.machine_id = entry.get("machine_id") if isinstance(entry.get("machine_id"), str) else None
    result.netbird_setup_key = user.netbird_setup_key is not None
    result.netbird_management_url = user.netbird_management_url
    result.password_generated = True
    result.output = record
    return []
