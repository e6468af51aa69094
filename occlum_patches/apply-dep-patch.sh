#!/usr/bin/env bash
# apply-dep-patch.sh TREE DEP PATCH: applies one of Occlum's dependency patches
# (deps/*.patch, paths relative to the dependency's root) to the copy TREE/deps/DEP
# and proves it is in. TREE is a copy of Occlum's tree, itself a git repository, so
# `git apply` run inside deps/DEP would take TREE as the work tree, print "Skipped
# patch" for every path outside the current directory and exit 0 with nothing
# applied. Run from TREE's root with --directory instead, then check the reverse.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 TREE DEP PATCH" >&2; exit 2; }
tree=$1 dep=$2 patch=$3
[ -d "$tree/deps/$dep" ] || { echo "apply-dep-patch: no directory $tree/deps/$dep" >&2; exit 1; }
[ -f "$patch" ] || { echo "apply-dep-patch: no patch $patch" >&2; exit 1; }
git -C "$tree" apply --directory="deps/$dep" "$patch"
git -C "$tree" apply --directory="deps/$dep" --reverse --check "$patch" || {
  echo "apply-dep-patch: $patch is not in $tree/deps/$dep after applying it" >&2
  exit 1
}
