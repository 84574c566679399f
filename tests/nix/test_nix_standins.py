"""The nixpkgs stand-ins (nix/tests/nixpkgs/) refuse what the nixpkgs declarations they mirror refuse.

Each case adds one module to the zvm system (nix/tests/eval-option.nix) and evaluates one option strictly:
a use nixpkgs accepts must evaluate, a wrong use must fail with nixpkgs' complaint. The wrong uses are the
ones a stand-in used to accept before it was checked against the nixpkgs source nix/README.md names, so
each case fails if that stand-in becomes too permissive again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.nix.support import require_inputs, run_nix

pytestmark = pytest.mark.nix


@dataclass(frozen=True)
class Case:
    name: str
    path: list[str]
    right: str  # a module nixpkgs accepts
    wrong: str  # a module nixpkgs refuses
    error: str  # what the refusal says
    vm: bool = False


CASES = [
    # nixos/modules/config/nix.nix types sandbox; the freeform type alone would take any string.
    Case(
        "nix.settings.sandbox",
        ["nix", "settings", "sandbox"],
        right='{ nix.settings.sandbox = "relaxed"; }',
        wrong='{ nix.settings.sandbox = "yes"; }',
        error="`nix.settings.sandbox' is not of type",
    ),
    # services.openssh.settings' freeform type is pkgs.formats.keyValue's: atoms without paths.
    Case(
        "services.openssh.settings freeform",
        ["services", "openssh", "settings", "Banner"],
        right='{ services.openssh.settings.Banner = "/etc/issue"; }',
        wrong="{ services.openssh.settings.Banner = /etc/issue; }",
        error="`services.openssh.settings.Banner' is not of type",
    ),
    # sshd.nix asserts that no two settings differ only in case (sshd_config keywords are case-insensitive).
    Case(
        "services.openssh.settings spelling",
        ["system", "build", "toplevel", "drvPath"],
        right="{ services.openssh.settings.PasswordAuthentication = false; }",
        wrong="{ services.openssh.settings.passwordAuthentication = false; }",
        error="Duplicate sshd config key",
    ),
    # users-groups.nix asserts that every user's primary group is declared.
    Case(
        "users.users.<name>.group",
        ["system", "build", "toplevel", "drvPath"],
        right='{ users.users.other = { isNormalUser = true; group = "other"; }; users.groups.other = { }; }',
        wrong='{ users.users.other = { isNormalUser = true; group = "other"; }; }',
        error="have a primary group that is undefined: other",
    ),
    # netbird.nix refuses an interface name Linux cannot have (more than 15 characters).
    Case(
        "services.netbird.clients.<name>.interface",
        ["services", "netbird", "clients", "default", "interface"],
        right='{ lib, ... }: { services.netbird.clients.default.interface = lib.mkForce "nb-default0"; }',
        wrong='{ lib, ... }: { services.netbird.clients.default.interface = lib.mkForce "netbird-default0"; }',
        error="Network interface name must be 15 characters or less",
    ),
    # An initrd unit takes stage1CommonUnitOptions (nixos/lib/systemd-unit-options.nix): no restartTriggers.
    Case(
        "boot.initrd.systemd.mounts",
        ["boot", "initrd", "systemd", "mounts"],
        right='{ boot.initrd.systemd.mounts = [ { what = "/sysroot/a"; where = "/sysroot/b"; } ]; }',
        wrong='{ boot.initrd.systemd.mounts = [ { what = "/sysroot/a"; where = "/sysroot/b"; restartTriggers = [ ]; } ]; }',
        error="restartTriggers' does not exist",
    ),
    # qemu-vm.nix declares virtualisation.fileSystems as fileSystems itself (the test framework's VM options).
    Case(
        "virtualisation.fileSystems",
        ["virtualisation", "fileSystems", "/x", "fsType"],
        right='{ virtualisation.fileSystems."/x" = { device = "none"; fsType = "tmpfs"; }; }',
        wrong='{ virtualisation.fileSystems."/x" = { device = "none"; fsType = 1; }; }',
        error="`virtualisation.fileSystems.\"/x\".fsType' is not of type",
        vm=True,
    ),
    # repart.nix checks partition labels when the image is evaluated (checkAssertWarn on system.build.image).
    Case(
        "image.repart.partitions.<name>.repartConfig.Label",
        ["system", "build", "image", "drvPath"],
        right='{ lib, ... }: { image.repart.partitions."30-persist".repartConfig.Label = lib.mkForce "persist-b"; }',
        wrong='{ lib, ... }: { image.repart.partitions."30-persist".repartConfig.Label = lib.mkForce "persist-with-a-label-of-forty-characters"; }',
        error="maximum label length supported by UEFI",
    ),
    # etc.nix: an /etc file's text is lines (null or strings), its mode a string ("symlink" or octal).
    Case(
        "environment.etc.<name>.mode",
        ["environment", "etc", "issue", "mode"],
        right='{ environment.etc.issue = { text = "zvm"; mode = "0644"; }; }',
        wrong='{ environment.etc.issue = { text = "zvm"; mode = 420; }; }',
        error="`environment.etc.issue.mode' is not of type",
    ),
    # sudo-rs.nix asserts that sudo and sudo-rs are not both enabled.
    Case(
        "security.sudo-rs.enable",
        ["system", "build", "toplevel", "drvPath"],
        right="{ lib, ... }: { security.sudo-rs.enable = lib.mkForce true; }",
        wrong="{ lib, ... }: { security.sudo-rs.enable = lib.mkForce true; security.sudo.enable = lib.mkForce true; }",
        error="`security.sudo` and `security.sudo-rs` cannot both be enabled",
    ),
]


def eval_option(module: str, path: list[str], *, vm: bool = False):
    inputs = require_inputs()
    args = f"inputs = /. + {json.dumps(str(inputs))}; module = {module}; path = [ {' '.join(json.dumps(p) for p in path)} ];"
    return run_nix(f"import ./nix/tests/eval-option.nix {{ {args} vm = {'true' if vm else 'false'}; }}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_use_nixpkgs_accepts_evaluates(case: Case) -> None:
    result = eval_option(case.right, case.path, vm=case.vm)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_use_nixpkgs_refuses_fails_with_its_message(case: Case) -> None:
    result = eval_option(case.wrong, case.path, vm=case.vm)
    assert result.returncode != 0, f"{case.wrong} was accepted: {result.stdout}"
    assert case.error in result.stderr, result.stderr
