"""Resume: which images a previous run left in the output folder are complete for this manifest. They are
checked in read-only appliances (many disks per launch), with inspect's contract check and this row's own
wishes; any doubt makes the image again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from provision.commands.batch.model import UserResult, describe_failure
from provision.commands.inspect import inspect_disk
from provision.core.disk import ImageInfo
from provision.core.inspection import InspectReport, check_image_contract
from provision.core.layout import load_layout
from provision.core.manifest import User
from provision.errors import ProvisionError
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from provision.guest.launch import Accel


def check_existing(
    users: Sequence[User], out_dir: Path, results: dict[str, UserResult], accel: Accel, max_disks: int
) -> Iterator[tuple[User, list[str]]]:
    """Yield (user, problems) for each existing output; no problems means complete for this manifest."""
    openable: list[tuple[User, ImageInfo]] = []
    for user in users:
        try:
            openable.append((user, probe_image(out_dir / user.image_name)))
        except ProvisionError as exc:
            yield user, [f"cannot open it: {exc.message}"]
    for start in range(0, len(openable), max_disks):
        chunk = openable[start : start + max_disks]
        judged: set[str] = set()
        try:
            with Appliance([info for _, info in chunk], readonly=True, accel=accel) as appliance:
                appliance.launch()
                for index, (user, info) in enumerate(chunk):
                    try:
                        report = inspect_disk(appliance, index, info)
                        problems = check_image_contract(report) + row_problems(report, user, results[user.name])
                        if not problems and user.password_hash is not None:
                            problems = _hash_problems(appliance, index, user)
                    except Exception as exc:  # noqa: BLE001 - a bug while checking: make the image again
                        problems = [describe_failure(exc)]
                    judged.add(user.name)
                    yield user, problems
        except Exception as exc:  # noqa: BLE001 - the appliance did not start or stop: make them again
            for user, _ in chunk:
                if user.name not in judged:  # a verdict read before a failed shutdown still holds
                    yield user, [f"cannot check it: {describe_failure(exc)}"]


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
