"""The four IO backends (uring, ocall, switchless, sync) seen from Python.

- They write byte-identical files (same key, context and fixed randomness), with
  and without O_DIRECT, and every backend reads every other backend's file.
- Exit counters are exact where the model makes them exact (ocall: 1 exit per
  pread/pwrite of up to 16 KiB, 3 above; switchless: one exit per fallback; sync:
  none) and tiny where the design promises it (uring steady state).
- Backend selection: ``backends()``, ``auto``, unknown names, and a simulated
  io_uring outage (BackendUnavailableError, or a one-time warning and ``sync``).
- Real failing file systems: ENOSPC on a 1 MiB tmpfs, EIO from an ext4 image on a
  loop device that is shut down (EXT4_IOC_SHUTDOWN) while streams are open. The
  partial files never read back as a shorter valid stream.
- queue_depth limits, segment counts, and bounded memory for a 256 MiB stream.

Layout facts used (docs/FORMAT.md): header H = 68, tag T = 16, segment size S is the
ciphertext slot, plaintext capacity P0 = S - 84 for segment 0 and P = S - 16 after.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import pytest

import exitless
from exitless import BackendUnavailableError, IntegrityError, open_spill, streams
from io_model import write_sizes

H = 68
T = 16
BACKENDS = ("uring", "ocall", "switchless", "sync")
KEY = bytes(range(32))
CTX = b"app-7/shuffle-3/partition-12"
FIXED = (bytes(range(0x40, 0x60)), bytes(range(0xA0, 0xA7)))  # salt (32), nonce prefix (7)
MiB = 1 << 20


# ----------------------------------------------------------------------------- helpers


def caps(s: int) -> tuple[int, int]:
    """Plaintext capacity of segment 0 and of later segments."""
    return s - H - T, s - T


def full_segments(n: int, s: int) -> int:
    """Plaintext length that fills exactly ``n`` segments (the last one is full too)."""
    p0, p = caps(s)
    return p0 + (n - 1) * p


def segment_count(m: int, s: int) -> int:
    p0, p = caps(s)
    return 1 if m <= p0 else 1 + -(-(m - p0) // p)


def ios(n: int, s: int) -> tuple[int, int]:
    """Writes and reads a stream of ``n`` full ``s``-byte segments makes, written and
    read sequentially: one write per segment below EXITLESS_COALESCE_AFTER, then one
    per EXITLESS_IO_SIZE. A reader first reads the file's head, ``head_read`` bytes
    (segment 0 with it: a small file whole); then a short file is read segment by
    segment (its final segment twice: checked at open, read again at the end; the
    head serves segment 0), a long one in IO-sized windows after the head (the
    final window, read at open, is kept unless the final segment starts it)."""
    from exitless._native import lib

    io, after = lib.EXITLESS_IO_SIZE, lib.EXITLESS_COALESCE_AFTER
    writes = len(write_sizes([s] * n, s))
    if s >= io or n * s < after:
        return writes, (n + 1 if n > 1 else 1)
    per_io = io // s
    windows = -(-n // per_io)
    final_starts_window = (n - 1) % per_io == 0
    return writes, 1 + windows + (1 if final_starts_window and windows > 1 else 0)


def head_read(file_len: int) -> int:
    """Bytes a reader's first IO reads: up to the usual (default) segment size."""
    return min(file_len, exitless.streams.DEFAULT_SEGMENT_SIZE)


def data(n: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + n).randbytes(n)


def write(path, pt, backend, segment_size=4096, chunk=10_000, **kw) -> dict:
    """Writes ``pt`` as one sealed stream in ``chunk``-byte writes; returns final stats."""
    with open_spill(
        path,
        "wb",
        KEY,
        CTX,
        backend=backend,
        segment_size=segment_size,
        _insecure_fixed_randomness=FIXED,
        **kw,
    ) as w:
        view = memoryview(pt)
        for i in range(0, len(pt), chunk):
            w.write(view[i : i + chunk])
    return w.final_stats


def read(path, backend, **kw) -> tuple[bytes, dict]:
    with open_spill(path, "rb", KEY, CTX, backend=backend, **kw) as r:
        out = r.read()
        return out, r.stats()


def write_stream(path, total, *, chunk_buf, **kw) -> dict:
    """Writes ``total`` bytes drawn from ``chunk_buf`` (reused; never the whole stream in memory)."""
    with open_spill(path, "wb", KEY, CTX, **kw) as w:
        view = memoryview(chunk_buf)
        left = total
        while left:
            n = min(left, len(view))
            w.write(view[:n])
            left -= n
    return w.final_stats


def fs_type(path: Path) -> str:
    """File system type of the mount that holds ``path`` (longest mount-point prefix)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


def supports_o_direct(directory: Path) -> bool:
    probe = directory / ".o_direct_probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


@pytest.fixture
def disk_dir(tmp_path):
    """A directory on a disk-backed file system with O_DIRECT: tmp_path if it is one,
    else a temporary directory next to this file (/work/main is ext4)."""
    if fs_type(tmp_path) not in ("tmpfs", "ramfs") and supports_o_direct(tmp_path):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix=".tmp-test-backends-", dir=Path(__file__).parent))
    try:
        if fs_type(d) in ("tmpfs", "ramfs") or not supports_o_direct(d):
            pytest.skip(f"no disk-backed directory with O_DIRECT: {tmp_path} and {d} are not")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as e:
        return subprocess.CompletedProcess(cmd, 127, "", str(e))


@contextlib.contextmanager
def mounted(args: list[str], target: Path):
    """``mount ARGS TARGET`` for the duration; skips (with mount's own words) if we may
    not mount here; always unmounts."""
    target.mkdir(parents=True, exist_ok=True)
    r = _run(["mount", *args, str(target)])
    if r.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(['mount', *args])}): {(r.stderr or r.stdout).strip()}")
    try:
        yield target
    finally:
        # io_uring drops a replaced fixed-file reference asynchronously (its SQPOLL
        # thread puts the old resource node), so the last reference to a file on the
        # mount can outlive the stream by a few milliseconds: retry for up to 2 s.
        for _ in range(20):
            u = _run(["umount", str(target)])
            if u.returncode == 0:
                break
            time.sleep(0.1)
        if u.returncode != 0:
            _run(["umount", "-l", str(target)])
            raise AssertionError(f"umount {target} failed (a file on it still open?): {u.stderr.strip()}")


# EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32); EXT4_GOING_FLAGS_LOGFLUSH = 1 (commit the
# journal, so the files created before the shutdown still exist after a remount).
EXT4_IOC_SHUTDOWN = 0x8004587D
EXT4_GOING_FLAGS_LOGFLUSH = 1


def shut_down(mountpoint: Path) -> None:
    """After this every read and write on the file system fails with EIO."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_LOGFLUSH))
    finally:
        os.close(fd)


def assert_names_path(err: OSError, path) -> None:
    assert os.fspath(path) in str(err), str(err)
    assert err.filename == os.fspath(path)


# ----------------------------------------------------------------------------- 1. identical bytes


def _sizes(s: int) -> list[int]:
    p0, p = caps(s)
    if s == 4096:
        # empty, 1 byte, around the end of segment 0, exact multiples, many segments
        return [0, 1, p0 - 1, p0, p0 + 1, full_segments(2, s), full_segments(5, s), p0 + 40 * p + 123]
    return [0, 1, p0, p0 + 1, full_segments(3, s), full_segments(16, s), p0 + 20 * p + 4321]


# (backend, direct) writer variants; uring three ways: backend's choice, required, forbidden.
WRITERS = [
    ("sync", None),
    ("ocall", None),
    ("switchless", None),
    ("uring", None),
    ("uring", True),
    ("uring", False),
]
READERS = [("sync", None), ("ocall", None), ("switchless", None), ("uring", None), ("uring", True)]


@pytest.mark.parametrize("segment_size", [4096, 65536])
def test_every_backend_writes_identical_bytes_and_reads_every_other(disk_dir, segment_size):
    for n in _sizes(segment_size):
        pt = data(n, seed=segment_size)
        files: dict[tuple[str, object], bytes] = {}
        for backend, direct in WRITERS:
            path = disk_dir / f"{backend}-{direct}-{segment_size}-{n}"
            stats = write(path, pt, backend, segment_size, chunk=7777, direct=direct)
            assert stats["backend"] == backend
            assert stats["segments"] == segment_count(n, segment_size)
            assert stats["plaintext_bytes"] == n
            if direct is not None:
                assert stats["direct"] is direct, (backend, direct, stats)
            if backend != "uring":
                assert stats["direct"] is False
            files[(backend, direct)] = path.read_bytes()
            assert len(files[(backend, direct)]) == exitless.sealed_length(n, segment_size)
            # cross: each file through each reader backend (uring also with O_DIRECT)
            for rbackend, rdirect in READERS:
                got, rstats = read(path, rbackend, direct=rdirect)
                assert got == pt, (
                    f"written by {backend} (direct={direct}), read by {rbackend} (direct={rdirect})"
                )
                assert rstats["backend"] == rbackend
                if rdirect:
                    assert rstats["direct"] is True
        reference = files[("sync", None)]
        assert reference[:4] == b"EXLS" and reference[28:60] == FIXED[0] and reference[60:67] == FIXED[1]
        for variant, content in files.items():
            assert content == reference, f"{variant} differs from sync: S={segment_size}, n={n}"


def test_uring_default_is_the_page_cache_and_o_direct_writes_the_same_bytes(disk_dir):
    """direct=None on a disk file system: the io_uring writer stays in the page cache,
    short or long (measured faster than O_DIRECT here: docs/BENCHMARKS.md);
    direct=True writes O_DIRECT (the stats say so); the bytes do not depend on it."""
    small = data(full_segments(7, 4096) + 99)
    large = data(9 << 20, seed=5)
    for name, pt, expect_direct in (("small", small, False), ("large", large, False)):
        auto = write(disk_dir / f"auto-{name}", pt, "uring", 65536, direct=None)
        plain = write(disk_dir / f"plain-{name}", pt, "uring", 65536, direct=False)
        forced = write(disk_dir / f"forced-{name}", pt, "uring", 65536, direct=True)
        assert auto["direct"] is expect_direct and plain["direct"] is False and forced["direct"] is True
        content = (disk_dir / f"plain-{name}").read_bytes()
        assert (disk_dir / f"auto-{name}").read_bytes() == content
        assert (disk_dir / f"forced-{name}").read_bytes() == content
        assert read(disk_dir / f"auto-{name}", "uring")[0] == pt


def test_direct_needs_a_page_multiple_segment_size(disk_dir):
    with pytest.raises(ValueError, match="4096"):
        open_spill(disk_dir / "x", "wb", KEY, CTX, backend="uring", direct=True, segment_size=256)


def test_random_access_is_the_same_on_every_backend(tmp_path):
    pt = data(4096 * 40)
    write(tmp_path / "f", pt, "sync", 4096)
    for backend in BACKENDS:
        with open_spill(tmp_path / "f", "rb", KEY, CTX, backend=backend) as r:
            for pos in (100_000, 3, 150_000, 4096 * 39, 60_000, len(pt) - 1, len(pt)):
                assert r.seek(pos) == pos
                assert r.read(5000) == pt[pos : pos + 5000], (backend, pos)


# ----------------------------------------------------------------------------- 2. exit counts


COUNTERS = (
    "exits",
    "syscalls",
    "uring_enters",
    "sqpoll_wakeups",
    "bytes",
    "ops",
    "fallbacks",
    "resubmits",
    "completions_rejected",
    "file_ops",
    "stream_syscalls",
    "segments",
    "plaintext_bytes",
)


def _counts(stats: dict) -> dict:
    return {k: stats[k] for k in COUNTERS}


@pytest.fixture
def default_ocall_model(monkeypatch):
    """The 3-exits-above-16-KiB rule on, whatever the environment says."""
    monkeypatch.delenv("EXITLESS_OCALL_TRIPLE", raising=False)


@pytest.mark.parametrize("segment_size, per_segment", [(4096, 1), (65536, 3)])
@pytest.mark.parametrize("n", [1, 2, 25])
def test_ocall_exits_are_exact_and_deterministic(tmp_path, default_ocall_model, segment_size, per_segment, n):
    """Writing: one pwrite per segment (past the first MiB, per 1 MiB of segments: see
    ``ios``), 1 modeled exit up to 16 KiB, 3 above. Reading: one pread per segment,
    and the final segment is read twice (checked at open, read again when the
    sequential read reaches it), unless it is also the first; a long stream reads
    windows. The file's open, stat and close go through the backend too, an exit
    each (``file_ops``); the reader's first read is the file's head (``head_read``).
    ocall_cycles only changes how long an exit takes, never how many there are."""
    pt = data(full_segments(n, segment_size))
    path = tmp_path / "f"
    runs = []
    for cycles in (None, 0, 100):
        w = write(path, pt, "ocall", segment_size, chunk=50_000, ocall_cycles=cycles)
        got, r = read(path, "ocall", ocall_cycles=cycles)
        assert got == pt
        runs.append((_counts(w), _counts(r)))
        writes, reads = ios(n, segment_size)
        head = head_read(path.stat().st_size)
        assert w["segments"] == n
        assert w["file_ops"] == 2  # open, close
        assert w["exits"] == per_segment * writes + 2
        assert w["ops"] == writes and w["syscalls"] == writes + 2
        assert w["bytes"] == path.stat().st_size
        assert w["stream_syscalls"] == 0
        assert w["total_exits"] == w["exits"]
        assert w["fallbacks"] == w["uring_enters"] == 0
        # open, and a stat only if the head read filled its slot (a small file is
        # read whole and ends short: no stat); the close comes with close().
        # The head read asks for a whole 64 KiB slot (3 exits above 16 KiB: the
        # model charges what is asked, as the SDK's bounce buffer is sized).
        stat = int(head == exitless.streams.DEFAULT_SEGMENT_SIZE)
        assert r["file_ops"] == 1 + stat
        assert r["exits"] == 1 + stat + 3 + per_segment * (reads - 1)
        assert r["segments"] == (n + 1 if n > 1 else 1)  # the final one is opened twice
        assert r["ops"] == reads
        assert r["stream_syscalls"] == 0
        assert r["total_exits"] == r["exits"]
    assert runs[0] == runs[1] == runs[2], "exit counts must not depend on ocall_cycles or the run"


def test_ocall_triple_rule_boundary_is_16_kib(tmp_path, default_ocall_model):
    """A final segment whose ciphertext is exactly 16384 bytes costs 1 exit; 16385, 3."""
    s = 65536
    p0, _ = caps(s)
    for final_ct, exits_for_final in ((16384, 1), (16385, 3)):
        pt = data(p0 + final_ct - T)
        w = write(tmp_path / "f", pt, "ocall", s, ocall_cycles=0)
        assert w["segments"] == 2
        assert w["exits"] == 2 + 3 + exits_for_final, (final_ct, w)  # open, close; two segments
        got, r = read(tmp_path / "f", "ocall", ocall_cycles=0)
        assert got == pt
        # open, stat (the head filled its 64 KiB slot); the head (segment 0); the
        # final segment read twice.
        assert r["exits"] == 2 + 3 + 2 * exits_for_final


def test_switchless_exits_are_fallbacks(tmp_path):
    for segment_size, n in ((4096, 30), (65536, 10)):
        pt = data(full_segments(n, segment_size) - 5)
        w = write(tmp_path / "f", pt, "switchless", segment_size)
        got, r = read(tmp_path / "f", "switchless")
        assert got == pt
        for s in (w, r):
            assert s["backend"] == "switchless"
            assert s["exits"] == s["fallbacks"], s
            assert s["exits"] <= s["ops"] + s["file_ops"]
            assert s["uring_enters"] == 0


def test_sync_makes_no_exits(tmp_path):
    for segment_size, n in ((4096, 30), (65536, 10)):
        pt = data(full_segments(n, segment_size) + 17)
        w = write(tmp_path / "f", pt, "sync", segment_size)
        got, r = read(tmp_path / "f", "sync")
        assert got == pt
        for s in (w, r):
            assert (s["exits"], s["fallbacks"], s["uring_enters"], s["sqpoll_wakeups"]) == (0, 0, 0, 0), s
            assert s["syscalls"] == s["ops"] + s["file_ops"] and s["ops"] > 0 and s["file_ops"] == 2
            assert s["total_exits"] == s["stream_syscalls"] == 0


def test_uring_steady_state_makes_almost_no_exits(tmp_path, monkeypatch):
    """20,000 segments of 4 KiB through io_uring, page cache (direct=False) so the
    ring is measured, not the disk.

    Why exits == uring_enters and exits <= 20 (1 per 1,000 segments):
    - Submitting is a store to the SQ tail that the SQPOLL kernel thread picks up,
      so a submission costs no system call while that thread is awake.
    - The file is opened and closed on the ring (``file_ops``), and the stream
      moves to IO-sized slots past its first MiB with no call either: its file is
      a plain descriptor any ring can use. Past that point 256 segments share one
      write (``ios``).
    - io_uring_enter runs only (a) to wake the SQPOLL thread, which sleeps only
      after a second without work, i.e. at the start of a stream after idleness;
      the warm-up stream right before keeps that thread awake (a woken thread may
      cost up to queue_depth such enters until it has cleared its NEED_WAKEUP
      flag; the counter sqpoll_wakeups shows them), and (b) to block
      for a completion after spinning uring_spin_us (100 ms here, the setting for
      strictly exit-less streams; the 100 µs default is tuned for 2-core machines).
    A stalled write (another process hogging the 2 cores) can cost a block; the
    bound is therefore tried up to three times, while the equality must hold on
    every attempt. A regression such as an enter per submission gives ~20,000.
    The SQPOLL thread idles a second here (as with 4 or more CPUs; below, 2 ms), so
    gaps in the test's own work do not put it to sleep: new rings read the setting.
    """
    monkeypatch.setenv("EXITLESS_URING_SQ_IDLE_MS", "1000")
    exitless.release_backends()
    path = tmp_path / "f"
    buf = data(MiB, seed=5)
    opts = dict(
        backend="uring",
        segment_size=4096,
        queue_depth=8,
        direct=False,
        uring_spin_us=100_000,
        uring_sqpoll=True,
        _insecure_fixed_randomness=FIXED,
    )
    total = full_segments(20_000, 4096)
    attempts = []
    for _ in range(3):
        write_stream(path, 100_000, chunk_buf=buf, **opts)  # warm-up: ring pooled, SQPOLL thread awake
        s = write_stream(path, total, chunk_buf=buf, **opts)
        assert s["backend"] == "uring" and s["direct"] is False
        assert s["segments"] == 20_000
        assert s["ops"] == ios(20_000, 4096)[0]
        assert s["exits"] == s["uring_enters"], f"every exit is an io_uring_enter: {s}"
        assert s["file_ops"] == 2 and s["stream_syscalls"] == 0, s
        assert s["sqpoll_wakeups"] <= s["uring_enters"]
        attempts.append(s)
        if s["exits"] <= 20:
            break
    assert min(a["exits"] for a in attempts) <= 20, (
        f"steady state must be <= 1 exit per 1000 segments: {attempts}"
    )
    info = exitless.inspect(path)
    assert info.segments == 20_000 and info.plaintext_size == total
    with open_spill(path, "rb", KEY, CTX, backend="sync") as r:
        for off in (0, MiB - 5, total // 2, total - 10):
            r.seek(off)
            assert r.read(10) == bytes(buf[(off + i) % MiB] for i in range(10)), off
    path.unlink()  # 80 MB: do not leave it in pytest's kept temporary directories


# ----------------------------------------------------------------------------- 3. selection


def test_backends_report():
    report = exitless.backends()
    assert set(report) == set(BACKENDS)
    for name, entry in report.items():
        assert set(entry) >= {"available", "reason"}, name
        assert entry["available"] is True and entry["reason"] is None, (name, entry)


def test_uring_and_auto_resolve_to_uring(tmp_path):
    pt = data(10_000)
    s = write(tmp_path / "u", pt, "uring")
    assert s["backend"] == "uring"
    with open_spill(tmp_path / "a", "wb", KEY, CTX) as w:  # backend defaults to "auto"
        w.write(pt)
    assert w.final_stats["backend"] == "uring"
    with open_spill(tmp_path / "a", "rb", KEY, CTX) as r:
        assert r.read() == pt
        assert r.stats()["backend"] == "uring"


@pytest.mark.parametrize("name", ["io_uring", "URING", "", "ocalls", None, 1])
def test_unknown_backend_is_a_value_error(tmp_path, name):
    with pytest.raises(ValueError, match="backend"):
        open_spill(tmp_path / "w", "wb", KEY, CTX, backend=name)
    write(tmp_path / "r", b"x", "sync")
    with pytest.raises(ValueError, match="backend"):
        open_spill(tmp_path / "r", "rb", KEY, CTX, backend=name)
    assert not (tmp_path / "w").exists()


REASON = "io_uring_setup: Operation not permitted (os error 1) [simulated]"


@pytest.fixture
def uring_unavailable(monkeypatch):
    monkeypatch.setattr(streams, "uring_unavailable_reason", lambda: REASON)
    monkeypatch.setattr(streams, "_auto_warned", False)


def test_unavailable_uring_is_reported_and_refused(tmp_path, uring_unavailable):
    report = exitless.backends()
    assert report["uring"] == {"available": False, "reason": REASON}
    assert all(report[b]["available"] for b in ("ocall", "switchless", "sync"))
    with pytest.raises(BackendUnavailableError) as e:
        open_spill(tmp_path / "f", "wb", KEY, CTX, backend="uring")
    assert REASON in str(e.value)
    assert isinstance(e.value, RuntimeError) and isinstance(e.value, exitless.ExitlessError)
    write(tmp_path / "g", b"data", "sync")
    with pytest.raises(BackendUnavailableError, match="simulated"):
        open_spill(tmp_path / "g", "rb", KEY, CTX, backend="uring")


def test_unavailable_uring_auto_warns_once_and_uses_sync(tmp_path, uring_unavailable):
    pt = data(9000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(2):
            with open_spill(tmp_path / f"f{i}", "wb", KEY, CTX, segment_size=4096) as w:
                w.write(pt)
            assert w.final_stats["backend"] == "sync"
            with open_spill(tmp_path / f"f{i}", "rb", KEY, CTX) as r:
                assert r.read() == pt
                assert r.stats()["backend"] == "sync"
    relevant = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(relevant) == 1, [str(w.message) for w in caught]
    message = str(relevant[0].message)
    assert REASON in message and "sync" in message
    assert "\n" not in message


def test_unavailable_uring_warning_points_at_the_caller(tmp_path, uring_unavailable):
    """The auto-fallback warning should be attributed to the code that opened the
    stream (as the stacklevel argument intends), not to exitless/streams.py."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = open_spill(tmp_path / "f", "wb", KEY, CTX)
        w.close()
    [warning] = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert warning.filename == __file__, f"warning attributed to {warning.filename}:{warning.lineno}"


# ----------------------------------------------------------------------------- 4. failing disks


@pytest.mark.parametrize("segment_size", [4096, 65536])
@pytest.mark.parametrize(
    "backend, direct",
    [("uring", None), ("uring", False), ("ocall", None), ("switchless", None), ("sync", None)],
)
def test_enospc_on_a_full_tmpfs(tmp_path, backend, direct, segment_size):
    """A 4 MiB stream into a 1 MiB tmpfs: OSError(ENOSPC) naming the file, at a write
    or at close; what is left never reads back as a (shorter) valid stream.
    (uring with direct=False: the ENOSPC comes back through the ring's completions.)"""
    with mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], tmp_path / "tiny") as mnt:
        path = mnt / "spill"
        buf = data(256 * 1024)
        with (
            pytest.raises(OSError) as e,
            open_spill(path, "wb", KEY, CTX, backend=backend, direct=direct, segment_size=segment_size) as w,
        ):
            for _ in range(16):
                w.write(buf)
        assert e.value.errno == errno.ENOSPC, e.value
        assert_names_path(e.value, path)
        assert w.closed
        for reader in (backend, "sync"):
            with pytest.raises(IntegrityError), open_spill(path, "rb", KEY, CTX, backend=reader) as r:
                r.read()


def _ext4_on_loop(tmp_path: Path, size: int) -> Path:
    """A sparse ext4 image of ``size`` bytes (to mount with ``-o loop``)."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 not found: cannot build the ext4 image")
    image = tmp_path / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(size)
    r = _run(["mkfs.ext4", "-q", "-F", str(image)])
    if r.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {r.stderr.strip()}")
    return image


@pytest.mark.parametrize(
    "backend, direct",
    [("uring", None), ("uring", False), ("ocall", None), ("switchless", None), ("sync", None)],
)
def test_eio_from_a_shut_down_file_system(tmp_path, backend, direct):
    """EIO, reliably: an ext4 image on a loop device, shut down with EXT4_IOC_SHUTDOWN
    while a writer and a reader are open. Both fail with OSError(EIO) naming the file;
    the partial file does not read back."""
    image = _ext4_on_loop(tmp_path, 256 * MiB)  # room for the direct writers' 64 MiB reservations
    opts = dict(backend=backend, direct=direct, segment_size=65536)
    buf = data(MiB, seed=3)
    with mounted(["-o", "loop", str(image)], tmp_path / "mnt") as mnt:
        done, partial = mnt / "done", mnt / "partial"
        write_stream(done, 4 * MiB, chunk_buf=buf, **opts)
        reader = open_spill(done, "rb", KEY, CTX, backend=backend, direct=direct)
        try:
            assert reader.read(1000) == buf[:1000]
            with pytest.raises(OSError) as we, open_spill(partial, "wb", KEY, CTX, **opts) as w:
                w.write(buf)
                try:
                    shut_down(mnt)
                except OSError as e:
                    pytest.skip(f"EXT4_IOC_SHUTDOWN not supported here: {e}")
                for _ in range(3):
                    w.write(buf)
            assert we.value.errno == errno.EIO, we.value
            assert_names_path(we.value, partial)
            with pytest.raises(OSError) as re_:
                reader.read()
            assert re_.value.errno == errno.EIO, re_.value
            assert_names_path(re_.value, done)
            assert reader.tell() == 1000, "a failed read must not move the position"
        finally:
            reader.close()
    with (
        mounted(["-o", "loop", str(image)], tmp_path / "mnt") as mnt,
        pytest.raises(IntegrityError),
        open_spill(mnt / "partial", "rb", KEY, CTX, backend="sync") as r,
    ):
        r.read()


@pytest.mark.parametrize(
    "backend, direct", [("uring", None), ("uring", True), ("sync", True), ("sync", False)]
)
def test_a_stream_that_fits_is_written_on_a_small_file_system(tmp_path, backend, direct):
    """A 10 MiB stream on an ext4 file system with ~20 MiB free must succeed, with or
    without O_DIRECT. (Direct writers reserve space ahead with fallocate; reserving
    more than the file system has must not fail a stream that fits.)"""
    image = _ext4_on_loop(tmp_path, 24 * MiB)
    buf = data(MiB, seed=4)
    with mounted(["-o", "loop", str(image)], tmp_path / "mnt") as mnt:
        free = shutil.disk_usage(mnt).free
        assert free > 16 * MiB
        s = write_stream(
            mnt / "f", 10 * MiB, chunk_buf=buf, backend=backend, direct=direct, segment_size=65536
        )
        assert s["direct"] is (direct is True)
        assert (mnt / "f").stat().st_size == exitless.sealed_length(10 * MiB, 65536)
        with open_spill(mnt / "f", "rb", KEY, CTX, backend=backend) as r:
            assert r.read(MiB) == buf


# ----------------------------------------------------------------------------- 5. queue depth


@pytest.mark.parametrize("backend", BACKENDS)
def test_queue_depth_bounds_and_identical_output(tmp_path, backend):
    pt = data(full_segments(40, 4096) + 1000)
    contents = []
    for depth in (1, 64):
        path = tmp_path / f"q{depth}"
        s = write(path, pt, backend, 4096, chunk=30_000, queue_depth=depth)
        assert s["segments"] == exitless.inspect(path).segments == 41
        contents.append(path.read_bytes())
        for rdepth in (1, 64):
            got, _ = read(path, backend, queue_depth=rdepth)
            assert got == pt
    assert contents[0] == contents[1]
    for bad in (0, 2000, 1025, -1, True):
        with pytest.raises(ValueError, match="queue_depth"):
            open_spill(tmp_path / "bad", "wb", KEY, CTX, backend=backend, queue_depth=bad)
        with pytest.raises(ValueError, match="queue_depth"):
            open_spill(tmp_path / "q1", "rb", KEY, CTX, backend=backend, queue_depth=bad)


@pytest.mark.parametrize(
    "n", [0, 1, caps(4096)[0], caps(4096)[0] + 1, full_segments(9, 4096), full_segments(9, 4096) + 1]
)
def test_writer_segments_match_the_file(tmp_path, n):
    for backend in BACKENDS:
        path = tmp_path / backend
        s = write(path, data(n), backend, 4096)
        info = exitless.inspect(path)
        assert s["segments"] == info.segments == segment_count(n, 4096), (backend, n)
        assert info.plaintext_size == n


# ----------------------------------------------------------------------------- 6. memory


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, os, resource, sys
    import exitless

    def hwm():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    path = sys.argv[1]
    chunk = bytearray(os.urandom(1 << 20))
    before = (hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    with exitless.open_spill(path, "wb", bytes(range(32)), b"ctx", backend="uring",
                             segment_size=65536, queue_depth=4) as w:
        for i in range(256):
            chunk[0] = i
            w.write(chunk)
    after = (hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"before": before, "after": after, "stats": w.final_stats,
                      "size": os.path.getsize(path)}))
    """
)


def test_memory_is_bounded_for_a_256_mib_stream(disk_dir):
    """256 MiB through io_uring, queue depth 4, 64 KiB segments, generated in 1 MiB
    chunks in a fresh process: the peak RSS grows by far less than the stream."""
    path = disk_dir / "big"
    try:
        r = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(path)], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        grew_hwm = out["after"][0] - out["before"][0]
        grew_maxrss = out["after"][1] - out["before"][1]
        assert grew_hwm < 32 * MiB, f"VmHWM grew by {grew_hwm / MiB:.1f} MiB"
        assert grew_maxrss < 32 * MiB, f"ru_maxrss grew by {grew_maxrss / MiB:.1f} MiB"
        assert out["stats"]["backend"] == "uring"
        assert out["stats"]["plaintext_bytes"] == 256 * MiB
        assert out["stats"]["segments"] == segment_count(256 * MiB, 65536)
        assert out["size"] == exitless.sealed_length(256 * MiB, 65536)
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("backend", ["uring", "ocall", "switchless", "sync"])
def test_stats_stay_readable_after_close_and_count_the_close(tmp_path, backend):
    if backend == "uring" and exitless.streams.uring_unavailable_reason() is not None:
        pytest.skip("needs io_uring")
    pt = data(full_segments(5, 4096))
    path = tmp_path / "f"
    w = open_spill(path, "wb", KEY, CTX, backend=backend, segment_size=4096, ocall_cycles=0)
    w.write(pt)
    before = w.stats()
    w.close()
    after = w.stats()
    assert after == w.final_stats
    assert after["segments"] == 5 and after["plaintext_bytes"] == len(pt)
    # The close (and the final segment's write) are counted: an exit each in an enclave.
    assert after["file_ops"] == before["file_ops"] + 1 == 2
    assert after["ops"] == 5, "every segment's write, the final one's included, is counted by close"
    if backend == "ocall":
        assert after["exits"] == before["exits"] + 2
    r = open_spill(path, "rb", KEY, CTX, backend=backend, ocall_cycles=0)
    assert r.read() == pt
    open_ops = r.stats()["file_ops"]
    r.close()
    assert r.stats()["file_ops"] == open_ops + 1 == 2, "open and close: a small file is read whole, no stat"
    with pytest.raises(ValueError):
        r.read(1)
