"""The contract check: every way an inspected image departs from the persist contract, one line each.
`inspect --check` prints it; batch reuses it to decide whether an earlier image is complete. Pure: no I/O.
"""

from __future__ import annotations

from provision.core.access import count_ways_in, no_way_in_reason
from provision.core.credentials.certificates import user_ca_way_in
from provision.core.credentials.identity import BUILT_IN_HOSTNAME, HOSTNAME_RULE
from provision.core.fs import StatKind
from provision.core.inspection import InspectReport, Severity


def check_image_contract(report: InspectReport) -> list[str]:
    """Every way the image departs from the contract, one line each ("path: what is wrong"). Empty: it meets
    it. Entries the contract does not name are not drift, except symlinks, special files and hard links."""
    problems = [f"{p.entry.path}: {problem}" for p in report.paths for problem in p.problems]
    bad_paths = {p.entry.path for p in report.paths if p.problems}

    def add(path: str, problem: str) -> None:
        if path not in bad_paths:
            problems.append(f"{path}: {problem}")

    by_role = {p.entry.role: p for p in report.paths if p.entry.role}
    password_path = by_role["password-hash"].entry.path
    if report.password.state == "invalid":
        add(password_path, "neither a sha-512 ($6$) or yescrypt ($y$) hash nor a locked marker")
    elif report.password.state == "unreadable":
        add(password_path, report.unreadable.get(password_path, "cannot be read"))

    keys_path = by_role["authorized-keys"].entry.path
    if by_role["authorized-keys"].stat is not None and by_role["authorized-keys"].stat.kind == StatKind.FILE:
        if keys_path in report.unreadable:
            add(keys_path, report.unreadable[keys_path])
        else:
            for problem in report.authorized_keys_problems:
                problems.append(f"{keys_path}: {problem}")
            # No key is fine while the password lets zvm in on the console, or a trusted user CA with principals
            # lets certificates in; none of them is no way in at all.
            held = len({key.blob for key in report.authorized_keys})
            certs = report.certificates
            ways = (count_ways_in(report.authorized_keys, report.read_at)
                    + int(user_ca_way_in(certs.user_cas, certs.principals)))
            reason = no_way_in_reason(ways, report.password.state, held=held)
            if reason is not None:
                add(keys_path, reason)

    machine_path = by_role["machine-id"].entry.path
    if report.machine_id.state == "invalid":
        add(machine_path, "not 32 lowercase hexadecimal digits and a newline")

    public_path = by_role["host-key-public"].entry.path
    private_path = by_role["host-key"].entry.path
    if report.host_key.state == "invalid":
        add(public_path, "not a valid SSH public key")
    elif report.host_key.state == "incomplete":
        if report.host_key.fingerprint is None:
            add(public_path, f"missing, while {private_path} is there (half a host key pair)")
        else:
            add(private_path, f"missing or empty, while {public_path} is there (half a host key pair)")

    # The host certificate is optional, but one that is there must certify this host key and be valid now.
    cert_path = by_role["host-certificate"].entry.path
    for problem in report.certificates.failures:
        add(cert_path, f"the host certificate: {problem}")

    # The hostname is optional (absent: the VM is zvm), but one that is there must be what the VM accepts.
    hostname_path = by_role["hostname"].entry.path
    if report.hostname.state == "invalid":
        add(hostname_path, f"not one line holding a valid hostname ({HOSTNAME_RULE}); "
            f"the VM ignores it and boots as {BUILT_IN_HOSTNAME}")
    elif report.hostname.state == "unreadable":
        add(hostname_path, report.unreadable.get(hostname_path, "cannot be read"))
    # The seeding record is not required, and what it says is history, not the contract: only its owner and
    # mode (the path table) count.

    for item in report.unexpected:  # all of them: a symlink past the screen's limit is drift too
        if item.path in bad_paths:
            continue  # already named by the path table ("is a symlink, not a file")
        if item.severity == Severity.UNSAFE:
            target = f" -> {item.target}" if item.target is not None else ""
            problems.append(f"{item.path}: {item.reason}{target}")
    if report.walk_capped:
        problems.append(f"/: the walk over persist {report.walk_capped}; the rest was not examined")
    problems += [f"{error}" for error in report.walk_errors]
    return problems
