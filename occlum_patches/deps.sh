#!/usr/bin/env bash
# occlum_patches/deps.sh OCCLUM_SRC MIRRORS OUT
#
# Assembles, offline, what `make submodule` and cargo would download to build Occlum's
# src/libos at the commit in PINNED, from local git mirrors:
#   OUT/<submodule>/   the source of each submodule src/libos needs, at the commit
#                      OCCLUM_SRC pins (plain files, no .git; Occlum's deps/*.patch are
#                      NOT applied: check.sh applies them to its copy, as `make
#                      submodule` does), or a stand-in when no mirror holds that commit;
#   OUT/cargo-home/    a CARGO_HOME whose git cache holds src/libos/Cargo.lock's git
#                      dependencies at their locked commits (see below);
#   OUT/git-mirrors    "URL REPO" lines for check.sh to serve through git's
#                      url.<REPO>.insteadOf (the teaclave-sgx-sdk git source);
#   OUT/sgx-sdk/       an SGX_SDK directory for the build scripts that read headers:
#                      include/ = occlum/linux-sgx sgx_2.20_for_occlum common/inc,
#                      include/libcxx = its sdk/tlibcxx/include, lib64/ empty;
#   OUT/SOURCES        one line per piece: what was used and what it stands in for.
#
# MIRRORS holds git repositories (bare or not) named OWNER+NAME/repo, OWNER+NAME or
# OWNER+NAME.git (the layout of a directory of `git clone --mirror`s named that way).
# A submodule is looked up under its .gitmodules owner first, then under any owner
# with the same repository name that holds the pinned commit (occlum/serde-sgx and
# mesalock-linux/serde-sgx share history).
#
# Stand-ins (written by us, in occlum_patches/standins/; each applied with a check
# that it applies cleanly):
#   rust-sgx-sdk 67af3f72 (occlum/incubator-teaclave-sgx-sdk, 2024): apache
#     teaclave-sgx-sdk master 1b1d0337 (v1.1.x for SGX SDK 2.20, 2023-12) plus
#     standins/rust-sgx-sdk.patch, the Occlum-fork APIs the LibOS calls;
#   io-uring c654c492 (occlum/io-uring): crates.io io-uring 0.5.9 (the version
#     Occlum's Cargo.lock gives the fork) plus standins/io-uring.patch, the fork's
#     `sgx` feature and `IoUring::enter`;
#   sefs 30bc4e02 (occlum/sefs, 2024-07): a4b47b5a, Occlum's previous pin, unchanged.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 3 ] || { echo "usage: deps.sh OCCLUM_SRC MIRRORS OUT" >&2; exit 2; }
src=$1 mirrors=$(cd "$2" && pwd) out=$3
pinned=$(cat "$here/PINNED")
die() { echo "deps.sh: $*" >&2; exit 1; }
git -C "$src" cat-file -e "$pinned^{commit}" 2>/dev/null || die "$src does not hold the pinned commit $pinned"
mkdir -p "$out"
out=$(cd "$out" && pwd)
: > "$out/SOURCES"
note() { echo "$*" | tee -a "$out/SOURCES"; }

# shellcheck source=libos-deps.sh
. "$here/libos-deps.sh"

mirror_of() { # OWNER NAME [COMMIT] -> path of a mirror (holding COMMIT, if given)
  local owner=$1 name=${2%.git} commit=${3:-} m
  for m in "$mirrors/$owner+$name/repo" "$mirrors/$owner+$name" "$mirrors/$owner+$name.git" \
    "$mirrors"/*+"$name"/repo "$mirrors"/*+"$name" "$mirrors"/*+"$name".git; do
    [ -d "$m" ] && git -C "$m" rev-parse -q --git-dir >/dev/null 2>&1 || continue
    if [ -z "$commit" ] || git -C "$m" cat-file -e "$commit^{commit}" 2>/dev/null; then
      echo "$m"
      return 0
    fi
  done
  return 1
}
export_tree() { # MIRROR COMMIT DIR [PATH...]: a mirror may lack its largest blobs (PDFs,
  # images): leave those files out, and say so, rather than fail
  local m=$1 c=$2 dir=$3 missing=()
  shift 3
  mkdir -p "$dir"
  mapfile -t missing < <(git -C "$m" ls-tree -r "$c" -- "$@" | awk '$2 == "blob" { print $3 "\t" $4 }' \
    | while IFS=$'\t' read -r blob path; do
      git -C "$m" cat-file -e "$blob" 2>/dev/null || echo "$path"
    done)
  local excl=()
  for p in "${missing[@]}"; do
    excl+=(":(exclude)$p")
    echo "deps.sh: $(basename "$(dirname "$m")") lacks $p; left out" >&2
  done
  # (git still names the missing blob on stderr while it leaves it out)
  git -C "$m" archive --format=tar "$c" -- "${@:-.}" "${excl[@]}" 2>/dev/null | tar -x -C "$dir"
}
apply_standin() { # DIR PATCH
  (cd "$1" && patch -p1 --forward --quiet --no-backup-if-mismatch --reject-file=- < "$2") \
    || die "stand-in $(basename "$2") does not apply to $1"
}
gitmodule_url() { git -C "$src" show "$pinned:.gitmodules" | git config -f - --get "submodule.deps/$1.url"; }
owner_name() { echo "$1" | sed -E 's#^https://github.com/##; s#\.git$##'; }

for d in "${LIBOS_DEPS[@]}"; do
  want=$(git -C "$src" ls-tree "$pinned" "deps/$d" | awk '{print $3}')
  url=$(gitmodule_url "$d")
  on=$(owner_name "$url")
  if m=$(mirror_of "${on%%/*}" "${on##*/}" "$want"); then
    rm -rf "${out:?}/$d"
    export_tree "$m" "$want" "$out/$d"
    note "$d ${want:0:8} pinned, from $m"
    continue
  fi
  case $d in
    rust-sgx-sdk)
      m=$(mirror_of apache incubator-teaclave-sgx-sdk 1b1d0337) || die "no mirror of $url at $want, nor of apache/incubator-teaclave-sgx-sdk at 1b1d0337 for its stand-in"
      base=$(git -C "$m" rev-parse 1b1d0337)
      rm -rf "${out:?}/$d"
      export_tree "$m" "$base" "$out/$d"
      apply_standin "$out/$d" "$here/standins/rust-sgx-sdk.patch"
      note "$d STAND-IN for ${want:0:8}: apache/incubator-teaclave-sgx-sdk ${base:0:8} + standins/rust-sgx-sdk.patch"
      ;;
    sefs)
      m=$(mirror_of occlum sefs a4b47b5a) || die "no mirror of $url at $want, nor at a4b47b5a for its stand-in"
      rm -rf "${out:?}/$d"
      export_tree "$m" a4b47b5a "$out/$d"
      note "$d STAND-IN for ${want:0:8}: occlum/sefs a4b47b5a (Occlum's previous pin)"
      ;;
    io-uring)
      crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/io-uring-0.5.9.crate 2>/dev/null | head -1 || true)
      if [ -z "$crate" ]; then # one download from crates.io (or a registry mirror), then cached
        tmp=$(mktemp -d)
        mkdir -p "$tmp/src" && : > "$tmp/src/lib.rs"
        printf '[package]\nname = "fetch-io-uring"\nversion = "0.0.0"\n[dependencies]\nio-uring = "=0.5.9"\n' > "$tmp/Cargo.toml"
        (cd "$tmp" && cargo fetch -q) || die "cannot fetch io-uring 0.5.9 from the crates registry"
        rm -rf "$tmp"
        crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/io-uring-0.5.9.crate | head -1)
      fi
      rm -rf "${out:?}/$d" && mkdir -p "$out/$d"
      tar -xzf "$crate" -C "$out/$d" --strip-components=1
      apply_standin "$out/$d" "$here/standins/io-uring.patch"
      note "$d STAND-IN for ${want:0:8}: crates.io io-uring 0.5.9 + standins/io-uring.patch"
      ;;
    *) die "no mirror under $mirrors holds $url at $want" ;;
  esac
done

# Git dependencies. The mirrors lack some large blobs, so git cannot serve them
# (upload-pack stops on a missing object), and cargo 1.66 fetches a git source
# unless its cache already holds the locked commit. So:
#  - every git source that src/libos/Cargo.lock locks is seeded into OUT/cargo-home
#    (check.sh's CARGO_HOME) as cargo leaves a finished fetch: git/db/IDENT, a bare
#    repository borrowing the mirror's objects (alternates), and
#    git/checkouts/IDENT/SHORT, the files at the locked commit with HEAD on it and
#    .cargo-ok (IDENT by cargo-git-ident.py);
#  - apache/teaclave-sgx-sdk.git, named with rev = "v1.1.0" (serde-json-sgx,
#    itoa-sgx) and without (resolv-conf), is never built from (src/libos [patch]es
#    sgx_tstd to deps/rust-sgx-sdk) but cargo resolves it: OUT/git/teaclave-sgx-sdk.git
#    holds one commit with v1.1.0's tree (less its submodules and the blobs the
#    mirror lacks), as HEAD and tag v1.1.0, for check.sh to
#    serve through git's url.insteadOf. (Its commit id differs from upstream's; no
#    lockfile names it.)
home="$out/cargo-home"
rm -rf "$home/git" "$out/git"
mkdir -p "$home/git/db" "$home/git/checkouts" "$out/git"
git -C "$src" show "$pinned:src/libos/Cargo.lock" | sed -n 's/^source = "git+\(https:[^?#]*\)[^#]*#\([0-9a-f]*\)"$/\1 \2/p' | sort -u \
  | while read -r url rev; do
    on=$(owner_name "$url")
    m=$(mirror_of "${on%%/*}" "${on##*/}" "$rev") || die "no mirror under $mirrors holds the git dependency $url at $rev"
    objects=$(git -C "$m" rev-parse --path-format=absolute --git-path objects)
    ident=$(python3 "$here/cargo-git-ident.py" "$url")
    git init -q --bare "$home/git/db/$ident"
    echo "$objects" > "$home/git/db/$ident/objects/info/alternates"
    short=$(git -C "$m" rev-parse --short=7 "$rev")
    co="$home/git/checkouts/$ident/$short"
    git init -q "$co"
    echo "$objects" > "$co/.git/objects/info/alternates"
    echo "$rev" > "$co/.git/HEAD"
    export_tree "$m" "$rev" "$co"
    touch "$co/.cargo-ok"
    note "git dependency $url $short: cargo cache seeded from $m"
  done
m=$(mirror_of apache incubator-teaclave-sgx-sdk v1.1.0) || die "no mirror of apache/incubator-teaclave-sgx-sdk with tag v1.1.0"
objects=$(git -C "$m" rev-parse --path-format=absolute --git-path objects)
syn="$out/git/teaclave-sgx-sdk.git"
git init -q --bare "$syn"
echo "$objects" > "$syn/objects/info/alternates"
# v1.1.0's tree without the blobs the mirror lacks (documents/*.pdf)
GIT_INDEX_FILE="$syn/index.tmp" git -C "$syn" read-tree "$(git -C "$m" rev-parse "v1.1.0^{tree}")"
git -C "$m" ls-tree -r v1.1.0 | awk '$2 == "blob" { print $3 "\t" $4 }' | while IFS=$'\t' read -r blob path; do
  git -C "$m" cat-file -e "$blob" 2>/dev/null || GIT_INDEX_FILE="$syn/index.tmp" git -C "$syn" rm -q --cached -- "$path"
done
# ... and without its submodules (cargo would fetch them from GitHub)
git -C "$m" ls-tree -r v1.1.0 | awk '$1 == "160000" { print $4 }' | while read -r path; do
  GIT_INDEX_FILE="$syn/index.tmp" git -C "$syn" rm -q --cached -- "$path"
done
GIT_INDEX_FILE="$syn/index.tmp" git -C "$syn" rm -q --cached --ignore-unmatch -- .gitmodules
tree=$(GIT_INDEX_FILE="$syn/index.tmp" git -C "$syn" write-tree)
rm -f "$syn/index.tmp"
commit=$(GIT_AUTHOR_NAME=exitless GIT_AUTHOR_EMAIL=exitless@example.invalid GIT_COMMITTER_NAME=exitless \
  GIT_COMMITTER_EMAIL=exitless@example.invalid GIT_AUTHOR_DATE="1970-01-01T00:00:00Z" GIT_COMMITTER_DATE="1970-01-01T00:00:00Z" \
  git -C "$syn" commit-tree "$tree" -m "teaclave-sgx-sdk v1.1.0's tree (resolution only; see deps.sh)")
git -C "$syn" update-ref refs/heads/master "$commit"
git -C "$syn" tag v1.1.0 "$commit"
git -C "$syn" repack -q -a -d # its own objects: upload-pack must not need the alternates
rm -f "$syn/objects/info/alternates"
echo "https://github.com/apache/teaclave-sgx-sdk.git $syn" > "$out/git-mirrors"
note "git dependency https://github.com/apache/teaclave-sgx-sdk.git (resolution only): one commit with v1.1.0's tree from $m"

# SGX_SDK: the headers of the SDK Occlum's image carries (linux-sgx sgx_2.20_for_occlum).
m=$(mirror_of occlum linux-sgx sgx_2.20_for_occlum) || die "no mirror of occlum/linux-sgx with sgx_2.20_for_occlum"
rm -rf "$out/sgx-sdk" && mkdir -p "$out/sgx-sdk/include/libcxx" "$out/sgx-sdk/lib64"
git -C "$m" archive sgx_2.20_for_occlum common/inc | tar -x -C "$out/sgx-sdk/include" --strip-components=2
git -C "$m" archive sgx_2.20_for_occlum sdk/tlibcxx/include | tar -x -C "$out/sgx-sdk/include/libcxx" --strip-components=3
note "SGX_SDK headers: occlum/linux-sgx $(git -C "$m" rev-parse --short sgx_2.20_for_occlum) (sgx_2.20_for_occlum) common/inc + sdk/tlibcxx/include; lib64 empty"
