#!/usr/bin/env bash
# occlum_patches/check.sh OCCLUM_SRC            (OCCLUM_DEPS=DIR: Occlum's submodule checkouts)
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
#      over io-uring-callback and sgx-untrusted-alloc, default `libc` features, with
#      Occlum's pinned toolchain), only if the submodules that workspace needs
#      (deps/io-uring, rust-sgx-sdk, sefs, serde-json-sgx, serde-sgx, itoa-sgx) are
#      checked out, in OCCLUM_SRC/deps or in $OCCLUM_DEPS (a directory holding them
#      under those names); otherwise SKIP, with the reason. An INFO line names the
#      commit of each and whether it is the one OCCLUM_SRC pins.
# src/libos itself needs the Intel SGX SDK and Occlum's toolchain: always SKIP here.
# Prints one PASS / FAIL / SKIP line per step and exits non-zero on any FAIL.
# Cargo needs crates.io (or a warm cache); build output goes to $CHECK_TARGET_DIR
# (default /tmp/occ-check-target) so reruns are quick.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
pinned=$(cat "$here/PINNED")
target_dir=${CHECK_TARGET_DIR:-/tmp/occ-check-target}

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
occlum_toolchain=${OCCLUM_CHECK_TOOLCHAIN:-$pinned_tc}
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

# 3. The patched src/libos/crates workspace: needs Occlum's submodules. They come from
#    $OCCLUM_DEPS (a directory holding checkouts named as under deps/), else from
#    OCCLUM_SRC/deps when populated (`make submodule` / `git submodule update --init`).
#    They are used read-only: symlinked into the copy, except serde-json-sgx, which is
#    copied and given Occlum's deps/serde-json-sgx.patch when its checkout lacks it
#    (as `make submodule` does). The apache/teaclave-sgx-sdk git dependency of
#    serde-json-sgx, serde-sgx and itoa-sgx is [patch]ed to deps/rust-sgx-sdk/sgx_tstd,
#    as src/libos/Cargo.toml does; occlum-crates.lock (lockfile v3) holds dependency
#    versions that Occlum's nightly-2022-10-22 (cargo 1.66) builds.
occlum_deps=(io-uring rust-sgx-sdk sefs serde-json-sgx serde-sgx itoa-sgx)
dep_manifest() { # NAME -> the manifest that shows the checkout is populated
  case $1 in
    rust-sgx-sdk) echo sgx_tstd/Cargo.toml ;;
    sefs) echo rcore-fs/Cargo.toml ;;
    serde-sgx) echo serde/Cargo.toml ;;
    *) echo Cargo.toml ;;
  esac
}
if [ -n "${OCCLUM_DEPS:-}" ]; then
  deps_dir=$(cd "$OCCLUM_DEPS" 2>/dev/null && pwd) || die "OCCLUM_DEPS=$OCCLUM_DEPS: no such directory"
  deps_from="OCCLUM_DEPS=$deps_dir"
else
  deps_dir="$src/deps"
  deps_from="OCCLUM_SRC/deps"
fi
missing=()
for d in "${occlum_deps[@]}"; do
  [ -f "$deps_dir/$d/$(dep_manifest "$d")" ] || missing+=("deps/$d")
done
if [ ${#missing[@]} -eq 0 ]; then
  used=()
  for d in "${occlum_deps[@]}"; do
    want=$(git -C "$tree" ls-tree HEAD "deps/$d" | awk '{print $3}')
    have=$(git -C "$deps_dir/$d" rev-parse HEAD 2>/dev/null || echo unknown)
    if [ "$have" = "$want" ]; then used+=("$d ${have:0:8} (pinned)"); else used+=("$d ${have:0:8} (pinned ${want:0:8})"); fi
    rm -rf "${tree:?}/deps/$d"
    if [ "$d" = serde-json-sgx ]; then
      cp -r "$deps_dir/$d" "$tree/deps/$d" && rm -rf "$tree/deps/$d/.git"
      if grep -q 'mesalock-linux/serde-sgx' "$tree/deps/$d/Cargo.toml"; then
        "$here/apply-dep-patch.sh" "$tree" "$d" "$tree/deps/serde-json-sgx.patch" \
          || die "deps/serde-json-sgx.patch does not apply to $deps_dir/$d"
      fi
    else
      ln -s "$deps_dir/$d" "$tree/deps/$d"
    fi
  done
  record INFO "submodules from $deps_from: $(IFS=,; echo "${used[*]}" | sed 's/,/, /g')"
  cat > "$work/cargo-config.toml" <<EOF
[patch.'https://github.com/apache/teaclave-sgx-sdk.git']
sgx_tstd = { path = "$tree/deps/rust-sgx-sdk/sgx_tstd" }
EOF
  cp "$here/occlum-crates.lock" "$tree/src/libos/crates/Cargo.lock"
  export CARGO_TARGET_DIR="$target_dir/crates"
  run "cargo check src/libos/crates: exitless-occlum + io-uring-callback + sgx-untrusted-alloc (default features, $occlum_toolchain)" \
    "$tree/src/libos/crates" env RUSTUP_TOOLCHAIN="$occlum_toolchain" cargo -Z sparse-registry check -q \
    --config "$work/cargo-config.toml" -p exitless-occlum -p io-uring-callback -p sgx-untrusted-alloc
else
  record SKIP "cargo check src/libos/crates (exitless-occlum)" \
    "no Occlum submodules ${missing[*]} in $deps_from: set OCCLUM_DEPS to a directory of their checkouts, or git -C OCCLUM_SRC submodule update --init ${missing[*]}"
fi
record SKIP "build of src/libos (sealedfs module, config)" \
  "needs the Intel SGX SDK: build in Occlum's docker image; the exitless crates' no_std builds pass with its $pinned_tc: make occlum-toolchain-check"

summary
exit $failed
