"""The bench's small-file row (exitless_tools.bench.smallfiles): every backend writes,
reads back and unlinks exactly N files per round, each read back equal to what was
written; exits are counted by the stated rule. Counts only, no time asserted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import exitless
from exitless_tools.bench import smallfiles
from exitless_tools.bench.matrix import ExitModel
from exitless_tools.bench.smallfiles import FILE_SIZE, run_small_files

FILES, REPS = 25, 2
URING = exitless.streams.uring_unavailable_reason() is None


@pytest.fixture(scope="module")
def row(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_small_files(str(tmp_path_factory.mktemp("small")), files=FILES, reps=REPS)


def test_every_backend_writes_reads_back_and_unlinks_every_file(row: dict[str, Any]) -> None:
    assert row["files"] == FILES and row["file_size"] == FILE_SIZE == 5000 and row["reps"] == REPS
    backends = [r["backend"] for r in row["rows"]]
    assert backends == (["uring", "uring-sqpoll", "uring-nosqpoll"] if URING else []) + [
        "ocall",
        "sync",
        "plaintext",
    ]
    assert ("uring" in row["skipped"]) == (not URING)
    assert row["unlink"] == "exitless.unlink"
    for r in row["rows"]:
        n = FILES * REPS
        assert r["files_written"] == r["files_read"] == r["files_verified"] == n, r
        assert r["files_left"] == 0 and r["rounds"] == REPS and len(r["reps_us_per_file"]) == REPS
    assert row["leftover_files"] == 0


def test_exits_per_file_add_up_and_are_exact_where_they_do_not_depend_on_timing(row: dict[str, Any]) -> None:
    """A 5,000-byte file's life on the OCALL path: open, pwrite, close (3); open, one
    pread asking for a 64 KiB slot (3 exits above 16 KiB), close (5); unlink (1).
    Sync makes the same calls with no exit model: 3 + 3 + 1 system calls. On the
    ring no step is a system call; only io_uring_enter is (SQPOLL wake-ups, blocks)."""
    rows = {r["backend"]: r for r in row["rows"]}
    assert rows["plaintext"]["exits_per_file"] is None, "plaintext has no exit model"
    for r in rows.values():
        if r["exits_per_file"] is not None:
            parts = r["write_exits_per_file"] + r["read_exits_per_file"] + r["unlink_exits_per_file"]
            assert r["exits_per_file"] == pytest.approx(parts, abs=0.02)
    ocall = rows["ocall"]
    assert (ocall["write_exits_per_file"], ocall["read_exits_per_file"], ocall["unlink_exits_per_file"]) == (
        3,
        5,
        1,
    )
    assert (rows["sync"]["exits_per_file"], rows["sync"]["syscalls_per_file"]) == (0, 7)
    for name in ("uring", "uring-sqpoll", "uring-nosqpoll"):
        if name in rows:
            assert rows[name]["syscalls_per_file"] == rows[name]["exits_per_file"], (
                "every system call is an enter"
            )


@pytest.mark.parametrize("backend", ["uring", "ocall", "sync"])
def test_a_sealed_file_reads_back_what_was_written(tmp_path: Path, backend: str) -> None:
    if backend == "uring" and not URING:
        pytest.skip("needs io_uring")
    data = os.urandom(FILE_SIZE)
    path = str(tmp_path / "f")
    counts = dict.fromkeys(
        (
            "exits",
            "stream_syscalls",
            "total_exits",
            "syscalls",
            "uring_enters",
            "write_exits",
            "read_exits",
            "unlink_exits",
        ),
        0,
    )
    assert smallfiles._sealed_file(path, data, exitless.generate_key(), backend, counts) == data
    assert os.path.getsize(path) > FILE_SIZE, "sealed: header and tag on disk"
    assert counts["total_exits"] == counts["write_exits"] + counts["read_exits"]
    assert smallfiles._plain_file(str(tmp_path / "p"), data) == data


def test_a_file_that_reads_back_wrong_is_not_counted_as_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smallfiles, "_plain_file", lambda path, data: open(path, "wb").close() or data[:-1])
    out = smallfiles.run_batch(
        str(tmp_path),
        [os.urandom(FILE_SIZE) for _ in range(3)],
        "plaintext",
        exitless.generate_key(),
        ExitModel(8200, 3.0),
    )
    assert (out["files_written"], out["files_read"], out["files_verified"], out["files_left"]) == (3, 3, 0, 0)


def test_unlink_goes_through_the_rows_backend(tmp_path: Path) -> None:
    """ocall: one modeled exit; sync: one system call, no exit model; plaintext: plain
    os.unlink, nothing counted; io_uring: on the ring, its only calls enters."""
    path = tmp_path / "f"
    expected = {"ocall": (1, 1), "sync": (0, 1), "plaintext": (0, 0)}
    for backend in [*expected, *(["uring", "uring-sqpoll", "uring-nosqpoll"] if URING else [])]:
        path.write_bytes(b"x")
        got = smallfiles._unlink(str(path), backend)
        assert not path.exists(), backend
        if backend in expected:
            assert (got["total_exits"], got["syscalls"]) == expected[backend], (backend, got)
        else:
            assert got["syscalls"] == got["total_exits"], (backend, got)
