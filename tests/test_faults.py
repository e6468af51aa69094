"""Fault injection from Python (docs/HARDENING.md, "Fault injection").

``open_spill(..., faults=SPEC)`` makes the stream's backend fail (ENOSPC, EIO),
interrupt (EINTR) or shorten (short) one read or write where it meets the kernel.
Every case must end in an error (the writer raises OSError with the errno, and no
reader accepts the file; or the reader raises) or in a transparent retry with the
stream complete and correct: never shorter or corrupted plaintext. The exhaustive
matrix (every position, every backend, fsync, parallel sealing) is in Rust:
native/spill/tests/faults.rs. Here: the same through the C ABI, and a writer
process killed with SIGKILL mid-stream.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

import exitless
from exitless import FormatError, IntegrityError, RejectedCompletionError

SEG = 4096
# Segment 0 holds 4012 plaintext bytes (the header takes 68), the others 4080: 6 segments.
DATA = bytes((i * 131) % 251 for i in range(4012 + 4 * 4080 + 777))
SEGMENTS = 6
KEY = exitless.Key(bytes(range(32)))


def _backends() -> list[str]:
    return [name for name, facts in exitless.backends().items() if facts["available"]]


BACKENDS = _backends()


def _write(path, backend: str, faults: str | None) -> dict:
    with exitless.open_spill(
        path, "wb", KEY, b"faults", segment_size=SEG, backend=backend, queue_depth=4, faults=faults
    ) as f:
        for i in range(0, len(DATA), 1000):
            f.write(DATA[i : i + 1000])
    return f.final_stats


def _read(path, backend: str = "sync", faults: str | None = None) -> bytes:
    with exitless.open_spill(path, "rb", KEY, b"faults", backend=backend, faults=faults) as f:
        out = f.read()
        return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault,code", [("enospc", errno.ENOSPC), ("eio", errno.EIO)])
def test_write_errors_at_every_segment_raise_and_the_file_never_reads(tmp_path, backend, fault, code):
    for k in range(SEGMENTS):
        path = tmp_path / f"{fault}-{k}"
        with pytest.raises(OSError) as info:
            _write(path, backend, f"{fault}@segment={k}")
        assert info.value.errno == code, f"segment {k}: {info.value}"
        assert f"segment {k}" in str(info.value)
        with pytest.raises((IntegrityError, FormatError, OSError)):
            _read(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eintr_and_short_writes_are_retried_transparently(tmp_path, backend):
    specs = [f"{f}@segment={k}" for k in range(SEGMENTS) for f in ("eintr", "short")] + [
        "short@write=*",
        "eintr@write=*",
    ]
    for spec in specs:
        path = tmp_path / spec
        stats = _write(path, backend, spec)
        assert stats["resubmits"] >= (SEGMENTS if "*" in spec else 1), (spec, stats)
        assert _read(path) == DATA, spec


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_faults_at_every_position(tmp_path, backend):
    path = tmp_path / "f"
    _write(path, backend, None)
    for k in range(SEGMENTS):
        with pytest.raises(OSError) as info:
            _read(path, backend, f"eio@read={k}")
        assert info.value.errno == errno.EIO
        assert _read(path, backend, f"eintr@read={k}") == DATA
        assert _read(path, backend, f"short@read={k}") == DATA
    assert _read(path, backend, "short@read=*,eintr@read=*") == DATA


def test_bad_fault_specs_are_refused(tmp_path):
    for spec in ("boom@segment=1", "eio@nowhere", "eio"):
        with pytest.raises(ValueError, match="fault"):
            _write(tmp_path / "x", "sync", spec)
    with pytest.raises(ValueError, match="fault injection"):
        exitless.open_spill("/dev/null", "wb", KEY, backend="null", faults="eio@segment=0")


@pytest.mark.skipif("uring" not in BACKENDS, reason="io_uring is not available here")
def test_a_forged_completion_raises_rejected_completion_error(tmp_path):
    # ``forge``: the completion of that write or read claims one byte more than was
    # asked for, as a hostile kernel would; io_uring's validator rejects it.
    path = tmp_path / "forged"
    with pytest.raises(RejectedCompletionError) as info:
        _write(path, "uring", "forge@segment=2")
    message = str(info.value)
    assert str(path) in message and "segment 2" in message, message
    assert "rejected a completion from the kernel" in message, message
    assert isinstance(info.value, exitless.ExitlessError)
    assert not isinstance(info.value, (OSError, IntegrityError)), type(info.value).__mro__
    with pytest.raises((IntegrityError, FormatError, OSError)):
        _read(path)  # the writer's file is incomplete
    _write(path, "uring", None)
    for k in range(3):
        with pytest.raises(RejectedCompletionError, match="rejected a completion"):
            _read(path, "uring", f"forge@read={k}")
    assert _read(path, "uring") == DATA  # the next stream gets a ring that works
    for backend in set(BACKENDS) - {"uring"}:
        with pytest.raises(ValueError, match="forge"):
            _write(tmp_path / backend, backend, "forge@write=0")


_CHILD = r"""
import sys, exitless
key = exitless.Key(bytes.fromhex(sys.argv[2]))
chunk = bytes((i * 7) % 253 for i in range(50_000))
with exitless.open_spill(sys.argv[1], "wb", key, b"killed", segment_size=16384, backend=sys.argv[3]) as f:
    n = 0
    while True:
        f.write(chunk)
        n += 1
        if n in (1, 10, 100):
            print(n, flush=True)
"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("after", [1, 10, 100])
def test_a_writer_killed_mid_stream_leaves_a_file_no_reader_accepts(tmp_path, backend, after):
    path = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), bytes(range(32)).hex(), backend],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, f"writer exited early with {child.wait()}"
            if int(line) >= after:
                break
        # Still writing: in the middle of a write call, or between two.
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    # The file may even be empty (io_uring: the kill can land before the SQPOLL
    # thread wrote anything); a reader must refuse it whatever its length.
    assert path.exists()
    key = exitless.Key(bytes(range(32)))
    with (
        pytest.raises((IntegrityError, FormatError, OSError)),
        exitless.open_spill(path, "rb", key, b"killed") as f,
    ):
        f.read()
