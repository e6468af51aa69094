"""The C header works for C callers: compile tests/c/smoke.c with -Wall -Werror
against native/ffi/include/exitless.h and the built native library, and run it."""

from __future__ import annotations

import re
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


def _header_struct_fields(header: str, name: str) -> list[tuple[str, str]]:
    """``(type, field)`` of each field of the ``typedef struct { ... } name;`` in ``header``."""
    match = re.search(r"typedef struct \{(?P<body>[^{}]*)\} " + name + ";", header)
    assert match, f"exitless.h declares no struct {name}"
    body = re.sub(r"/\*.*?\*/", "", match["body"], flags=re.S)
    return [tuple(m.groups()) for m in re.finditer(r"(\w+)\s+(\w+)(?:\[\w+\])?;", body)]


def test_stats_dicts_have_exactly_the_headers_fields(tmp_path: Path) -> None:
    # The counters are defined once (exitless-io's Counters, ExitlessCounters in
    # exitless.h, held by ExitlessStats::io); Python's keys come from the header.
    import exitless

    header = (ROOT / "native/ffi/include/exitless.h").read_text()
    declared: list[str] = []
    for ctype, field in _header_struct_fields(header, "ExitlessStats"):
        if ctype == "ExitlessCounters":
            declared += [name for _, name in _header_struct_fields(header, "ExitlessCounters")]
        else:
            declared.append(field)
    assert "exits" in declared and "file_ops" in declared and "stream_syscalls" in declared, declared
    assert len(declared) == len(set(declared)), declared
    key = exitless.generate_key()
    path = tmp_path / "s"
    with exitless.open_spill(path, "wb", key, backend="sync") as f:
        f.write(b"x" * 10_000)
        while_open = f.stats()
    with exitless.open_spill(path, "rb", key, backend="sync") as r:
        r.read()
        reading = r.stats()
    expected = [*(n for n in declared if n not in ("backend", "direct")), "total_exits", "backend", "direct"]
    for stats in (while_open, f.final_stats, reading, r.stats(), exitless.unlink(path, backend="sync")):
        assert list(stats) == expected, stats
    done = f.final_stats
    assert done["segments"] == 1 and done["bytes"] > 10_000 and done["backend"] == "sync", done
