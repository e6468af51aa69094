"""The C header works for C callers: compile tests/c/smoke.c with -Wall -Werror
against native/ffi/include/exitless.h and the built native library, and run it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _native_library() -> Path:
    import exitless._native as native

    return Path(native.__file__).parent / "lib_native.so"


def test_c_program_round_trips_and_detects_tampering(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) on PATH: the C ABI cannot be checked")
    lib = _native_library()
    exe = tmp_path / "smoke"
    subprocess.run(
        [
            cc,
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-I",
            str(ROOT / "native/ffi/include"),
            str(ROOT / "tests/c/smoke.c"),
            str(lib),
            f"-Wl,-rpath,{lib.parent}",
            "-o",
            str(exe),
        ],
        check=True,
    )
    out = subprocess.run([str(exe), str(tmp_path / "f.sealed")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "tamper detected" in out.stdout and "segment 2" in out.stdout, out.stdout


def test_header_declares_every_exported_function() -> None:
    header = (ROOT / "native/ffi/include/exitless.h").read_text()
    syms = subprocess.run(
        ["nm", "-D", "--defined-only", str(_native_library())], capture_output=True, text=True, check=True
    ).stdout
    exported = {line.split()[-1] for line in syms.splitlines() if " T exitless_" in line}
    assert exported, "no exitless_ symbols exported"
    missing = {name for name in exported if f"{name}(" not in header}
    assert not missing, f"exported but not declared in exitless.h: {sorted(missing)}"
