# checks.x86_64-linux.boot: the zvm image booted unseeded once, then seeded by zvm-provision and booted twice,
# under the NixOS test framework (pkgs.testers.runNixOSTest). Needs a machine that can build NixOS and run KVM; offline,
# tests/nix/test_nix_boot.py evaluates its node and runs its testScript against a recording stand-in of the
# test driver (tests/nix/driver.py; see nix/README.md).
{
  lib,
  zvm-provision,
  # The zvm modules (the host and impermanence), as flake.nix passes them to nixosSystem.
  modules,
}:
{ hostPkgs, ... }:
let
  contract = import ../contract.nix { };
  testPassword = "zvm-boot-test-password";
in
{
  name = "zvm-boot";

  # The node is called zvm, as its hostname, so the driver's machine name and the VM's agree.
  nodes.zvm =
    {
      imports = modules;

      # Boot the disk image the way OVMF boots main.raw: from its ESP, not the framework's kernel and store.
      virtualisation = {
        directBoot.enable = false;
        mountHostNixStore = false;
        useEFIBoot = true;
        memorySize = 2048;
        # qemu-vm.nix replaces fileSystems with virtualisation.fileSystems, which already holds the test
        # driver's 9p shares (/tmp/shared, /tmp/xchg: copy_from_host and copy_from_vm pass through them).
        # Add the image's own mounts to them; never mkForce the whole set, which drops the shares.
        # useDefaultFilesystems = false: no ext4 root on the framework's disk, the image brings its own.
        useDefaultFilesystems = false;
        fileSystems = import ../filesystems.nix;
      };

      # No network in the test: no auto-update.
      zvm.updates.flakeUrl = null;
    };

  testScript =
    { nodes, ... }:
    let
      # The file name nixpkgs' image modules expose (image/file-options.nix: baseName + "." + extension).
      image = "${nodes.zvm.system.build.image}/${nodes.zvm.image.fileName}";
      # The image seeded by the flake's own zvm-provision, with a key, a password and a host key made here.
      seeded =
        hostPkgs.runCommand "zvm-boot-test-seeded"
          {
            nativeBuildInputs = [
              zvm-provision
              hostPkgs.qemu-utils
              hostPkgs.openssh
            ];
            requiredSystemFeatures = [ "kvm" ];
            ZVM_TEST_PASSWORD = testPassword;
          }
          ''
            export HOME=$TMPDIR
            bash ${./seed-image.sh} ${image} $out
          '';
      setupKey = "${contract.netbird.setupKeyFile}";
    in
    ''
      import json
      import os
      import subprocess
      import tempfile

      seed = json.load(open("${seeded}/seed.json"))
      # The overlays' folder goes when the driver ends, whatever the checks found.
      work_dir = tempfile.TemporaryDirectory(prefix="zvm-boot-")
      work = work_dir.name
      unseeded_disk = os.path.join(work, "unseeded.qcow2")
      disk = os.path.join(work, "zvm.qcow2")
      # Writable overlays: the built image as it ships, and the seeded copy.
      subprocess.run(
          ["${hostPkgs.qemu-utils}/bin/qemu-img", "create", "-f", "qcow2", "-F", "raw",
           "-b", "${image}", unseeded_disk],
          check=True,
      )
      subprocess.run(
          ["${hostPkgs.qemu-utils}/bin/qemu-img", "create", "-f", "qcow2", "-F", "qcow2",
           "-b", "${seeded}/zvm.qcow2", disk],
          check=True,
      )

      SSH = "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"


      def boot():
          zvm.start()
          zvm.wait_for_unit("multi-user.target")
          zvm.wait_for_unit("sshd.service")
          zvm.copy_from_host("${seeded}/id_ed25519", "/root/id_ed25519")
          zvm.succeed("chmod 600 /root/id_ed25519")


      def host_key_fingerprint():
          return zvm.succeed(
              "ssh-keyscan -t ed25519 localhost 2>/dev/null | ssh-keygen -lf - | cut -d' ' -f2"
          ).strip()


      def key_login_works():
          assert zvm.succeed(f"{SSH} -i /root/id_ed25519 zvm@localhost id -un").strip() == "zvm"


      def hostname_is(name):
          assert zvm.succeed("hostname").strip() == name
          assert zvm.succeed("cat /etc/hostname").strip() == name


      # The framework's VM script boots whatever disk NIX_DISK_IMAGE names when it starts (and keeps it
      # across reboots): first the image as built, never seeded.
      os.environ["NIX_DISK_IMAGE"] = unseeded_disk
      zvm.start()
      zvm.wait_for_unit("multi-user.target")

      with subtest("unseeded: without a seeded hostname the VM keeps its built-in one"):
          zvm.succeed("test ! -e ${contract.hostnameFile}")
          hostname_is("${nodes.zvm.networking.hostName}")

      zvm.shutdown()
      os.environ["NIX_DISK_IMAGE"] = disk
      boot()

      with subtest("seeded: the VM has the seeded hostname"):
          assert seed["hostname"] == "zvm-boot-test", seed
          assert zvm.succeed("cat ${contract.hostnameFile}") == seed["hostname"] + "\n"
          hostname_is(seed["hostname"])

      with subtest("SSH: the seeded key logs in, a password is never asked for"):
          key_login_works()
          status, out = zvm.execute(
              f"{SSH} -o PubkeyAuthentication=no"
              " -o PreferredAuthentications=password,keyboard-interactive zvm@localhost true 2>&1"
          )
          assert status != 0 and "Permission denied (publickey)" in out, out

      with subtest("the host key is the one the seeding printed"):
          assert host_key_fingerprint() == seed["host_key"]["fingerprint"], seed["host_key"]

      with subtest("the machine-id is the seeded one"):
          assert zvm.succeed("cat /etc/machine-id").strip() == seed["machine_id"]

      with subtest("zvm is not in wheel, and there is no sudo"):
          groups = zvm.succeed("id -nG zvm").split()
          assert "wheel" not in groups, groups
          zvm.fail("command -v sudo")
          zvm.fail("test -e /run/wrappers/bin/sudo")

      with subtest("without a setup key the Netbird enrolment is skipped"):
          zvm.succeed("test ! -e ${setupKey}")
          result = zvm.succeed("systemctl show -P ConditionResult zvm-netbird-enrol.service").strip()
          assert result == "no", result

      with subtest("the seeding record stays on persist, root's only, outside the running system's tree"):
          zvm.succeed("test -s ${contract.seedRecord}")
          assert zvm.succeed("stat -c '%u:%g %a' ${contract.seedRecord}").strip() == "0:0 600"
          zvm.fail("test -e /zvm-provision")

      zvm.succeed("touch /root/outside-the-allowlist /var/lib/outside-the-allowlist")
      zvm.succeed("echo kept > /var/log/zvm-boot-test")
      zvm.shutdown()
      boot()

      with subtest("after a reboot the allowlist is there and nothing else"):
          zvm.fail("test -e /root/outside-the-allowlist")
          zvm.fail("test -e /var/lib/outside-the-allowlist")
          assert zvm.succeed("cat /var/log/zvm-boot-test").strip() == "kept"
          assert zvm.succeed("cat /etc/machine-id").strip() == seed["machine_id"]
          assert host_key_fingerprint() == seed["host_key"]["fingerprint"]
          hostname_is(seed["hostname"])
          key_login_works()
    '';
}
