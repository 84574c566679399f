# shellcheck shell=bash
# zvm-update-source URL SIGNERS OUT: decides what the hourly update (nixos-upgrade.service, modules/updates.nix)
# switches to, and writes that flake reference to OUT, one line, where the unit's nixos-rebuild reads it: the
# URL is never pasted into a shell script, so `&`, `?` and `#` in it stay part of it.
#
# No SIGNERS file (the seeder was given no --update-signer): OUT is URL as set, and the journal says that
# updates are not verified.
# A SIGNERS file (git's SSH allowed_signers format; persist-layout.json, role "update-signers"): the ref URL
# follows (ref=..., else the repository's HEAD) is fetched. A tag must be signed by a key in SIGNERS and carry
# the ref's own name (an older signed release moved under the name is refused); a branch's tip commit must be
# signed by such a key. OUT is then URL pinned to that commit (rev=SHA in place of ref=), so what is built is
# what was verified, never the moving ref. Anything else: no OUT, a one-line reason, exit 1 (no update).
# Needs git, ssh-keygen (openssh) and coreutils on PATH; $ZVM_UPDATE_CACHE (default /nix/var/cache/zvm-update)
# keeps the fetched repository between runs.
set -euo pipefail
export LC_ALL=C

url=$1
signers=$2
out=$3
cache=${ZVM_UPDATE_CACHE:-/nix/var/cache/zvm-update}

fail() {
  printf 'zvm-update: %s; not updating\n' "$1" >&2
  exit 1
}

write_out() {
  printf '%s\n' "$1" >"$out.tmp"
  mv -f -- "$out.tmp" "$out"
}

case $url in
  *[[:space:]]* | *[[:cntrl:]]*) fail "the flake URL holds a space or a control character" ;;
esac
if [[ $url != *'#'* ]]; then
  fail "the flake URL $url names no configuration (end it with #zvm)"
fi

if [ ! -e "$signers" ] && [ ! -L "$signers" ]; then
  printf 'zvm-update: updates are not verified (no release signers in %s); following %s\n' "$signers" "$url" >&2
  write_out "$url"
  exit 0
fi
# A list that is there but unusable must not fall back to unverified updates.
if [ -L "$signers" ] || [ ! -f "$signers" ] || [ ! -s "$signers" ]; then
  fail "$signers is not a regular, non-empty file"
fi

fragment=${url#*#}
rest=${url%%#*}
base=${rest%%\?*}
query=
if [[ $rest == *\?* ]]; then
  query=${rest#*\?}
fi
case $base in
  git+https://* | git+ssh://* | git+http://* | git+file://*) repo=${base#git+} ;;
  *) fail "signed updates need a git+https:// or git+ssh:// flake URL, not $base" ;;
esac

ref=HEAD
kept=()
IFS='&' read -r -a params <<<"$query"
for param in "${params[@]}"; do
  case $param in
    ref=*) ref=${param#ref=} ;;
    rev=*) fail "the flake URL pins rev= itself: it would never update (follow a ref instead)" ;;
    '') ;;
    *) kept+=("$param") ;;
  esac
done
# Flake URLs may percent-encode the ref (refs%2Ftags%2Fv1).
printf -v ref '%b' "${ref//%/\\x}"

git init -q --bare "$cache" >/dev/null
if ! git -C "$cache" fetch -q --no-tags --force -- "$repo" "$ref"; then
  fail "could not fetch $ref from $repo"
fi
object=$(git -C "$cache" rev-parse --verify -q FETCH_HEAD) || fail "fetching $ref from $repo gave nothing"

verify() {
  git -C "$cache" -c gpg.format=ssh -c gpg.ssh.allowedSignersFile="$signers" -c gpg.minTrustLevel=fully "$@"
}

case $(git -C "$cache" cat-file -t "$object") in
  tag)
    name=
    while IFS= read -r line && [ -n "$line" ]; do
      if [[ $line == "tag "* ]]; then
        name=${line#tag }
      fi
    done < <(git -C "$cache" cat-file tag "$object")
    if [ "$name" != "${ref#refs/tags/}" ]; then
      fail "$ref is the tag object of the release \"$name\": an older release moved under the name"
    fi
    verify verify-tag "$object" >/dev/null 2>&1 || fail "the tag $ref ($object) is not signed by a key in $signers"
    rev=$(git -C "$cache" rev-parse --verify "$object^{commit}")
    ;;
  commit)
    verify verify-commit "$object" >/dev/null 2>&1 || fail "$ref's commit $object is not signed by a key in $signers"
    rev=$object
    ;;
  *) fail "$ref names neither a tag nor a commit" ;;
esac

kept+=("rev=$rev")
joined=$(IFS='&' && printf '%s' "${kept[*]}")
printf 'zvm-update: %s at %s is signed by a key in %s; switching to %s\n' "$ref" "$rev" "$signers" "$rev" >&2
write_out "$base?$joined#$fragment"
