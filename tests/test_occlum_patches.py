"""occlum_patches/: the series is well-formed, the scripts fail clearly on a bad tree,
the executor template is sound, and (with OCCLUM_SRC set) the series applies."""

import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent / "occlum_patches"
PATCHES = sorted(HERE.glob("[0-9][0-9][0-9][0-9]-*.patch"))


def test_pinned_commit_and_numbered_patches():
    pinned = (HERE / "PINNED").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{40}", pinned)
    assert pinned in (HERE / "README.md").read_text()
    assert [p.name[:4] for p in PATCHES] == [f"{i:04d}" for i in range(1, len(PATCHES) + 1)]
    for i, p in enumerate(PATCHES, 1):
        text = p.read_text()
        assert re.search(rf"^Subject: \[PATCH {i}/{len(PATCHES)}\] ", text, re.M), p.name
        assert "\ndiff --git a/" in text, p.name


def test_patches_touch_only_occlum_paths_we_mean():
    touched = set()
    for p in PATCHES:
        touched |= set(re.findall(r"^diff --git a/(\S+) ", p.read_text(), re.M))
    assert all(t.startswith(("src/libos/", "tools/gen_internal_conf/")) for t in touched), touched
    assert "src/libos/src/fs/sealedfs.rs" in touched
    assert "src/libos/crates/exitless-occlum/Cargo.toml" in touched


def _lock_versions(text: str, prefix: str = "") -> dict[str, str]:
    pat = rf'^{re.escape(prefix)}name = "([^"]+)"\n{re.escape(prefix)}version = "([^"]+)"'
    return dict(re.findall(pat, text, re.M))


def test_patch_0005_updates_the_libos_lockfile_to_versions_cargo_1_66_builds():
    """Without a Cargo.lock entry cargo 1.66 resolves exitless-occlum's dependencies to
    the newest releases (zeroize 1.9 needs the 2024 edition) and stops."""
    patch = next(p for p in PATCHES if p.name.startswith("0005-")).read_text()
    hunk = re.search(r"^diff --git a/src/libos/Cargo.lock .*?(?=^diff --git |\Z)", patch, re.M | re.S)
    assert hunk, "patch 0005 must update src/libos/Cargo.lock"
    added = _lock_versions(hunk.group(0), "+")
    assert {"exitless-occlum", "exitless-seal", "exitless-io", "exitless-rt", "exitless-sealedfs"} <= set(
        added
    )
    assert added["zeroize"] == "1.8.2" and added["zeroize_derive"] == "1.4.3"
    # Every package added is at the version check.sh builds the crates workspace with
    # (occlum-crates.lock, resolved for Rust 1.66); libc is the one existing entry moved.
    crates_lock = _lock_versions((HERE / "occlum-crates.lock").read_text())
    assert {n: v for n, v in added.items() if crates_lock.get(n) != v} == {}
    moved = re.findall(
        r'^ name = "([^"]+)"\n-version = "([^"]+)"\n\+version = "([^"]+)"', hunk.group(0), re.M
    )
    assert moved == [("libc", "0.2.153", "0.2.155")]
    removed = [
        line for line in hunk.group(0).splitlines() if line.startswith("-") and not line.startswith("---")
    ]
    assert [line.split(" = ")[0] for line in removed] == ["-version", "-checksum"], removed


@pytest.mark.parametrize("script", ["apply.sh", "check.sh"])
def test_scripts_fail_clearly_on_a_bad_tree(script, tmp_path):
    r = subprocess.run(["bash", str(HERE / script), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert ("does not look like an Occlum source tree" in out) or ("not a git checkout" in out), out
    r = subprocess.run(["bash", str(HERE / script)], capture_output=True, text=True)
    assert r.returncode != 0 and "usage" in (r.stdout + r.stderr)


def test_executor_template_puts_spark_local_dir_on_sealedfs():
    conf = json.loads((HERE / "template" / "Occlum.json").read_text())
    sealed = [m for m in conf["mount"] if m["type"] == "sealedfs"]
    assert len(sealed) == 1 and sealed[0]["target"] == "/spill"
    assert sealed[0]["source"].startswith("/")
    assert sealed[0]["options"].get("key", "sealing") in ("sealing", "kms")
    assert "SPARK_LOCAL_DIRS=/spill" in conf["env"]["default"]
    assert conf["resource_limits"]["max_num_of_threads"] >= 256
    assert "-Dspark.local.dir=/spill" in (HERE / "template" / "run_executor.sh").read_text()


_DEP_PATCH = """\
diff --git a/Cargo.toml b/Cargo.toml
--- a/Cargo.toml
+++ b/Cargo.toml
@@ -1,3 +1,3 @@
 [dependencies]
-serde = { git = "https://github.com/mesalock-linux/serde-sgx.git" }
+serde = { path = "../serde-sgx/serde" }
 ryu = "1.0"
"""


def _tree_with_a_dependency_copy(tmp_path: Path) -> Path:
    """A copy of Occlum's tree as check.sh makes it: a git repository whose
    deps/serde-json-sgx is a plain copy of the dependency, and the dependency patch
    in deps/."""
    tree = tmp_path / "tree"
    dep = tree / "deps" / "serde-json-sgx"
    dep.mkdir(parents=True)
    (dep / "Cargo.toml").write_text(
        '[dependencies]\nserde = { git = "https://github.com/mesalock-linux/serde-sgx.git" }\nryu = "1.0"\n'
    )
    (tree / "deps" / "serde-json-sgx.patch").write_text(_DEP_PATCH)
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    return tree


def test_a_dependency_patch_is_applied_inside_a_copied_repository(tmp_path: Path) -> None:
    tree = _tree_with_a_dependency_copy(tmp_path)
    dep, patch = tree / "deps" / "serde-json-sgx", tree / "deps" / "serde-json-sgx.patch"
    # What check.sh did before: git apply inside deps/serde-json-sgx. git takes the
    # copy as the work tree, skips the patch's paths (silently; "Skipped patch" with
    # -v) and still exits 0.
    old = subprocess.run(["git", "apply", str(patch)], cwd=dep, capture_output=True, text=True)
    assert old.returncode == 0, old
    assert "mesalock-linux/serde-sgx" in (dep / "Cargo.toml").read_text(), "nothing was applied"
    r = subprocess.run(
        ["bash", str(HERE / "apply-dep-patch.sh"), str(tree), "serde-json-sgx", str(patch)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert 'serde = { path = "../serde-sgx/serde" }' in (dep / "Cargo.toml").read_text()
    # Applied twice, it fails loudly rather than passing over what is already there.
    r = subprocess.run(
        ["bash", str(HERE / "apply-dep-patch.sh"), str(tree), "serde-json-sgx", str(patch)],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0


def test_a_dependency_patch_that_does_not_fit_fails(tmp_path: Path) -> None:
    tree = _tree_with_a_dependency_copy(tmp_path)
    dep = tree / "deps" / "serde-json-sgx"
    (dep / "Cargo.toml").write_text('[dependencies]\nserde = "1"\n')
    r = subprocess.run(
        [
            "bash",
            str(HERE / "apply-dep-patch.sh"),
            str(tree),
            "serde-json-sgx",
            str(tree / "deps" / "serde-json-sgx.patch"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "patch does not apply" in r.stderr, r.stderr


def _cargo_git_ident(url: str) -> str:
    r = subprocess.run(
        [sys.executable, str(HERE / "cargo-git-ident.py"), url], capture_output=True, text=True, check=True
    )
    return r.stdout.strip()


def test_siphash24_matches_the_reference_vector():
    # SipHash paper, appendix A: key 00..0f, message 00..0e.
    spec = importlib.util.spec_from_file_location("cargo_git_ident", HERE / "cargo-git-ident.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    k0, k1 = struct.unpack("<QQ", bytes(range(16)))
    assert mod.siphash24(bytes(range(15)), k0, k1) == 0xA129CA6149BE45E5
    assert mod.siphash24(b"", k0, k1) == 0x726FDB47DD0E0E31


def test_cargo_git_ident_names_the_cache_directory_cargo_1_66_uses():
    # cargo 1.66 (nightly-2022-10-22) itself named this one: "failed to clone into:
    # ~/.cargo/git/db/regex-sgx-dc3d971bffeb8599".
    assert _cargo_git_ident("https://github.com/mesalock-linux/regex-sgx") == "regex-sgx-dc3d971bffeb8599"
    # Canonical URL: no ".git", no trailing slash, GitHub paths lowercased.
    quick = _cargo_git_ident("https://github.com/mesalock-linux/quick-error-sgx")
    assert quick.startswith("quick-error-sgx-") and len(quick) == len("quick-error-sgx-") + 16
    assert _cargo_git_ident("https://github.com/mesalock-linux/quick-error-sgx.git") == quick
    assert _cargo_git_ident("https://github.com/Mesalock-Linux/quick-error-sgx/") == quick
    assert _cargo_git_ident("https://github.com/asterinas/pod") != _cargo_git_ident(
        "https://github.com/asterinas/pod2"
    )


def test_deps_sh_fails_clearly(tmp_path: Path) -> None:
    r = subprocess.run(["bash", str(HERE / "deps.sh")], capture_output=True, text=True)
    assert r.returncode == 2 and "usage: deps.sh OCCLUM_SRC MIRRORS OUT" in r.stderr
    repo = tmp_path / "not-occlum"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    r = subprocess.run(
        ["bash", str(HERE / "deps.sh"), str(repo), str(tmp_path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "does not hold the pinned commit" in r.stderr, r.stderr


def test_standins_are_our_own_small_diffs():
    """Each stand-in is a diff against a named public base, touching only what the
    LibOS needs from the pinned fork it replaces (deps.sh and docs/OCCLUM.md say which)."""
    expect = {
        "rust-sgx-sdk.patch": {
            "sgx_cov/Cargo.toml",
            "sgx_tprotected_fs/src/fs.rs",
            "sgx_trts/src/enclave.rs",
            "sgx_tstd/src/sgxfs.rs",
            "sgx_tstd/src/sys/sgxfs.rs",
            "sgx_types/src/function.rs",
            "sgx_types/src/types.rs",
        },
        "io-uring.patch": {"Cargo.toml", "src/lib.rs", "src/sys/mod.rs", "src/util.rs"},
    }
    deps_sh = (HERE / "deps.sh").read_text()
    for name, files in expect.items():
        text = (HERE / "standins" / name).read_text()
        assert set(re.findall(r"^\+\+\+ b/(\S+)", text, re.M)) == files, name
        assert f"standins/{name}" in deps_sh
        added = sum(1 for line in text.splitlines() if line.startswith("+") and not line.startswith("+++"))
        assert 0 < added < 250, (name, added)
    io_uring = (HERE / "standins" / "io-uring.patch").read_text()
    # The fork's OCALLs, by the names in Occlum's sgx_io_uring_ocalls.edl, and its enter().
    for ocall in (
        "ocall_io_uring_setup_syscall",
        "ocall_io_uring_enter_syscall",
        "ocall_io_uring_register_syscall",
    ):
        assert ocall in io_uring
    assert "pub fn enter(" in io_uring


@pytest.mark.skipif(not os.environ.get("OCCLUM_SRC"), reason="set OCCLUM_SRC to a clone of occlum/occlum")
def test_series_applies_to_the_pinned_commit(tmp_path):
    src = os.environ["OCCLUM_SRC"]
    pinned = (HERE / "PINNED").read_text().strip()
    tree = tmp_path / "occlum"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", src, str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--detach", pinned], check=True)
    r = subprocess.run(["bash", str(HERE / "apply.sh"), str(tree)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("applied ") == len(PATCHES)
    assert (tree / "src/libos/crates/exitless-sealedfs/src/file.rs").is_file()
    # Occlum's `make format-check` runs cargo fmt over src/libos/crates: our crates
    # bring our rustfmt.toml along.
    ours = (HERE.parent / "rustfmt.toml").read_text()
    for c in ("seal", "io", "rt", "sealedfs"):
        assert (tree / f"src/libos/crates/exitless-{c}/rustfmt.toml").read_text() == ours


@pytest.mark.skipif(not os.environ.get("OCCLUM_SRC"), reason="set OCCLUM_SRC to a clone of occlum/occlum")
def test_check_without_occlums_dependencies_is_incomplete_not_a_pass(tmp_path):
    """Without the dependencies the LibOS cannot be compiled: check.sh says so and
    exits 3, so nobody reads a PASS that compiled nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("OCCLUM_MIRRORS", "OCCLUM_DEPS")}
    env["OCCLUM_DEPS"] = str(tmp_path)  # an empty directory of checkouts
    env["CHECK_TARGET_DIR"] = str(tmp_path / "target")
    r = subprocess.run(
        ["bash", str(HERE / "check.sh"), os.environ["OCCLUM_SRC"]], capture_output=True, text=True, env=env
    )
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "SKIP src/libos/crates and src/libos" in r.stdout
    assert r.stdout.rstrip().endswith("RESULT: INCOMPLETE (the LibOS was not compiled: see the SKIP line)")
    assert "RESULT: PASS" not in r.stdout
