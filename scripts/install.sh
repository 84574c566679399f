#!/usr/bin/env bash
# Install everything zvm-provision needs on a Debian 12 machine, then the package into .venv.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-guestfs libguestfs-tools linux-image-amd64 qemu-utils qemu-system-x86  # libguestfs and its appliance
  python3-venv                                                                  # the virtual environment
  openssh-client whois nix-bin shellcheck                                       # tests: ssh-keygen, mkpasswd, nix-instantiate, shellcheck
  openssh-server                                                                # tests: a real sshd judges the certificates
)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "==> installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The libguestfs binding is built for Debian's /usr/bin/python3 and is not on PyPI:
# the venv is made from that interpreter and sees Debian's site-packages.
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import provision, pytest, pexpect, hypothesis, xdist" 2>/dev/null; then
  echo "==> installing zvm-provision into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
fi
.venv/bin/python -c "import guestfs" || { echo "the libguestfs Python binding is missing (python3-guestfs)" >&2; exit 1; }
