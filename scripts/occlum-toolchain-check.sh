#!/usr/bin/env bash
# scripts/occlum-toolchain-check.sh [--update-lock]
#
# `cargo check`s the exitless crates as Occlum's LibOS builds them, with the toolchain
# Occlum pins (src/libos/rust-toolchain at the commit in occlum_patches/PINNED):
# exitless-seal and exitless-sealedfs with pure-rust crypto (no C compiler),
# exitless-io and exitless-rt without `std` (core + alloc); and, since exitless-seal
# and exitless-sealedfs declare that Rust version, their default (ring) builds too.
# exitless-seal is checked with explicit feature sets, its two providers Occlum can
# use: pure-rust (the enclave's) and ring (the default), never --all-features: its
# `aws-lc` provider (aws-lc-rs, the host build's) needs a newer Rust and is not part of
# Occlum. As apply.sh does, the copied manifest drops the `aws-lc` feature and the
# `aws-lc-rs` dependency, so neither occlum-toolchain.lock nor cargo 1.66 sees them.
#
# The crates are checked as occlum_patches/apply.sh puts them into Occlum: their
# manifests and sources in a workspace whose [workspace.package] is the one patch 0001
# adds (it gives exitless-io and exitless-rt their rust-version there). Dev-dependencies
# and test targets are left out: only the libraries are checked.
#
# That cargo (1.66) reads neither Cargo.lock v4 nor rust-version when resolving, so
# the dependency versions come from occlum_patches/occlum-toolchain.lock (lockfile v3),
# which --update-lock regenerates with the current cargo's rust-version-aware resolver
# (cargo >= 1.84): the newest versions whose rust-version the old compiler meets.
# Occlum's own src/libos/Cargo.lock needs the same versions (docs/OCCLUM.md).
#
# The target is the host's (x86_64-unknown-linux-gnu), as for Occlum's LibOS (sgx_tstd
# stands in for std there); rust-std for x86_64-unknown-none is not published for that
# nightly. `make nostd-check` checks the same crates for x86_64-unknown-none on stable.
# Installs the toolchain with rustup when missing; build output goes to
# target/occlum-toolchain (reruns take seconds).
set -euo pipefail

TOOLCHAIN=nightly-2022-10-22 # Occlum 690d5dbf: src/libos/rust-toolchain (rustc 1.66.0-nightly)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
lock="$repo/occlum_patches/occlum-toolchain.lock"
patch1=$(ls "$repo"/occlum_patches/0001-*.patch)
out="$repo/target/occlum-toolchain"
ws="$out/ws"

update_lock=0
case "${1:-}" in
  --update-lock) update_lock=1 ;;
  "") ;;
  *) echo "usage: $0 [--update-lock]" >&2; exit 2 ;;
esac

# The workspace as Occlum has it (sources copied with their mtimes so reruns are quick).
rm -rf "$ws"
mkdir -p "$ws/native"
for c in seal io rt sealedfs; do
  mkdir -p "$ws/native/$c"
  cp -rp "$repo/native/$c/Cargo.toml" "$repo/native/$c/src" "$ws/native/$c/"
  [ ! -f "$repo/native/$c/build.rs" ] || cp -p "$repo/native/$c/build.rs" "$ws/native/$c/"
  # Drop [dev-dependencies] and test / example / bench targets: libraries only.
  # Drop the host-only `aws-lc` provider (feature and dependency), as apply.sh does.
  awk '/^\[/ { skip = ($0 ~ /^\[(dev-dependencies|\[test\]|\[example\]|\[bench\])/) } !skip' \
    "$repo/native/$c/Cargo.toml" | sed -e '/^aws-lc\(-rs\)\? = /d' > "$ws/native/$c/Cargo.toml"
done
{
  echo '[workspace]'
  echo 'resolver = "2"'
  echo 'members = ["native/seal", "native/io", "native/rt", "native/sealedfs"]'
  echo
  # [workspace.package] and the lints, from patch 0001's src/libos/crates/Cargo.toml.
  sed -n '/^+\[workspace.package\]/,$p' "$patch1" | sed -n 's/^+//p'
} > "$ws/Cargo.toml"
grep -q '^rust-version' "$ws/Cargo.toml" || { echo "$0: no rust-version in $patch1's [workspace.package]" >&2; exit 1; }

if [ $update_lock -eq 1 ]; then
  (cd "$ws" && CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo generate-lockfile)
  cp "$ws/Cargo.lock" "$lock"
  echo "occlum-toolchain-check: wrote $lock"
fi
cp "$lock" "$ws/Cargo.lock"

if ! rustup toolchain list | grep -q "^$TOOLCHAIN-"; then
  rustup toolchain install "$TOOLCHAIN" --profile minimal
fi

export CARGO_TARGET_DIR="$out/target"
rustc_version=$(rustup run "$TOOLCHAIN" rustc --version)
check() { # ARGS... (the environment passes through: CC=/bin/false check ...)
  echo "occlum-toolchain-check: cargo +$TOOLCHAIN check $*${CC:+  (CC=$CC)}"
  (cd "$ws" && cargo "+$TOOLCHAIN" -Z sparse-registry check --locked -q "$@")
}
# What the LibOS builds (exitless-occlum's dependencies, patch 0004).
CC=/bin/false check -p exitless-seal --no-default-features --features pure-rust
CC=/bin/false check -p exitless-sealedfs --no-default-features --features pure-rust
check -p exitless-io --no-default-features
check -p exitless-rt --no-default-features
# exitless-seal and exitless-sealedfs declare this Rust version for the providers
# Occlum can use: each of them, with std (the enclave check above is without).
check -p exitless-seal --features std
check -p exitless-seal --no-default-features --features pure-rust,std
check -p exitless-sealedfs
echo "occlum-toolchain-check: passed with $rustc_version"
