# shellcheck shell=bash
# zvm-seeded-hostname FILE: prints the hostname the seeder left in FILE (the contract's role "hostname",
# /persist/etc/hostname) when FILE is exactly one line holding an RFC 1123 label: 1 to 63 lower-case letters,
# digits and hyphens, not starting or ending with a hyphen, then "\n". Otherwise it prints nothing, and says
# why on stderr unless FILE is simply absent (an unseeded image).
#
# It always exits 0: the image is not trusted, so FILE may be anything (a symlink, a FIFO, a huge or binary
# file), and a bad one must neither stop the activation script that names the VM (modules/hostname.nix) nor
# the Netbird enrolment (modules/netbird.nix). The caller keeps its built-in name instead.
# Needs bash and wc (coreutils) on PATH, as the activation script and the enrolment unit have them.

# Bytes, not characters: [a-z] is ASCII only and ${#content} counts bytes.
export LC_ALL=C

file=$1
label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'

ignore() {
  printf 'zvm-seeded-hostname: ignoring %s (%s); the VM keeps its built-in hostname\n' "$file" "$1" >&2
  exit 0
}

if [ ! -e "$file" ] && [ ! -L "$file" ]; then
  exit 0 # not seeded
fi
# Never follow a link or open a FIFO or a device (reading a FIFO would block the boot).
if [ -L "$file" ] || [ ! -f "$file" ]; then
  ignore "not a regular file"
fi

# A label of 63 characters and its newline are 64 bytes; one more byte shows that the file is longer.
content=
IFS= read -r -d '' -N 65 content <"$file" || true
if [ -z "$content" ]; then
  ignore "empty"
fi
# read drops NUL bytes: the byte count tells whether what was read is the whole file.
size=$(wc -c <"$file") || ignore "unreadable"
if [ "$size" -ne "${#content}" ]; then
  ignore "longer than 63 characters and a newline, or holds NUL bytes"
fi
if [ "${content%$'\n'}" = "$content" ]; then
  ignore "does not end with a newline"
fi
name=${content%$'\n'}
if ! [[ $name =~ $label ]]; then
  ignore "not one line holding an RFC 1123 label (1-63 lower-case letters, digits and hyphens, no hyphen first or last)"
fi
printf '%s\n' "$name"
