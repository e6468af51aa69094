#!/usr/bin/env bash
# occlum_patches/check.sh OCCLUM_SRC
#   OCCLUM_MIRRORS=DIR  git mirrors to build Occlum's dependencies from, offline (deps.sh)
#   OCCLUM_DEPS=DIR     or: a directory of Occlum's submodule checkouts (deps.sh's output,
#                       or `make submodule`'s deps/), instead of OCCLUM_SRC/deps
#   SGX_SDK=DIR         an installed SGX SDK (default: OCCLUM_DEPS/sgx-sdk, headers only)
#   CHECK_STEPWISE=0    skip compiling the LibOS after each patch in turn
#
# Verifies the series against an Occlum checkout (any git clone of occlum/occlum
# that holds the commit in PINNED; it is not modified):
#   1. a fresh copy of OCCLUM_SRC at the pinned commit; each patch passes
#      `git apply --check` and is applied, in order (apply.sh), and the exitless
#      crates are copied in;
#   2. `cargo check` / `cargo test` of what builds without Occlum's dependencies: the
#      exitless crates as the series adds them (exitless-seal pure-rust and exitless-rt
#      and exitless-io without std, i.e. as the LibOS uses them; exitless-sealedfs's
#      tests with the pure-Rust crypto), and the patched gen_internal_conf's tests;
#   3. with Occlum's dependencies (OCCLUM_MIRRORS, OCCLUM_DEPS or OCCLUM_SRC/deps; each
#      copied into the trees and given Occlum's deps/*.patch as `make submodule` does),
#      with Occlum's pinned toolchain, as the LibOS Makefile builds (RUSTC_BOOTSTRAP=1,
#      host target, no RUSTFLAGS):
#      a. src/libos/crates: `cargo check` of exitless-occlum, io-uring-callback and
#         sgx-untrusted-alloc (default `libc` features), exitless-occlum's host tests
#         (`cargo test`: sealed files through a real SQPOLL io_uring, tampering, forged
#         completions), and clippy;
#      b. src/libos itself, unpatched (the control) and patched, each with the HW
#         feature set (defaults + `dcap pku`, SGX_MODE=HW) and the SIM one (defaults +
#         `dcap`, SGX_MODE=SIM): `cargo check` and `cargo clippy`;
#      c. no warning (rustc or clippy) in code the series touches that the control
#         does not have, compared by file and message;
#      d. each patch in turn: the LibOS (HW) compiles after 0001, after 0002, ...;
#      e. `cargo fmt --check` as Occlum's `make format-check`: every file the series
#         touches formatted.
#   Without those dependencies step 3 SKIPs and says what is missing, and the result
#   is INCOMPLETE (exit status 3), not a pass.
# Prints one PASS / FAIL / SKIP line per step (with its time) and exits non-zero on
# any FAIL. crates.io comes from cargo's cache or the network (sparse protocol);
# nothing needs GitHub when OCCLUM_MIRRORS is set. Build output goes to
# $CHECK_TARGET_DIR (default /tmp/occ-check-target).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
pinned=$(cat "$here/PINNED")
target_dir=${CHECK_TARGET_DIR:-/tmp/occ-check-target}

results=()
failed=0
started=$SECONDS
record() { # STATUS WHAT [DETAIL]
  results+=("$(printf '%-4s %s%s' "$1" "$2" "${3:+  ($3)}")")
  [ "$1" = FAIL ] && failed=1
  echo "== $1 $2${3:+ ($3)}"
}
summary() {
  echo
  echo "check.sh summary (Occlum $pinned), $((SECONDS - started)) s in all:"
  printf '  %s\n' "${results[@]}"
  if [ $failed -ne 0 ]; then
    echo "RESULT: FAIL"
  elif [ -n "${incomplete:-}" ]; then
    echo "RESULT: INCOMPLETE ($incomplete)"
  else
    echo "RESULT: PASS"
  fi
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
fresh_tree() { # DIR: a copy of OCCLUM_SRC at the pinned commit
  git clone -q --shared --no-checkout "$src" "$1" && git -C "$1" checkout -q --detach "$pinned" \
    || die "cannot make a copy of $src at $pinned"
}
tree="$work/occlum"
fresh_tree "$tree"
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

run() { # WHAT DIR CMD...: one step; its output in $work/step.log
  local what=$1 dir=$2 t0=$SECONDS
  shift 2
  echo "-- $what: $*"
  if (cd "$dir" && "$@") > "$work/step.log" 2>&1; then
    grep -E '^test result:|^test .* \.\.\. ' "$work/step.log" | sed 's/^/   /'
    record PASS "$what" "$((SECONDS - t0)) s"
  else
    tail -30 "$work/step.log"
    record FAIL "$what" "$((SECONDS - t0)) s: $*"
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

# 3. With Occlum's dependencies: the src/libos/crates workspace and src/libos itself.
# shellcheck source=libos-deps.sh
. "$here/libos-deps.sh"
dep_manifest() { # NAME -> the manifest that shows the checkout is populated
  case $1 in
    rust-sgx-sdk) echo sgx_tstd/Cargo.toml ;;
    sefs) echo rcore-fs/Cargo.toml ;;
    serde-sgx) echo serde/Cargo.toml ;;
    mlsdisk) echo core/Cargo.toml ;;
    *) echo Cargo.toml ;;
  esac
}
if [ -n "${OCCLUM_MIRRORS:-}" ]; then
  deps_dir="$target_dir/deps"
  echo "-- deps.sh: Occlum's dependencies from the mirrors in $OCCLUM_MIRRORS"
  if "$here/deps.sh" "$src" "$OCCLUM_MIRRORS" "$deps_dir" > "$work/deps.log" 2>&1; then
    record PASS "Occlum's dependencies assembled offline from OCCLUM_MIRRORS=$OCCLUM_MIRRORS (deps.sh)"
  else
    cat "$work/deps.log"
    die "deps.sh could not assemble Occlum's dependencies from $OCCLUM_MIRRORS"
  fi
  deps_from="OCCLUM_MIRRORS"
elif [ -n "${OCCLUM_DEPS:-}" ]; then
  deps_dir=$(cd "$OCCLUM_DEPS" 2>/dev/null && pwd) || die "OCCLUM_DEPS=$OCCLUM_DEPS: no such directory"
  deps_from="OCCLUM_DEPS=$deps_dir"
else
  deps_dir="$src/deps"
  deps_from="OCCLUM_SRC/deps"
fi
missing=()
for d in "${LIBOS_DEPS[@]}"; do
  [ -f "$deps_dir/$d/$(dep_manifest "$d")" ] || missing+=("deps/$d")
done
if [ ${#missing[@]} -gt 0 ]; then
  record SKIP "src/libos/crates and src/libos (cargo check, clippy, host tests)" \
    "no ${missing[*]} in $deps_from: set OCCLUM_MIRRORS to a directory of git mirrors (deps.sh), OCCLUM_DEPS to one of checkouts, or git -C OCCLUM_SRC submodule update --init"
  incomplete="the LibOS was not compiled: see the SKIP line" # not a pass
  summary
  [ $failed -eq 0 ] && exit 3
  exit $failed
fi
if [ -f "$deps_dir/SOURCES" ]; then
  while read -r line; do
    case $line in *STAND-IN*) record INFO "$line" ;; esac
  done < "$deps_dir/SOURCES"
else
  used=()
  for d in "${LIBOS_DEPS[@]}"; do
    want=$(git -C "$src" ls-tree "$pinned" "deps/$d" | awk '{print $3}')
    have=$(git -C "$deps_dir/$d" rev-parse HEAD 2>/dev/null || echo unknown)
    if [ "$have" = "$want" ]; then used+=("$d ${have:0:8}"); else used+=("$d ${have:0:8} (pinned ${want:0:8})"); fi
  done
  record INFO "submodules from $deps_from: $(IFS=,; echo "${used[*]}" | sed 's/,/, /g')"
fi

# sgx_unwind's build script (sgx_tstd's `backtrace`) runs autoreconf, configure, make.
for tool in autoreconf automake libtoolize make; do
  command -v "$tool" > /dev/null \
    || die "$tool is missing: the LibOS build needs autoconf, automake and libtool (apt-get install autoconf automake libtool)"
done

# The toolchain, with clippy and rustfmt (rustup installs what is missing).
if ! rustup run "$occlum_toolchain" cargo clippy --version > /dev/null 2>&1 \
  || ! rustup run "$occlum_toolchain" cargo fmt --version > /dev/null 2>&1; then
  rustup toolchain install "$occlum_toolchain" --profile minimal -c clippy -c rustfmt > "$work/rustup.log" 2>&1 \
    || { cat "$work/rustup.log"; die "cannot install $occlum_toolchain with clippy and rustfmt"; }
fi

populate() { # TREE: Occlum's dependencies into a copy, with Occlum's deps/*.patch
  local t=$1 d
  for d in "${LIBOS_DEPS[@]}"; do
    rm -rf "${t:?}/deps/$d"
    cp -r "$deps_dir/$d" "$t/deps/$d"
    rm -rf "$t/deps/$d/.git"
  done
  for d in "${LIBOS_DEPS[@]}"; do
    [ -f "$t/deps/$d.patch" ] || continue # Occlum patches some of them (deps/NAME.patch)
    # A `make submodule`d checkout already has it; otherwise apply, and prove it.
    git -C "$t" apply --directory="deps/$d" --reverse --check "$t/deps/$d.patch" 2>/dev/null \
      || "$here/apply-dep-patch.sh" "$t" "$d" "$t/deps/$d.patch" \
      || die "deps/$d.patch does not apply to $deps_from/$d"
  done
}
populate "$tree"
control="$work/control"
fresh_tree "$control"
populate "$control"
record PASS "Occlum's dependencies copied into the patched tree and the control, with Occlum's deps/*.patch"

# Cargo as the LibOS Makefile runs it, offline from GitHub when deps.sh made the deps:
# its CARGO_HOME holds the git dependencies' cache (crates.io's cache is the user's),
# and git serves the rest through url.insteadOf.
export RUSTUP_TOOLCHAIN="$occlum_toolchain" RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_SPARSE_REGISTRY=true
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS
if [ -d "$deps_dir/cargo-home" ]; then
  user_home=${CARGO_HOME:-$HOME/.cargo}
  mkdir -p "$user_home/registry"
  ln -sfn "$user_home/registry" "$deps_dir/cargo-home/registry"
  export CARGO_HOME="$deps_dir/cargo-home"
fi
if [ -f "$deps_dir/git-mirrors" ]; then
  n=0
  while read -r url repo; do
    for u in "$url" "${url%.git}"; do
      export "GIT_CONFIG_KEY_$n=url.$repo.insteadOf" "GIT_CONFIG_VALUE_$n=$u"
      n=$((n + 1))
    done
  done < "$deps_dir/git-mirrors"
  export GIT_CONFIG_COUNT=$n CARGO_NET_GIT_FETCH_WITH_CLI=true
fi
if [ -z "${SGX_SDK:-}" ]; then
  [ -d "$deps_dir/sgx-sdk/include" ] || die "set SGX_SDK (an SGX SDK, or deps.sh's sgx-sdk/ of headers)"
  export SGX_SDK="$deps_dir/sgx-sdk"
fi

# What the series touches: every file its patches change, and the crates it adds.
touched="$work/touched"
{
  grep -h '^diff --git a/' "$here"/[0-9][0-9][0-9][0-9]-*.patch | awk '{print substr($3, 3)}'
  for c in seal io rt sealedfs; do echo "src/libos/crates/exitless-$c/"; done
} | sort -u > "$touched"

warnings() { # ROOT WORKSPACE LOG -> "path: message" per warning, paths from ROOT
  local root=$1 ws=${2#"$1"/}
  sed -nE 's/^([^ :][^:]*):[0-9]+:[0-9]+: (warning|error)(\[[A-Za-z0-9_]+\])?: (.*)$/\1\t\2: \4/p' "$3" \
    | awk -F '\t' -v root="$root/" -v ws="$ws/" '{
        p = $1
        if (index(p, root) == 1) p = substr(p, length(root) + 1)
        else if (substr(p, 1, 1) != "/") p = ws p
        print p ": " $2
      }' | sort
}
in_touched() { # "path: message" lines -> those in files the series touches
  awk -v list="$touched" 'BEGIN { while ((getline l < list) > 0) t[++n] = l }
    { split($0, a, ": "); for (i = 1; i <= n; i++) if (a[1] == t[i] || index(a[1], t[i]) == 1 && substr(t[i], length(t[i])) == "/") { print; next } }'
}
cargo_step() { # WHAT TREE WORKSPACE NAME ARGS...: run cargo, keep its warnings as NAME
  local what=$1 root=$2 ws=$3 name=$4 t0=$SECONDS; shift 4
  echo "-- $what: cargo $*"
  if (cd "$ws" && cargo "$1" --message-format short "${@:2}") > "$work/$name.log" 2>&1; then
    warnings "$root" "$ws" "$work/$name.log" > "$work/$name.warnings"
    record PASS "$what" "$(($SECONDS - t0)) s, $(wc -l < "$work/$name.warnings") warnings"
  else
    grep -E ': error|^error' "$work/$name.log" | head -20
    tail -15 "$work/$name.log"
    : > "$work/$name.warnings"
    record FAIL "$what" "$(($SECONDS - t0)) s: cargo $*"
  fi
}
patch_cfg="$work/cargo-patch.toml" # as src/libos/Cargo.toml [patch]es, for the crates workspace
printf "[patch.'https://github.com/apache/teaclave-sgx-sdk.git']\nsgx_tstd = { path = \"%s\" }\n" \
  "$tree/deps/rust-sgx-sdk/sgx_tstd" > "$patch_cfg"
control_cfg="$work/cargo-patch-control.toml"
sed "s|$tree/|$control/|" "$patch_cfg" > "$control_cfg"

# 3a. src/libos/crates (patched): exitless-occlum on Linux, as Occlum's crates build.
cp "$here/occlum-crates.lock" "$tree/src/libos/crates/Cargo.lock"
cp "$here/occlum-crates.lock" "$control/src/libos/crates/Cargo.lock"
export CARGO_TARGET_DIR="$target_dir/crates"
crates="$tree/src/libos/crates"
cargo_step "cargo check src/libos/crates: exitless-occlum + io-uring-callback + sgx-untrusted-alloc (default features, $occlum_toolchain)" \
  "$tree" "$crates" crates-check check --locked --config "$patch_cfg" -p exitless-occlum -p io-uring-callback -p sgx-untrusted-alloc
run "cargo test exitless-occlum: sealed files through a real SQPOLL io_uring (io-uring-callback, sgx-untrusted-alloc), tampered host files, forged completions" \
  "$crates" cargo test --locked --config "$patch_cfg" -p exitless-occlum
cargo_step "cargo clippy src/libos/crates: exitless-occlum (with its tests)" \
  "$tree" "$crates" crates-clippy-occlum clippy --locked --config "$patch_cfg" -p exitless-occlum --all-targets -- --cap-lints warn
# io-uring-callback and sgx-untrusted-alloc (patches 0002, 0003, 0007) as the LibOS
# builds them (`sgx`), patched and control, for the comparison below. (The control's
# workspace lacks the exitless crates: cargo drops them from the copied lockfile.)
export CARGO_TARGET_DIR="$target_dir/crates-control"
cargo_step "cargo clippy src/libos/crates (control): io-uring-callback + sgx-untrusted-alloc (sgx)" \
  "$control" "$control/src/libos/crates" crates-clippy-sgx.control clippy --config "$control_cfg" \
  -p io-uring-callback -p sgx-untrusted-alloc --features io-uring-callback/sgx,sgx-untrusted-alloc/sgx -- --cap-lints warn
export CARGO_TARGET_DIR="$target_dir/crates"
cargo_step "cargo clippy src/libos/crates (patched): io-uring-callback + sgx-untrusted-alloc (sgx)" \
  "$tree" "$crates" crates-clippy-sgx.patched clippy --locked --config "$patch_cfg" \
  -p io-uring-callback -p sgx-untrusted-alloc --features io-uring-callback/sgx,sgx-untrusted-alloc/sgx -- --cap-lints warn

# 3b. src/libos, control and patched, HW and SIM feature sets (the Makefile's
#     LIBOS_FEATURES: defaults, + pku in HW mode, + dcap unless OCCLUM_DISABLE_DCAP).
for which in control patched; do
  if [ $which = control ]; then root=$control; else root=$tree; fi
  export CARGO_TARGET_DIR="$target_dir/libos-$which"
  for mode in HW SIM; do
    if [ $mode = HW ]; then features="dcap pku"; else features="dcap"; fi
    export SGX_MODE=$mode
    cargo_step "cargo check src/libos, $which, $mode (features: defaults + $features)" \
      "$root" "$root/src/libos" "libos-check-$mode.$which" check --locked --features "$features"
    cargo_step "cargo clippy src/libos, $which, $mode (features: defaults + $features)" \
      "$root" "$root/src/libos" "libos-clippy-$mode.$which" clippy --locked --features "$features" -- --cap-lints warn
  done
done
unset SGX_MODE

# 3c. New warnings in code the series touches: patched minus control, by file and
#     message (line numbers move), over every compile above.
new="$work/new-warnings"
: > "$new"
for name in libos-check-HW libos-check-SIM libos-clippy-HW libos-clippy-SIM crates-clippy-sgx; do
  comm -13 <(in_touched < "$work/$name.control.warnings") <(in_touched < "$work/$name.patched.warnings") \
    | sed "s/^/[$name] /" >> "$new"
done
for name in crates-check crates-clippy-occlum; do # the exitless crates have no control: any is new
  grep '^src/libos/crates/exitless-' "$work/$name.warnings" | sed "s/^/[$name] /" >> "$new" || true
done
if [ -s "$new" ]; then
  sed 's/^/   /' "$new"
  record FAIL "no new warnings in code the series touches" "$(wc -l < "$new") new, listed above"
else
  record PASS "no new warnings in code the series touches ($(wc -l < "$touched") files and crates; rustc and clippy, HW and SIM, against the control)"
fi

# 3d. Each patch in turn: the LibOS (HW) compiles after each one.
if [ "${CHECK_STEPWISE:-1}" != 0 ]; then
  step="$work/stepwise"
  fresh_tree "$step"
  populate "$step"
  "$here/apply.sh" "$step" 0 > /dev/null || die "apply.sh could not copy the exitless crates"
  export CARGO_TARGET_DIR="$target_dir/libos-stepwise" SGX_MODE=HW
  for p in "$here"/[0-9][0-9][0-9][0-9]-*.patch; do
    name=$(basename "$p")
    git -C "$step" apply "$p" || { record FAIL "in order: $name applies"; break; }
    cargo_step "in order: cargo check src/libos (HW) after ${name:0:4}" "$step" "$step/src/libos" \
      "stepwise-${name:0:4}" check --locked --features "dcap pku"
  done
  unset SGX_MODE
fi

# 3e. Formatting, as Occlum's `make format-check` (`cargo fmt -- --check` in src/libos
#     and src/libos/crates; gen_internal_conf too): no file the series touches may
#     need it where the control's does not. (The exitless crates keep this
#     repository's rustfmt.toml, which apply.sh copies in with them.)
fmt_files() { # ROOT DIR -> the files `cargo fmt` would change, from ROOT
  (cd "$2" && cargo fmt -- --check --color never 2>&1) \
    | sed -nE 's/^Diff in (.*) at line [0-9]+:$/\1/p; s/^Diff in (.*):[0-9]+:$/\1/p' \
    | sed "s|^$1/||" | sort -u
}
unformatted=()
for dir in src/libos src/libos/crates tools/gen_internal_conf; do
  while read -r f; do
    [ -n "$f" ] && unformatted+=("$f")
  done < <(comm -13 <(fmt_files "$control" "$control/$dir") <(fmt_files "$tree" "$tree/$dir") \
    | sed 's/$/: unformatted/' | in_touched | sed 's/: unformatted$//')
done
if [ ${#unformatted[@]} -eq 0 ]; then
  record PASS "cargo fmt --check (Occlum's make format-check): every file the series touches is formatted"
else
  record FAIL "cargo fmt --check (Occlum's make format-check)" "${unformatted[*]}"
fi

summary
exit $failed
