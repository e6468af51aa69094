"""The bench's small-file row (exitless.bench.smallfiles): every backend writes,
reads back and unlinks exactly N files per round, each read back equal to what was
written; exits are counted by the stated rule. Counts only, no time asserted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import exitless
from exitless.bench import smallfiles
from exitless.bench.matrix import ExitModel
from exitless.bench.smallfiles import FILE_SIZE, run_small_files

FILES, REPS = 25, 2
URING = exitless.streams.uring_unavailable_reason() is None


@pytest.fixture(scope="module")
def row(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_small_files(str(tmp_path_factory.mktemp("small")), files=FILES, reps=REPS)


def test_every_backend_writes_reads_back_and_unlinks_every_file(row: dict[str, Any]) -> None:
    assert row["files"] == FILES and row["file_size"] == FILE_SIZE == 5000 and row["reps"] == REPS
    backends = [r["backend"] for r in row["rows"]]
    assert backends == (["uring"] if URING else []) + ["ocall", "sync", "plaintext"]
    assert ("uring" in row["skipped"]) == (not URING)
    for r in row["rows"]:
        n = FILES * REPS
        assert r["files_written"] == r["files_read"] == r["files_verified"] == n, r
        assert r["files_left"] == 0 and r["rounds"] == REPS and len(r["reps_us_per_file"]) == REPS
    assert row["leftover_files"] == 0


def test_exits_per_file_add_up_and_follow_the_unlink_rule(row: dict[str, Any]) -> None:
    rows = {r["backend"]: r for r in row["rows"]}
    assert rows["plaintext"]["exits_per_file"] is None, "plaintext has no exit model"
    stand_in = row["unlink"] == "os.unlink"
    assert stand_in == (not hasattr(exitless, "unlink"))
    for name in ("ocall", "sync", "uring"):
        if name not in rows:
            continue
        r = rows[name]
        parts = r["write_exits_per_file"] + r["read_exits_per_file"] + r["unlink_exits_per_file"]
        assert r["exits_per_file"] == pytest.approx(parts, abs=0.02)
        if stand_in:
            assert r["unlink_exits_per_file"] == (0 if name == "uring" else 1)
    # ocall's exit counts do not depend on timing: the same in every round.
    assert rows["ocall"]["exits_per_file"] == int(rows["ocall"]["exits_per_file"])


@pytest.mark.parametrize("backend", ["uring", "ocall", "sync"])
def test_a_sealed_file_reads_back_what_was_written(tmp_path: Path, backend: str) -> None:
    if backend == "uring" and not URING:
        pytest.skip("needs io_uring")
    data = os.urandom(FILE_SIZE)
    path = str(tmp_path / "f")
    counts = dict.fromkeys(("exits", "stream_syscalls", "total_exits", "syscalls", "uring_enters", "write_exits",
                            "read_exits", "unlink_exits"), 0)
    assert smallfiles._sealed_file(path, data, exitless.generate_key(), backend, counts) == data
    assert os.path.getsize(path) > FILE_SIZE, "sealed: header and tag on disk"
    assert counts["total_exits"] == counts["write_exits"] + counts["read_exits"]
    assert smallfiles._plain_file(str(tmp_path / "p"), data) == data


def test_a_file_that_reads_back_wrong_is_not_counted_as_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smallfiles, "_plain_file", lambda path, data: open(path, "wb").close() or data[:-1])
    out = smallfiles.run_batch(str(tmp_path), [os.urandom(FILE_SIZE) for _ in range(3)], "plaintext",
                               exitless.generate_key(), ExitModel(8200, 3.0))
    assert (out["files_written"], out["files_read"], out["files_verified"], out["files_left"]) == (3, 3, 0, 0)


def test_unlink_uses_exitless_unlink_when_there_is_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    if not hasattr(exitless, "unlink"):
        for backend, exits in (("ocall", 1), ("sync", 1), ("uring", 0), ("plaintext", 0)):
            path.write_bytes(b"x")
            assert smallfiles._unlink(str(path), backend) == {"total_exits": exits, "exits": 0} and not path.exists()
    calls = []

    def fake_unlink(p: str, backend: str) -> dict[str, int]:
        calls.append((p, backend))
        os.unlink(p)
        return {"exits": 0 if backend == "uring" else 1, "total_exits": 0 if backend == "uring" else 1, "ops": 1}

    monkeypatch.setattr(exitless, "unlink", fake_unlink, raising=False)
    path.write_bytes(b"x")
    assert smallfiles._unlink(str(path), "ocall") == {"total_exits": 1, "exits": 1} and not path.exists()
    path.write_bytes(b"x")
    assert smallfiles._unlink(str(path), "uring") == {"total_exits": 0, "exits": 0} and not path.exists()
    path.write_bytes(b"x")
    assert smallfiles._unlink(str(path), "plaintext") == {"total_exits": 0, "exits": 0} and not path.exists()
    assert calls == [(str(path), "ocall"), (str(path), "uring")], "plaintext stays plain Python"


def test_an_unlink_exit_the_backend_spun_for_is_not_charged_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the os.unlink stand-in nothing spins for the unlink's exit, so the model
    charges it; through exitless.unlink the OCALL path spins for it itself (it is
    among the backend's ``exits``), so it is not charged again."""
    model, key = ExitModel(8200, 8.2), exitless.generate_key()  # 1 µs per exit
    payloads = [os.urandom(FILE_SIZE) for _ in range(4)]

    def unspun(out: dict[str, Any]) -> int:
        c = out["counts"]
        assert out["modeled_exit_cpu_s"] == pytest.approx((c["total_exits"] - c["exits"]) * 1e-6)
        assert c["unlink_exits"] == len(payloads) and out["exits"] == c["total_exits"]
        return c["total_exits"] - c["exits"]

    monkeypatch.delattr(exitless, "unlink", raising=False)
    stand_in = unspun(smallfiles.run_batch(str(tmp_path), payloads, "ocall", key, model))

    def spun_unlink(p: str, backend: str) -> dict[str, int]:
        os.unlink(p)
        return {"exits": 1, "total_exits": 1}

    monkeypatch.setattr(exitless, "unlink", spun_unlink, raising=False)
    through_backend = unspun(smallfiles.run_batch(str(tmp_path), payloads, "ocall", key, model))
    assert stand_in - through_backend == len(payloads)
