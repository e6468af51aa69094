#!/usr/bin/env bash
# occlum_patches/apply.sh OCCLUM_SRC [LAST]
#
# Applies the exitless patch series to an Occlum source tree (a checkout of the
# commit in PINNED): copies the exitless crates (exitless-seal, -io, -rt, -sealedfs)
# from this repository into OCCLUM_SRC/src/libos/crates/, then applies the numbered
# patches in order, each checked with `git apply --check` first. Stops at the first
# patch that does not apply and leaves the tree as it is then. With LAST (a number),
# only the patches up to that one are applied (0: none, the crates only).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
pinned=$(cat "$here/PINNED")

die() { echo "apply.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || [ $# -eq 2 ] || die "usage: apply.sh OCCLUM_SRC [LAST]"
src=$1
last=${2:-9999}
[[ $last =~ ^[0-9]+$ ]] || die "LAST must be a patch number, not $last"
[ -d "$src" ] || die "$src: no such directory"
src=$(cd "$src" && pwd)
[ -f "$src/src/libos/crates/Cargo.toml" ] && [ -f "$src/src/libos/src/fs/hostfs.rs" ] \
  || die "$src does not look like an Occlum source tree (no src/libos/crates/Cargo.toml or src/libos/src/fs/hostfs.rs)"
if head=$(git -C "$src" rev-parse HEAD 2>/dev/null) && [ "$head" != "$pinned" ]; then
  echo "apply.sh: warning: the series is made against $pinned; $src is at $head" >&2
fi

shopt -s nullglob
patches=("$here"/[0-9][0-9][0-9][0-9]-*.patch)
[ ${#patches[@]} -gt 0 ] || die "no patches in $here"

for p in "${patches[@]}"; do
  name=$(basename "$p")
  [ $((10#${name:0:4})) -le "$last" ] || break
  if ! git -C "$src" apply --check "$p"; then
    die "$name does not apply to $src (already applied, or another Occlum commit?)"
  fi
  git -C "$src" apply "$p"
  echo "applied $name"
done

crates="$src/src/libos/crates"
for c in seal io rt sealedfs; do
  dest="$crates/exitless-$c"
  rm -rf "$dest"
  mkdir -p "$dest"
  # The crate's sources and manifest (no build output).
  (cd "$repo/native/$c" && tar cf - --exclude=target .) | (cd "$dest" && tar xf -)
  # Our formatting, so Occlum's `make format-check` (cargo fmt in src/libos/crates)
  # finds the crates formatted: rustfmt reads the nearest rustfmt.toml.
  cp "$repo/rustfmt.toml" "$dest/rustfmt.toml"
  # In Occlum's workspace the crates live under their package names; exitless-seal's
  # host-only `aws-lc` provider (feature and aws-lc-rs dependency) is left out.
  sed -i -e 's|path = "\.\./seal"|path = "../exitless-seal"|' \
         -e '/^aws-lc\(-rs\)\? = /d' \
         -e 's|path = "\.\./io"|path = "../exitless-io"|' \
         -e 's|path = "\.\./rt"|path = "../exitless-rt"|' "$dest/Cargo.toml"
  echo "copied native/$c -> src/libos/crates/exitless-$c"
done
echo "apply.sh: done: $src has the exitless series"
