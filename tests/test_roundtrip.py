"""Round trips through every way in and out of a sealed stream, as hypothesis properties:
random sizes (0..~20 segments at segment sizes 256 and 4096), random write-call patterns,
both algorithms, random contexts, random read sizes, readinto, and random seeks.
Plus w+b spill files, the in-memory API, sealed_length, inspect, key ids, file modes and
the GIL being released during native calls."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import random
import shutil
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exitless

H = 68
T = 16
ALGORITHMS = ["aes-256-gcm", "chacha20-poly1305"]
ALGORITHM_IDS = {"aes-256-gcm": 1, "chacha20-poly1305": 2}
SEGMENT_SIZES = [256, 4096]

KEY = exitless.generate_key()

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def capacities(s: int) -> tuple[int, int]:
    return s - H - T, s - T


def segment_count(m: int, s: int) -> int:
    p0, p = capacities(s)
    return 1 if m <= p0 else 1 + -(-(m - p0) // p)


def boundary_sizes(s: int) -> list[int]:
    p0, p = capacities(s)
    return [0, 1, p0 - 1, p0, p0 + 1, p - 1, p, p + 1, p0 + p, p0 + p + 1, p0 + 2 * p, p0 + 4 * p + p // 2]


# ----------------------------------------------------------------------------- strategies


@st.composite
def streams(draw, max_segments: int = 20):
    """(segment_size, algorithm, context, plaintext)."""
    s = draw(st.sampled_from(SEGMENT_SIZES))
    p0, p = capacities(s)
    size = draw(st.one_of(st.sampled_from(boundary_sizes(s)), st.integers(0, p0 + (max_segments - 1) * p)))
    seed = draw(st.integers(0, 2**32 - 1))
    data = random.Random(seed).randbytes(size)
    algorithm = draw(st.sampled_from(ALGORITHMS))
    context = draw(st.one_of(st.binary(max_size=48), st.text(max_size=16)))
    return s, algorithm, context, data


def ctx_bytes(context: bytes | str) -> bytes:
    return context.encode("utf-8") if isinstance(context, str) else context


@st.composite
def write_patterns(draw, s: int):
    """Chunk sizes (0 allowed: empty writes) and the buffer type of each write."""
    sizes = draw(st.lists(st.integers(0, 2 * s + 3), max_size=25))
    kinds = draw(
        st.lists(
            st.sampled_from(["bytes", "bytearray", "memoryview"]),
            min_size=len(sizes) + 1,
            max_size=len(sizes) + 1,
        )
    )
    return sizes, kinds


def as_kind(chunk: bytes, kind: str):
    if kind == "bytearray":
        return bytearray(chunk)
    if kind == "memoryview":
        return memoryview(chunk)
    return chunk


_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="exitless-roundtrip-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fresh_path(workdir: Path) -> Path:
    return workdir / f"spill-{next(_counter)}.sealed"


def write_with_pattern(
    path: Path, data: bytes, s: int, algorithm: str, context, pattern, key=KEY, **kw
) -> None:
    sizes, kinds = pattern
    with exitless.open_spill(path, "wb", key, context, segment_size=s, algorithm=algorithm, **kw) as w:
        assert w.writable() and w.tell() == 0
        pos = 0
        for n, kind in zip(sizes, kinds, strict=False):  # a kind more than sizes
            chunk = data[pos : pos + n]
            assert w.write(as_kind(chunk, kind)) == len(chunk)
            pos += len(chunk)
            assert w.tell() == pos
        assert w.write(as_kind(data[pos:], kinds[-1])) == len(data) - pos
        assert w.tell() == len(data)
    assert w.closed


# ----------------------------------------------------------------------------- file round trips


@SETTINGS
@given(stream=streams(), data=st.data())
def test_write_patterns_and_whole_read(workdir, stream, data):
    s, algorithm, context, plaintext = stream
    pattern = data.draw(write_patterns(s))
    path = fresh_path(workdir)
    write_with_pattern(path, plaintext, s, algorithm, context, pattern)
    try:
        assert path.stat().st_size == exitless.sealed_length(len(plaintext), s)
        with exitless.open_spill(path, "rb", KEY, context) as r:
            assert r.readable() and r.seekable() and not r.writable()
            assert r.size == len(plaintext)
            assert r.read() == plaintext
            assert r.tell() == len(plaintext)
            assert r.read() == b"" and r.read(10) == b""
        # the reader accepts the context as bytes when it was given as str, and raw key bytes
        with exitless.open_spill(path, "rb", KEY.secret_bytes(), ctx_bytes(context)) as r:
            assert r.readall() == plaintext
    finally:
        path.unlink()


@SETTINGS
@given(stream=streams(), read_sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=40))
def test_random_read_sizes(workdir, stream, read_sizes):
    s, algorithm, context, plaintext = stream
    path = fresh_path(workdir)
    path.write_bytes(exitless.seal_bytes(plaintext, KEY, context, segment_size=s, algorithm=algorithm))
    try:
        got = bytearray()
        with exitless.open_spill(path, "rb", KEY, context) as r:
            for n in itertools.cycle([*read_sizes, 4096]):  # progress in every cycle
                if len(got) >= len(plaintext) and n > 0:
                    assert r.read(n) == b""
                    break
                chunk = r.read(n)
                assert len(chunk) == min(n, len(plaintext) - len(got))  # a raw read fills as far as it can
                got += chunk
                assert r.tell() == len(got)
        assert bytes(got) == plaintext
    finally:
        path.unlink()


@SETTINGS
@given(stream=streams(), buf_sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20))
def test_readinto(workdir, stream, buf_sizes):
    s, algorithm, context, plaintext = stream
    path = fresh_path(workdir)
    write_with_pattern(path, plaintext, s, algorithm, context, ([], ["bytes"]))
    try:
        got = bytearray()
        with exitless.open_spill(path, "rb", KEY, context) as r:
            for n in itertools.cycle([*buf_sizes, 4096]):
                buf = bytearray(b"\xee" * n)
                k = r.readinto(buf if n % 2 else memoryview(buf))
                assert 0 <= k <= n
                assert buf[k:] == b"\xee" * (n - k)  # nothing written past what was read
                got += buf[:k]
                if k == 0:
                    break
            assert r.readinto(bytearray(0)) == 0
        assert bytes(got) == plaintext
    finally:
        path.unlink()


@st.composite
def seek_ops(draw, size: int):
    op = st.one_of(
        st.tuples(st.just("set"), st.integers(0, size + 600)),
        st.tuples(st.just("cur"), st.integers(-size - 600, size + 600)),
        st.tuples(st.just("end"), st.integers(-size - 600, 600)),
        st.tuples(st.just("read"), st.integers(-1, 5000)),
        st.tuples(st.just("readinto"), st.integers(0, 5000)),
        st.tuples(st.just("tell"), st.just(0)),
    )
    return draw(st.lists(op, min_size=1, max_size=30))


@SETTINGS
@given(stream=streams(), data=st.data())
def test_random_seeks_against_a_model(workdir, stream, data):
    s, algorithm, context, plaintext = stream
    size = len(plaintext)
    ops = data.draw(seek_ops(size))
    path = fresh_path(workdir)
    path.write_bytes(exitless.seal_bytes(plaintext, KEY, context, segment_size=s, algorithm=algorithm))
    try:
        pos = 0
        with exitless.open_spill(path, "rb", KEY, context) as r:
            for kind, arg in ops:
                if kind in ("set", "cur", "end"):
                    whence = {"set": io.SEEK_SET, "cur": io.SEEK_CUR, "end": io.SEEK_END}[kind]
                    target = {"set": arg, "cur": pos + arg, "end": size + arg}[kind]
                    if target < 0:
                        with pytest.raises((ValueError, OSError)):
                            r.seek(arg, whence)
                        assert r.tell() == pos  # a failed seek does not move
                    else:
                        assert r.seek(arg, whence) == target
                        pos = target
                elif kind == "read":
                    expected = plaintext[pos:] if arg < 0 else plaintext[pos : pos + arg]
                    assert r.read(arg) == expected
                    pos += len(expected)
                elif kind == "readinto":
                    buf = bytearray(arg)
                    n = r.readinto(buf)
                    assert bytes(buf[:n]) == plaintext[pos : pos + arg]
                    pos += n
                assert r.tell() == pos
    finally:
        path.unlink()


@pytest.mark.parametrize("s", SEGMENT_SIZES)
def test_seek_details(tmp_path, s):
    p0, p = capacities(s)
    plaintext = os.urandom(p0 + 3 * p + 7)
    path = tmp_path / "f"
    path.write_bytes(exitless.seal_bytes(plaintext, KEY, segment_size=s))
    with exitless.open_spill(path, "rb", KEY) as r:
        assert r.seek(0, io.SEEK_END) == len(plaintext)
        assert r.read() == b""
        assert r.seek(-1, io.SEEK_END) == len(plaintext) - 1
        assert r.read(5) == plaintext[-1:]
        assert r.seek(len(plaintext) + 1000) == len(plaintext) + 1000  # past the end is allowed
        assert r.read(1) == b"" and r.read() == b"" and r.readinto(bytearray(3)) == 0
        assert r.tell() == len(plaintext) + 1000
        assert r.seek(-1000 - len(plaintext), io.SEEK_CUR) == 0
        for boundary in (p0 - 1, p0, p0 + p - 1, p0 + p, p0 + 2 * p):  # across segment boundaries
            assert r.seek(boundary) == boundary
            assert r.read(3) == plaintext[boundary : boundary + 3]
            assert r.seek(-3, io.SEEK_CUR) == boundary
        with pytest.raises((ValueError, OSError)):
            r.seek(-1)
        with pytest.raises((ValueError, OSError)):
            r.seek(-len(plaintext) - 1, io.SEEK_END)
        with pytest.raises((ValueError, OSError)):
            r.seek(0, 3)
        assert r.tell() == p0 + 2 * p


# ----------------------------------------------------------------------------- w+b


@SETTINGS
@given(stream=streams(max_segments=8), data=st.data())
def test_spill_file_write_then_read_back(workdir, stream, data):
    s, algorithm, context, plaintext = stream
    sizes, kinds = data.draw(write_patterns(s))
    path = fresh_path(workdir)
    try:
        with exitless.open_spill(path, "w+b", KEY, context, segment_size=s, algorithm=algorithm) as f:
            assert f.readable() and f.writable() and f.seekable()
            pos = 0
            for n, kind in zip(sizes, kinds, strict=False):  # a kind more than sizes
                chunk = plaintext[pos : pos + n]
                assert f.write(as_kind(chunk, kind)) == len(chunk)
                pos += len(chunk)
                assert f.tell() == pos
            f.write(plaintext[pos:])
            assert f.tell() == len(plaintext)
            assert f.seek(0) == 0
            assert not f.writable()
            assert f.read() == plaintext
            with pytest.raises(io.UnsupportedOperation):
                f.write(b"more")
            half = len(plaintext) // 2
            assert f.seek(half) == half
            assert f.read(7) == plaintext[half : half + 7]
        assert f.closed
        # what it left is an ordinary complete sealed file
        with exitless.open_spill(path, "rb", KEY, context) as r:
            assert r.read() == plaintext
    finally:
        path.unlink()


def test_spill_file_first_read_finishes_the_stream(tmp_path):
    path = tmp_path / "spill"
    with exitless.open_spill(path, "w+b", KEY, "ctx", segment_size=256) as f:
        f.write(b"abc")
        f.write(b"")
        f.write(bytearray(b"def"))
        assert f.read(2) == b"ab"  # no seek: the first read starts at the beginning
        assert f.read() == b"cdef"
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")
        buf = bytearray(3)
        f.seek(1)
        assert f.readinto(buf) == 3 and buf == b"bcd"
        assert f.readall() == b"ef"
    assert exitless.open_bytes(path.read_bytes(), KEY, "ctx") == b"abcdef"


def test_spill_file_mode_spellings(tmp_path):
    for mode in ("w+b", "wb+", "+wb"):
        with exitless.open_spill(tmp_path / mode, mode, KEY) as f:
            assert isinstance(f, exitless.SealedSpillFile)
            f.write(b"x")
            f.seek(0)
            assert f.read() == b"x"
    for mode, cls in (("wb", exitless.SealedWriter), ("bw", exitless.SealedWriter)):
        with exitless.open_spill(tmp_path / "w", mode, KEY) as w:
            assert isinstance(w, cls)
    with exitless.open_spill(tmp_path / "w", "br", KEY) as r:
        assert isinstance(r, exitless.SealedReader) and r.read() == b""


# ----------------------------------------------------------------------------- in memory


@SETTINGS
@given(stream=streams())
def test_seal_bytes_open_bytes_and_files_agree(workdir, stream):
    s, algorithm, context, plaintext = stream
    sealed = exitless.seal_bytes(plaintext, KEY, context, segment_size=s, algorithm=algorithm)
    assert (
        len(sealed)
        == exitless.sealed_length(len(plaintext), s)
        == H + len(plaintext) + segment_count(len(plaintext), s) * T
    )
    assert exitless.open_bytes(sealed, KEY, context) == plaintext
    assert exitless.open_bytes(bytearray(sealed), KEY.secret_bytes(), ctx_bytes(context)) == plaintext
    assert exitless.open_bytes(memoryview(sealed), KEY, context) == plaintext
    path = fresh_path(workdir)
    try:
        # a file written by the stream writer opens in memory, and the in-memory result as a file
        write_with_pattern(path, plaintext, s, algorithm, context, ([], ["bytes"]))
        from_file = path.read_bytes()
        assert len(from_file) == len(sealed)
        assert from_file[:28] == sealed[:28]  # magic .. key id agree; salt and prefix are fresh
        assert from_file[28:67] != sealed[28:67]
        assert exitless.open_bytes(from_file, KEY, context) == plaintext
        path.write_bytes(sealed)
        with exitless.open_spill(path, "rb", KEY, context) as r:
            assert r.read() == plaintext
    finally:
        path.unlink()


def test_seal_bytes_accepts_buffers(tmp_path):
    import array

    arr = array.array("I", range(100))
    sealed = exitless.seal_bytes(arr, KEY, segment_size=256)
    assert exitless.open_bytes(sealed, KEY) == arr.tobytes()
    assert exitless.open_bytes(exitless.seal_bytes(bytearray(b"xyz"), KEY), KEY) == b"xyz"
    # a non-contiguous view through the file writer
    view = memoryview(bytes(range(200)))[::2]
    with exitless.open_spill(tmp_path / "f", "wb", KEY, segment_size=256) as w:
        assert w.write(view) == 100
    assert exitless.open_bytes((tmp_path / "f").read_bytes(), KEY) == bytes(range(0, 200, 2))


@pytest.mark.parametrize("s", [*SEGMENT_SIZES, 65536, 1 << 20, 1 << 30])
def test_sealed_length_formula(s):
    p0, p = capacities(s)
    for m in sorted({0, 1, p0 - 1, p0, p0 + 1, p0 + p, p0 + p + 1, p0 + 7 * p, 10**9}):
        n = segment_count(m, s)
        assert exitless.sealed_length(m, s) == H + m + n * T
        if m:
            assert exitless.sealed_length(m, s) > exitless.sealed_length(m - 1, s)
    assert exitless.sealed_length(0) == H + T  # default segment size


# ----------------------------------------------------------------------------- headers, inspect, key ids


@SETTINGS
@given(stream=streams(max_segments=6))
def test_header_and_inspect(workdir, stream):
    s, algorithm, context, plaintext = stream
    path = fresh_path(workdir)
    write_with_pattern(path, plaintext, s, algorithm, context, ([], ["bytes"]))
    try:
        header = path.read_bytes()[:H]
        assert header[:4] == b"EXLS"
        assert header[4] == 1 and header[5] == ALGORITHM_IDS[algorithm]
        assert header[6:8] == H.to_bytes(2, "big") and header[8:12] == s.to_bytes(4, "big")
        assert header[12:28] == KEY.key_id
        assert header[67] == 0
        info = exitless.inspect(path)
        assert isinstance(info, exitless.FileInfo)
        assert info.path == str(path)
        assert info.version == 1
        assert info.algorithm == algorithm
        assert info.segment_size == s
        assert info.key_id == KEY.key_id
        assert info.file_size == path.stat().st_size
        assert info.segments == segment_count(len(plaintext), s)
        assert info.plaintext_size == len(plaintext)
    finally:
        path.unlink()


def test_key_id_is_the_documented_fingerprint_and_can_be_overridden(tmp_path):
    key = exitless.generate_key()
    assert key.key_id == hashlib.sha256(b"exitless key id v1" + key.secret_bytes()).digest()[:16]
    assert exitless.Key(key.secret_bytes()).key_id == key.key_id
    assert exitless.generate_key().key_id != key.key_id
    with exitless.open_spill(tmp_path / "default", "wb", key) as w:
        w.write(b"x")
    assert (tmp_path / "default").read_bytes()[12:28] == key.key_id
    assert exitless.inspect(tmp_path / "default").key_id == key.key_id
    # raw key bytes get the same default key id
    with exitless.open_spill(tmp_path / "raw", "wb", key.secret_bytes()) as w:
        w.write(b"x")
    assert exitless.inspect(tmp_path / "raw").key_id == key.key_id
    custom = bytes(range(100, 116))
    with exitless.open_spill(tmp_path / "custom", "wb", key, key_id=custom) as w:
        w.write(b"x")
    assert (tmp_path / "custom").read_bytes()[12:28] == custom
    assert exitless.inspect(tmp_path / "custom").key_id == custom
    with exitless.open_spill(tmp_path / "custom", "rb", key) as r:  # the key id is not checked on read
        assert r.read() == b"x"
    sealed = exitless.seal_bytes(b"y", key, key_id=bytes(16))
    assert sealed[12:28] == bytes(16)
    assert exitless.seal_bytes(b"y", key)[12:28] == key.key_id


def test_default_segment_size_and_sync(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(200_000)
    with exitless.open_spill(path, "wb", KEY, sync=True) as w:
        w.write(data)
    info = exitless.inspect(path)
    assert info.segment_size == 65536 and info.algorithm == "aes-256-gcm"
    assert info.segments == segment_count(len(data), 65536) == 4
    with exitless.open_spill(path, "rb", KEY) as r:
        assert r.read() == data


def test_files_are_created_with_mode_0600(tmp_path):
    old = os.umask(0)  # so that the umask cannot hide a too-permissive creation mode
    try:
        with exitless.open_spill(tmp_path / "w", "wb", KEY) as w:
            w.write(b"x")
        with exitless.open_spill(tmp_path / "wp", "w+b", KEY) as f:
            f.write(b"x")
            f.seek(0)
        key_path = tmp_path / "key"
        KEY.save(key_path)
    finally:
        os.umask(old)
    for p in ("w", "wp", "key"):
        assert stat.S_IMODE((tmp_path / p).stat().st_mode) == 0o600, p


def test_writer_truncates_an_existing_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\xff" * 10_000)
    with exitless.open_spill(path, "wb", KEY, segment_size=256) as w:
        w.write(b"short")
    assert path.stat().st_size == exitless.sealed_length(5, 256)
    with exitless.open_spill(path, "rb", KEY) as r:
        assert r.read() == b"short"


def test_str_context_is_utf8(tmp_path):
    path = tmp_path / "f"
    with exitless.open_spill(path, "wb", KEY, "päth/ünïcode", segment_size=256) as w:
        w.write(b"data")
    with exitless.open_spill(path, "rb", KEY, "päth/ünïcode".encode()) as r:
        assert r.read() == b"data"
    with pytest.raises(exitless.IntegrityError):
        exitless.open_spill(path, "rb", KEY, "päth/ünïcode".encode("latin-1"))


# ----------------------------------------------------------------------------- the GIL


def test_native_calls_release_the_gil():
    """While seal_bytes(64 MiB) runs, another Python thread keeps counting.

    The switch interval is raised so that the interpreter never forces a GIL hand-off
    during the call: the counter can only advance if the native code released the GIL.
    The counting thread yields the GIL on every iteration (time.sleep(0)), so the main
    thread gets it back promptly. The control measurement (pure Python work) shows that
    without a release the counter stands still."""
    data = os.urandom(64 << 20)
    counter = 0
    stop = threading.Event()
    started = threading.Event()

    def count() -> None:
        nonlocal counter
        started.set()
        while not stop.is_set():
            counter += 1
            time.sleep(0)

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    thread = threading.Thread(target=count, daemon=True)
    try:
        thread.start()
        assert started.wait(10)
        before = counter
        sealed = exitless.seal_bytes(data, KEY)
        during_seal = counter - before
        before = counter
        opened = exitless.open_bytes(sealed, KEY)
        during_open = counter - before
        before = counter
        sum(range(2_000_000))  # control: holds the GIL throughout
        during_python = counter - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        thread.join(10)
    assert opened == data
    assert during_python == 0, "control failed: the counter advanced while the GIL was held"
    assert during_seal > 0, "seal_bytes held the GIL for the whole call"
    assert during_open > 0, "open_bytes held the GIL for the whole call"
