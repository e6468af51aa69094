#!/usr/bin/env bash
# occlum_patches/check.sh OCCLUM_SRC
#
# Verifies the series against an Occlum checkout (any git clone of occlum/occlum
# that holds the commit in PINNED; it is not modified):
#   1. a fresh copy of OCCLUM_SRC at the pinned commit; each patch passes
#      `git apply --check` and is applied, in order (apply.sh), and the exitless
#      crates are copied in;
#   2. `cargo check` / `cargo test` of what builds without the SGX SDK: the exitless
#      crates as the series adds them (exitless-seal pure-rust and exitless-rt and
#      exitless-io without std, i.e. as the LibOS uses them; exitless-sealedfs's
#      tests with the pure-Rust crypto), and the patched gen_internal_conf's tests;
#   3. `cargo check` of the patched src/libos/crates workspace (exitless-occlum
#      over io-uring-callback and sgx-untrusted-alloc), only if OCCLUM_SRC has the
#      submodules that workspace needs checked out; otherwise SKIP, with the reason.
# src/libos itself needs the Intel SGX SDK and Occlum's toolchain: always SKIP here.
# Prints one PASS / FAIL / SKIP line per step and exits non-zero on any FAIL.
# Cargo needs crates.io (or a warm cache); build output goes to $CHECK_TARGET_DIR
# (default /tmp/occ-check-target) so reruns are quick.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
pinned=$(cat "$here/PINNED")
target_dir=${CHECK_TARGET_DIR:-/tmp/occ-check-target}
occlum_toolchain=${OCCLUM_CHECK_TOOLCHAIN:-nightly}

results=()
failed=0
record() { # STATUS WHAT [DETAIL]
  results+=("$(printf '%-4s %s%s' "$1" "$2" "${3:+  ($3)}")")
  [ "$1" = FAIL ] && failed=1
  echo "== $1 $2${3:+ ($3)}"
}
summary() {
  echo
  echo "check.sh summary (Occlum $pinned):"
  printf '  %s\n' "${results[@]}"
  if [ $failed -eq 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
}
die() { echo "check.sh: $*" >&2; record FAIL "setup" "$*"; summary; exit 1; }

[ $# -eq 1 ] || { echo "usage: check.sh OCCLUM_SRC" >&2; exit 2; }
src=$1
[ -d "$src" ] || die "$src: no such directory"
src=$(cd "$src" && pwd)
git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || die "$src is not a git checkout of occlum/occlum"
git -C "$src" cat-file -e "$pinned^{commit}" 2>/dev/null || die "$src does not hold the pinned commit $pinned"

work=$(mktemp -d /tmp/occ-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="$work/occlum"
git clone -q --shared --no-checkout "$src" "$tree" && git -C "$tree" checkout -q --detach "$pinned" \
  || die "cannot make a copy of $src at $pinned"
record PASS "copy of OCCLUM_SRC at $pinned"

# The toolchain the LibOS pins is the one `make occlum-toolchain-check` checks with.
pinned_tc=$(tr -d '[:space:]' < "$tree/src/libos/rust-toolchain")
checked_tc=$(sed -n 's/^TOOLCHAIN=\([^ ]*\).*/\1/p' "$repo/scripts/occlum-toolchain-check.sh")
if [ "$pinned_tc" = "$checked_tc" ]; then
  record PASS "src/libos/rust-toolchain is $pinned_tc, as in scripts/occlum-toolchain-check.sh"
else
  record FAIL "src/libos/rust-toolchain is $pinned_tc, scripts/occlum-toolchain-check.sh checks with $checked_tc"
fi

# 1. The series applies (apply.sh runs `git apply --check` before each patch).
if "$here/apply.sh" "$tree" > "$work/apply.log" 2>&1; then
  while read -r line; do
    case $line in applied*) record PASS "git apply --check + apply: ${line#applied }" ;; esac
  done < "$work/apply.log"
  record PASS "exitless crates copied into src/libos/crates"
else
  cat "$work/apply.log"
  record FAIL "apply.sh" "see the output above"
  summary
  exit 1
fi

# 2. What builds without the SGX SDK, exactly as the series put it into the tree.
solo="$work/standalone"
mkdir -p "$solo"
for c in exitless-seal exitless-io exitless-rt exitless-sealedfs; do
  cp -r "$tree/src/libos/crates/$c" "$solo/$c"
done
{
  echo '[workspace]'
  echo 'resolver = "2"'
  echo 'members = ["exitless-seal", "exitless-io", "exitless-rt", "exitless-sealedfs"]'
  echo
  sed -n '/^\[workspace.package\]/,$p' "$tree/src/libos/crates/Cargo.toml"
} > "$solo/Cargo.toml"
cp "$repo/Cargo.lock" "$solo/Cargo.lock" # the versions exitless is tested with

run() { # WHAT DIR CMD...
  local what=$1 dir=$2; shift 2
  echo "-- $what: $*"
  if (cd "$dir" && "$@") > "$work/step.log" 2>&1; then
    grep -E '^test result:' "$work/step.log" | sed 's/^/   /'
    record PASS "$what"
  else
    tail -30 "$work/step.log"
    record FAIL "$what" "$*"
  fi
}
export CARGO_TARGET_DIR="$target_dir/standalone"
run "cargo check exitless-seal (pure-rust, no_std, no C compiler)" "$solo" \
  env CC=/bin/false cargo check -q -p exitless-seal --no-default-features --features pure-rust
run "cargo check exitless-rt (no default features: core + alloc)" "$solo" \
  cargo check -q -p exitless-rt --no-default-features
run "cargo check exitless-io (no default features)" "$solo" \
  cargo check -q -p exitless-io --no-default-features
run "cargo test exitless-sealedfs (pure-rust crypto, as in the enclave)" "$solo" \
  cargo test -q -p exitless-sealedfs --no-default-features --features pure-rust
export CARGO_TARGET_DIR="$target_dir/gen_internal_conf"
run "cargo test tools/gen_internal_conf (sealedfs options pass through, checked)" \
  "$tree/tools/gen_internal_conf" cargo test -q

# 3. The patched src/libos/crates workspace: needs Occlum's submodules.
missing=()
for f in deps/io-uring/Cargo.toml deps/rust-sgx-sdk/sgx_tstd/Cargo.toml deps/sefs/rcore-fs/Cargo.toml \
         deps/serde-json-sgx/Cargo.toml; do
  [ -f "$src/$f" ] || missing+=("$(echo "$f" | cut -d/ -f1-2)")
done
if [ ${#missing[@]} -eq 0 ]; then
  for d in io-uring rust-sgx-sdk sefs serde-json-sgx; do
    rm -rf "$tree/deps/$d" && ln -s "$src/deps/$d" "$tree/deps/$d"
  done
  export CARGO_TARGET_DIR="$target_dir/crates"
  run "cargo check src/libos/crates: exitless-occlum + io-uring-callback + sgx-untrusted-alloc ($occlum_toolchain)" \
    "$tree/src/libos/crates" env RUSTUP_TOOLCHAIN="$occlum_toolchain" cargo check -q \
    -p exitless-occlum -p io-uring-callback -p sgx-untrusted-alloc
else
  record SKIP "cargo check src/libos/crates (exitless-occlum)" \
    "OCCLUM_SRC lacks submodules ${missing[*]}: git -C OCCLUM_SRC submodule update --init ${missing[*]}"
fi
record SKIP "build of src/libos (sealedfs module, config)" \
  "needs the Intel SGX SDK: build in Occlum's docker image; the exitless crates' no_std builds pass with its $pinned_tc: make occlum-toolchain-check"

summary
exit $failed
