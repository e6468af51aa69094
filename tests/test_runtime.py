"""Spill streams on the process-wide exitless-rt runtime (``parallel=True``):
identical bytes to the sequential path on every backend, many streams from many
Python threads, and the EXITLESS_VCPUS override."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import exitless

KEY = bytes(range(32))
FIXED = (bytes([1]) * 32, bytes([2]) * 7)


def _payload(n: int) -> bytes:
    return bytes((i * 37) % 251 for i in range(n))


@pytest.mark.parametrize("backend", ["uring", "ocall", "sync"])
@pytest.mark.parametrize("segment_size,size", [(4096, 300_000), (65536, 3 << 20)])
def test_parallel_and_sequential_write_identical_files(
    tmp_path: Path, backend: str, segment_size: int, size: int
) -> None:
    data = _payload(size)
    paths = {}
    for parallel in (False, True):
        p = tmp_path / f"p{int(parallel)}"
        with exitless.open_spill(
            p,
            "wb",
            KEY,
            b"ctx",
            segment_size=segment_size,
            backend=backend,
            parallel=parallel,
            _insecure_fixed_randomness=FIXED,
        ) as f:
            f.write(data[:1000])
            f.write(data[1000:])
        paths[parallel] = p
    assert paths[True].read_bytes() == paths[False].read_bytes()
    with exitless.open_spill(paths[True], "rb", KEY, b"ctx") as r:
        assert r.read() == data


def test_many_streams_from_many_threads_share_the_runtime(tmp_path: Path) -> None:
    data = _payload(200_000)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(40):
                p = tmp_path / f"t{t}-{i}"
                with exitless.open_spill(p, "wb", KEY, p.name, segment_size=4096, parallel=True) as f:
                    f.write(data)
                with exitless.open_spill(p, "rb", KEY, p.name) as r:
                    assert r.read() == data
                p.unlink()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_exitless_vcpus_1_means_sequential(tmp_path: Path) -> None:
    code = (
        "import exitless, sys; p = sys.argv[1]\n"
        "with exitless.open_spill(p, 'wb', bytes(32), parallel=True, segment_size=4096) as f: f.write(bytes(1 << 20))\n"
        "with exitless.open_spill(p, 'rb', bytes(32)) as r: assert r.read() == bytes(1 << 20)\n"
    )
    env = dict(os.environ, EXITLESS_VCPUS="1")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "f")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_parallel_is_the_default_and_a_forked_child_starts_its_own_runtime(tmp_path: Path) -> None:
    """PySpark's daemon forks its workers: a child inherits the runtime but not its
    vCPU threads, and must neither hang on them nor lose data."""
    data = _payload(3 << 20)
    parent = tmp_path / "parent"
    with exitless.open_spill(parent, "wb", KEY, segment_size=65536) as f:  # starts the runtime
        f.write(data)
    # The parallel default writes the same bytes as an explicit parallel=True stream.
    a, b = tmp_path / "a", tmp_path / "b"
    for path, options in ((a, {}), (b, {"parallel": True})):
        with exitless.open_spill(
            path, "wb", KEY, segment_size=65536, _insecure_fixed_randomness=FIXED, **options
        ) as f:
            f.write(data)
    assert a.read_bytes() == b.read_bytes()
    child = tmp_path / "child"
    pid = os.fork()
    if pid == 0:  # the child: write a multi-batch stream, read it back, report by exit code
        code = 1
        try:
            with exitless.open_spill(child, "wb", KEY, segment_size=65536) as f:
                f.write(data)
            with exitless.open_spill(child, "rb", KEY) as r:
                code = 0 if r.read() == data else 2
        finally:
            os._exit(code)
    deadline = 60.0
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung writing a parallel stream")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    with exitless.open_spill(child, "rb", KEY) as r:
        assert r.read() == data
