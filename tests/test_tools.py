"""The benchmark tools are out of the product: ``exitless_tools`` (a checkout's
package, not in the wheel) runs them, the ``exitless`` package never imports it, and
the bench library (``libexitless_bench.so``, ``native/bench``) is found, or named
with the make target that builds it, and reports its own errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import exitless
from exitless._native import ffi, lib
from exitless.streams import _stats_dict, make_options
from exitless_tools.bench import benchlib

PRODUCT = Path(exitless.__file__).parent


def tools(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exitless_tools", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def fresh_load() -> Iterator[None]:
    """benchlib.load() forgets the library it loaded, before and after the test."""
    benchlib.load.cache_clear()
    yield
    benchlib.load.cache_clear()


def test_the_product_never_names_the_tools() -> None:
    for path in PRODUCT.rglob("*.py"):
        if "_native" in path.parts:
            continue
        text = path.read_text()
        assert "exitless_tools" not in text or "python -m exitless_tools" in text, path
        assert "import exitless_tools" not in text and "from exitless_tools" not in text, path
    assert not hasattr(lib, "exitless_bench_write") and not hasattr(lib, "exitless_bench_read")


def test_the_tools_list_their_commands() -> None:
    proc = tools("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "bench", "suites", "stress", "spark-bench", "dataset-bench", "blocks-bench"):
        assert command in proc.stdout
    proc = tools("stress", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m exitless_tools stress")


def test_a_missing_bench_library_is_named_with_its_make_target(tmp_path: Path, fresh_load: None) -> None:
    missing = tmp_path / "libexitless_bench.so"
    os.environ["EXITLESS_BENCH_LIB"] = str(missing)
    try:
        with pytest.raises(FileNotFoundError, match="make bench-lib") as e:
            benchlib.load()
        assert str(missing) in str(e.value)
    finally:
        del os.environ["EXITLESS_BENCH_LIB"]
    # The command says so at once, in one line, before any other work.
    proc = tools("bench", "--out", str(tmp_path / "out"), env={"EXITLESS_BENCH_LIB": str(missing)})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "make bench-lib" in proc.stderr and str(missing) in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_bench_library_is_found_in_the_build(fresh_load: None) -> None:
    assert "EXITLESS_BENCH_LIB" not in os.environ
    assert benchlib.library_path().is_file(), "make setup builds it (make bench-lib)"
    assert benchlib.load().path == benchlib.library_path()


def test_bench_errors_come_from_the_bench_librarys_last_error(tmp_path: Path) -> None:
    bench = benchlib.load()
    opts = make_options(65536, backend="sync")
    # An error of the product first: its last error must not be what the bench reports.
    not_sealed = tmp_path / "plain.txt"
    not_sealed.write_bytes(b"not a sealed stream" * 10)
    with pytest.raises(exitless.FormatError):
        exitless.inspect(not_sealed)
    product_message = ffi.string(lib.exitless_last_error_message()).decode()
    missing = tmp_path / "no" / "such" / "dir" / "stream"
    raw = ffi.new("ExitlessStats *")
    with pytest.raises(FileNotFoundError) as e:
        bench.write(str(missing), opts, 1 << 20, 1 << 16, True, raw)
    assert "cannot create" in str(e.value) and str(missing) in str(e.value)
    assert str(e.value) != product_message
    assert ffi.string(lib.exitless_last_error_message()).decode() == product_message
    # A stream written and read back through the library, with its counters.
    path = tmp_path / "stream"
    bench.write(str(path), opts, 3 << 20, 1 << 20, True, raw)
    written = _stats_dict(raw)
    bench.read(str(path), opts, 1 << 20, raw)
    read = _stats_dict(raw)
    assert written["plaintext_bytes"] == read["plaintext_bytes"] == 3 << 20
    assert written["backend"] == read["backend"] == "sync"
    bench.write(str(path), opts, 3 << 20, 1 << 20, False, raw)
    assert path.stat().st_size == 3 << 20 and _stats_dict(raw)["segments"] == 48
    with pytest.raises(exitless.FormatError):
        bench.read(str(path), opts, 1 << 20, raw)  # plaintext is no sealed stream
    bench.release_backends()
