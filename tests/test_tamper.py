"""The tamper matrix for the native package: whatever is done to a sealed file's bytes,
reading it raises IntegrityError or FormatError and returns no plaintext.

Files are written through ``open_spill(..., "wb")`` and read back through
``open_spill(..., "rb")`` and (for the exhaustive sweeps, which would be slow through
the file system) the in-memory ``exitless.open_bytes``. Segment size 256 keeps every
stream a few hundred bytes to a couple of kilobytes, so every offset can be tried.

Layout (docs/FORMAT.md): a 68-byte header, then segment 0 at [68, S), segment i >= 1
at [i*S, (i+1)*S); P0 = S - 84 plaintext bytes in segment 0 and P = S - 16 after.
"""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import pytest

import exitless
from exitless import FormatError, IntegrityError

H = 68
T = 16
S = 256
P0 = S - H - T  # 172
P = S - T  # 240
ALGORITHMS = ["aes-256-gcm", "chacha20-poly1305"]
CTX = b"app-7/shuffle-3/partition-12"

# 0, 1, segment-1, segment, segment+1 and 5.5 segments, in terms of both P0 (the first
# segment's capacity) and P (every later segment's), plus exact multi-segment fills.
SIZES = sorted(
    {
        0,
        1,
        P0 - 1,
        P0,
        P0 + 1,
        P - 1,
        P,
        P + 1,
        P0 + P,  # two full segments, no empty final segment
        P0 + P + 1,
        P0 + 2 * P,
        P0 + 4 * P + P // 2,  # 5.5 segments: 0, 1..4 full, a half-full final one
        int(5.5 * P),
    }
)
SIX_SEGMENTS = P0 + 4 * P + P // 2


# --------------------------------------------------------------------------- helpers


def plaintext(n: int, seed: int = 0) -> bytes:
    """Deterministic, never-all-zero plaintext (bytes 1..251)."""
    return bytes((i * 7 + seed) % 251 + 1 for i in range(n))


def segment_count(m: int, s: int = S) -> int:
    p0, p = s - H - T, s - T
    return 1 if m <= p0 else 1 + -(-(m - p0) // p)


def segment_bounds(length: int, s: int = S) -> list[tuple[int, int]]:
    """[start, end) of every ciphertext segment (ciphertext ‖ tag) of a file of ``length`` bytes."""
    n = 1 if length <= s else 1 + -(-(length - s) // s)
    return [(H if i == 0 else i * s, length if i == n - 1 else (i + 1) * s) for i in range(n)]


def plaintext_start(index: int, s: int = S) -> int:
    return 0 if index == 0 else (s - H - T) + (index - 1) * (s - T)


def write_stream(
    path: Path, data: bytes, key, algorithm: str, context: bytes = CTX, *, s: int = S, chunk: int = 97
) -> bytes:
    """Writes ``data`` through the file writer in several calls; returns the file's bytes."""
    with exitless.open_spill(path, "wb", key, context, segment_size=s, algorithm=algorithm) as w:
        for i in range(0, len(data), chunk):
            w.write(data[i : i + chunk])
        assert w.tell() == len(data)
    blob = path.read_bytes()
    assert len(blob) == exitless.sealed_length(len(data), s)
    return blob


def read_file(path: Path, key, context: bytes = CTX) -> bytes:
    with exitless.open_spill(path, "rb", key, context) as r:
        return r.read()


def expected_header_error(header: bytes) -> type[Exception]:
    """Which error a header that differs from a valid one must give (FORMAT.md section 2):
    a broken parsing rule is a FormatError; anything else changes the stream key."""
    seg = int.from_bytes(header[8:12], "big")
    if (
        header[:4] != b"EXLS"
        or header[4] != 1
        or header[5] not in (1, 2)
        or header[6:8] != b"\x00\x44"
        or not 256 <= seg <= 1 << 30
        or header[67] != 0
    ):
        return FormatError
    return IntegrityError


def open_bytes_outcome(blob: bytes, key, context: bytes = CTX):
    """The error class opening ``blob`` raised, or the plaintext it (wrongly) returned."""
    try:
        return exitless.open_bytes(blob, key, context)
    except (IntegrityError, FormatError) as e:
        return type(e)


def file_outcome(path: Path, blob: bytes, key, context: bytes = CTX):
    """Like :func:`open_bytes_outcome`, through the file reader's whole-file read."""
    path.write_bytes(blob)
    result = None
    try:
        with exitless.open_spill(path, "rb", key, context) as r:
            result = r.read()
    except (IntegrityError, FormatError) as e:
        assert result is None
        return type(e)
    return result


@pytest.fixture(params=ALGORITHMS)
def algorithm(request) -> str:
    return request.param


# --------------------------------------------------------------------------- sanity


@pytest.mark.parametrize("size", SIZES)
def test_untampered_stream_reads_back(tmp_path, key, algorithm, size):
    """The baseline the matrix depends on: the unmodified files do open."""
    data = plaintext(size)
    blob = write_stream(tmp_path / "s", data, key, algorithm)
    assert len(blob) == H + size + segment_count(size) * T
    assert blob[5] == {"aes-256-gcm": 1, "chacha20-poly1305": 2}[algorithm]
    assert exitless.open_bytes(blob, key, CTX) == data
    assert read_file(tmp_path / "s", key) == data


# --------------------------------------------------------------------------- single-byte flips


@pytest.mark.parametrize("size", SIZES)
def test_every_single_byte_flip_is_rejected_in_memory(tmp_path, key, algorithm, size):
    """Every offset of the file (header, every ciphertext and every tag byte), with a
    one-bit and an all-bits flip, fails with the right class and returns nothing."""
    blob = write_stream(tmp_path / "s", plaintext(size), key, algorithm)
    wrong = []
    for off in range(len(blob)):
        for mask in (1 << (off % 8), 0xFF):
            bad = bytearray(blob)
            bad[off] ^= mask
            expected = expected_header_error(bytes(bad[:H])) if off < H else IntegrityError
            got = open_bytes_outcome(bytes(bad), key)
            if got is not expected:
                wrong.append((off, mask, got if isinstance(got, type) else f"returned {len(got)} bytes"))
    assert wrong == [], f"{len(wrong)} flips not rejected as expected, first: {wrong[:5]}"


def sampled_offsets(length: int) -> list[int]:
    """Every header byte, and the first and last byte of each segment's ciphertext and tag."""
    offsets = set(range(H))
    for a, b in segment_bounds(length):
        offsets |= {a, b - T - 1, b - T, b - 1}
    return sorted(o for o in offsets if H <= o < length or o < H)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_sampled_byte_flips_are_rejected_by_the_file_reader(tmp_path, key, algorithm, size):
    blob = write_stream(tmp_path / "s", plaintext(size), key, algorithm)
    target = tmp_path / "tampered"
    wrong = []
    for off in sampled_offsets(len(blob)):
        bad = bytearray(blob)
        # 0x80: a flip of the segment size's top byte leaves the allowed range (a FormatError);
        # a huge in-range size is the subject of test_tampered_segment_size_*.
        bad[off] ^= 0x80
        expected = expected_header_error(bytes(bad[:H])) if off < H else IntegrityError
        got = file_outcome(target, bytes(bad), key)
        if got is not expected:
            wrong.append((off, got if isinstance(got, type) else f"returned {len(got)} bytes"))
    assert wrong == [], f"{len(wrong)} flips not rejected as expected, first: {wrong[:5]}"


@pytest.mark.parametrize("off", [0, 3, 4, 5, 6, 7, 8, 67])
def test_header_rule_violations_are_format_errors_naming_the_file(tmp_path, key, off):
    blob = bytearray(write_stream(tmp_path / "s", plaintext(300), key, "aes-256-gcm"))
    blob[off] ^= 0xFF
    target = tmp_path / "bad-header"
    target.write_bytes(blob)
    with pytest.raises(FormatError) as info:
        exitless.open_spill(target, "rb", key, CTX)
    assert str(target) in str(info.value)


@pytest.mark.parametrize("off", [12, 27, 28, 59, 60, 66])
def test_key_id_salt_and_prefix_changes_are_integrity_errors(tmp_path, key, off):
    """Fields that are not parsed still enter the key derivation."""
    blob = bytearray(write_stream(tmp_path / "s", plaintext(300), key, "aes-256-gcm"))
    blob[off] ^= 0x01
    assert file_outcome(tmp_path / "t", bytes(blob), key) is IntegrityError


MAXRSS_PROBE = r"""
import resource, sys, time
import exitless
key = exitless.Key(bytes.fromhex(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    exitless.open_spill(sys.argv[1], "rb", key, b"ctx").read()
    outcome = "opened"
except exitless.ExitlessError as e:
    outcome = type(e).__name__
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome, (after - before) // 1024, round(elapsed, 3))
"""


@pytest.mark.parametrize("claimed", [1 << 30, (1 << 29) + 256])
def test_tampered_segment_size_does_not_make_the_reader_allocate_it(tmp_path, claimed):
    """The segment size in the (unauthenticated) header is attacker-controlled. A 1.5 KB
    file claiming S = 1 GiB has only one segment of ~1.4 KB; opening it must fail without
    the reader allocating (and zeroing) a buffer of the claimed segment size."""
    import subprocess
    import sys

    raw_key = bytes(range(32))
    blob = bytearray(exitless.seal_bytes(plaintext(1252), raw_key, b"ctx", segment_size=S))
    blob[8:12] = claimed.to_bytes(4, "big")
    path = tmp_path / "claims-huge-segments"
    path.write_bytes(blob)
    assert exitless.inspect(path).segment_size == claimed
    assert open_bytes_outcome(bytes(blob), raw_key, b"ctx") is IntegrityError
    out = subprocess.run(
        [sys.executable, "-c", MAXRSS_PROBE, str(path), raw_key.hex()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    outcome, grew_mib, seconds = out.stdout.split()
    assert outcome == "IntegrityError"
    assert int(grew_mib) < 64, (
        f"opening a {len(blob)}-byte file grew the reader's RSS by {grew_mib} MiB ({seconds} s)"
    )


LIMITED_PROBE = r"""
import resource, sys
import exitless
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
try:
    exitless.open_spill(sys.argv[1], "rb", bytes(range(32)), b"ctx").read()
    print("opened")
except exitless.ExitlessError as e:
    print(type(e).__name__)
"""


def test_tampered_segment_size_under_a_memory_limit_raises_instead_of_aborting(tmp_path):
    """Under a 512 MiB address-space limit (think: an enclave heap), a 1.4 KB file whose
    header claims S = 1 GiB must raise IntegrityError, not abort the process."""
    import subprocess
    import sys

    blob = bytearray(exitless.seal_bytes(plaintext(1252), bytes(range(32)), b"ctx", segment_size=S))
    blob[8:12] = (1 << 30).to_bytes(4, "big")
    path = tmp_path / "claims-huge-segments"
    path.write_bytes(blob)
    out = subprocess.run(
        [sys.executable, "-c", LIMITED_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    assert (out.returncode, out.stdout.strip()) == (0, "IntegrityError"), (
        f"exit status {out.returncode}, stderr: {out.stderr.strip()[:200]}"
    )


# --------------------------------------------------------------------------- truncation


def boundary_cuts(length: int) -> list[int]:
    cuts = {H - 1, H, H + 1}
    for k in range(length // S + 2):
        cuts |= {k * S - 1, k * S, k * S + 1}
    return sorted(c for c in cuts if 0 <= c < length)


@pytest.mark.parametrize("size", SIZES)
def test_truncation_at_segment_and_header_boundaries(tmp_path, key, algorithm, size):
    blob = write_stream(tmp_path / "s", plaintext(size), key, algorithm)
    target = tmp_path / "cut"
    wrong = []
    for cut in boundary_cuts(len(blob)):
        got = file_outcome(target, blob[:cut], key)
        if got is not IntegrityError:
            wrong.append((cut, got if isinstance(got, type) else f"returned {len(got)} bytes"))
    assert wrong == [], f"truncations not reported as IntegrityError: {wrong[:5]}"


@pytest.mark.parametrize("size", SIZES)
def test_truncation_to_any_length_never_succeeds(tmp_path, key, algorithm, size):
    blob = write_stream(tmp_path / "s", plaintext(size), key, algorithm)
    wrong = [cut for cut in range(len(blob)) if open_bytes_outcome(blob[:cut], key) is not IntegrityError]
    assert wrong == [], f"truncations not reported as IntegrityError: {wrong[:10]}"


def test_truncation_is_reported_at_open_before_any_plaintext(tmp_path, key, algorithm):
    """The final segment is checked when the reader opens (FORMAT.md section 5)."""
    blob = write_stream(tmp_path / "s", plaintext(SIX_SEGMENTS), key, algorithm)
    target = tmp_path / "cut"
    for cut in (5 * S, 4 * S, 2 * S, S, 5 * S + 20):
        target.write_bytes(blob[:cut])
        with pytest.raises(IntegrityError) as info:
            exitless.open_spill(target, "rb", key, CTX)
        assert str(target) in str(info.value)


# --------------------------------------------------------------------------- reordering, splicing


def seg(blob: bytes, i: int) -> bytes:
    a, b = segment_bounds(len(blob))[i]
    return blob[a:b]


def put_seg(blob: bytes, i: int, new: bytes) -> bytes:
    a, b = segment_bounds(len(blob))[i]
    return blob[:a] + new + blob[b:]


def structural_attacks(blob: bytes, other: bytes) -> dict[str, bytes]:
    """Attacks on a 6-segment stream ``blob``; ``other`` is another stream of the same
    length under the same key and context."""
    n = len(segment_bounds(len(blob)))
    assert n == 6 and len(other) == len(blob)
    attacks = {
        "swap 1,2": put_seg(put_seg(blob, 1, seg(blob, 2)), 2, seg(blob, 1)),
        "swap 3,4": put_seg(put_seg(blob, 3, seg(blob, 4)), 4, seg(blob, 3)),
        "duplicate 1 over 2": put_seg(blob, 2, seg(blob, 1)),
        "duplicate 4 over 3": put_seg(blob, 3, seg(blob, 4)),
        "insert copy of 2": blob[: 3 * S] + seg(blob, 2) + blob[3 * S :],
        "drop last": blob[: 5 * S],
        "drop middle (2)": blob[: 2 * S] + blob[3 * S :],
        "drop first full segment after 0": blob[:S] + blob[2 * S :],
        "header from other stream": other[:H] + blob[H:],
        "body from other stream": blob[:H] + other[H:],
        "final segment from other stream": blob[: 5 * S] + other[5 * S :],
        "final segment from own segment 4, cut to size": blob[: 5 * S] + seg(blob, 4)[: len(seg(blob, 5))],
    }
    for i in range(6):
        attacks[f"splice segment {i} from other stream"] = put_seg(blob, i, seg(other, i))
    return attacks


def test_structural_attacks_are_integrity_errors(tmp_path, key, algorithm):
    data = plaintext(SIX_SEGMENTS)
    blob = write_stream(tmp_path / "a", data, key, algorithm)
    other = write_stream(tmp_path / "b", plaintext(SIX_SEGMENTS, seed=1), key, algorithm)
    target = tmp_path / "t"
    wrong = {}
    for name, bad in structural_attacks(blob, other).items():
        assert bad != blob, name
        for how, got in (("memory", open_bytes_outcome(bad, key)), ("file", file_outcome(target, bad, key))):
            if got is not IntegrityError:
                wrong[f"{name} ({how})"] = got if isinstance(got, type) else f"returned {len(got)} bytes"
    assert wrong == {}


def test_splice_from_a_stream_with_identical_plaintext(tmp_path, key, algorithm):
    """Even when the other stream holds the very same plaintext, its segments do not fit."""
    data = plaintext(SIX_SEGMENTS)
    blob = write_stream(tmp_path / "a", data, key, algorithm)
    other = write_stream(tmp_path / "b", data, key, algorithm)
    assert blob[28:67] != other[28:67]  # fresh salt and nonce prefix per stream
    for i in range(6):
        assert file_outcome(tmp_path / "t", put_seg(blob, i, seg(other, i)), key) is IntegrityError, i


def test_reordering_a_full_final_segment(tmp_path, key, algorithm):
    """Three segments, all full: the final one can be swapped with segment 1."""
    blob = write_stream(tmp_path / "a", plaintext(P0 + 2 * P), key, algorithm)
    assert len(blob) == 3 * S
    swapped = blob[:S] + blob[2 * S :] + blob[S : 2 * S]
    assert open_bytes_outcome(swapped, key) is IntegrityError
    assert file_outcome(tmp_path / "t", swapped, key) is IntegrityError


@pytest.mark.parametrize("size", [0, 1, P0, P0 + P, SIX_SEGMENTS])
def test_wrong_key_and_wrong_context_fail_at_open(tmp_path, key, algorithm, size):
    path = tmp_path / "s"
    blob = write_stream(path, plaintext(size), key, algorithm)
    for other_key, other_ctx in (
        (exitless.generate_key(), CTX),
        (key, CTX + b"x"),
        (key, CTX[:-1]),
        (key, b""),
        (bytes(32), CTX),
    ):
        with pytest.raises(IntegrityError) as info:
            exitless.open_spill(path, "rb", other_key, other_ctx)
        assert str(path) in str(info.value)
        assert open_bytes_outcome(blob, other_key, other_ctx) is IntegrityError


# --------------------------------------------------------------------------- extension


@pytest.mark.parametrize("size", SIZES)
def test_trailing_bytes_are_integrity_errors(tmp_path, key, algorithm, size):
    blob = write_stream(tmp_path / "s", plaintext(size), key, algorithm)
    last = seg(blob, len(segment_bounds(len(blob))) - 1)
    tails = {
        "one zero byte": b"\x00",
        "15 bytes": b"\x01" * 15,
        "16 bytes": b"\x02" * 16,
        "17 bytes": os.urandom(17),
        "a whole segment of zeros": bytes(S),
        "a copy of the final segment": last,
        "a copy of the file": blob,
        "a fresh empty stream": exitless.seal_bytes(b"", key, CTX, segment_size=S, algorithm=algorithm),
    }
    target = tmp_path / "t"
    wrong = {}
    for name, tail in tails.items():
        for how, got in (
            ("memory", open_bytes_outcome(blob + tail, key)),
            ("file", file_outcome(target, blob + tail, key)),
        ):
            if got is not IntegrityError:
                wrong[f"{name} ({how})"] = got if isinstance(got, type) else f"returned {len(got)} bytes"
    assert wrong == {}


# --------------------------------------------------------------------------- no plaintext from a failing stream


@pytest.fixture
def tampered_middle(tmp_path, key, algorithm):
    """A six-segment file whose segment 3 (a full middle segment) has one flipped byte."""
    data = plaintext(SIX_SEGMENTS)
    blob = bytearray(write_stream(tmp_path / "s", data, key, algorithm))
    a, b = segment_bounds(len(blob))[3]
    blob[(a + b) // 2] ^= 0x04
    path = tmp_path / "tampered"
    path.write_bytes(blob)
    return path, data


def test_whole_file_read_of_tampered_middle_returns_nothing(key, tampered_middle):
    path, data = tampered_middle
    result = None
    r = exitless.open_spill(path, "rb", key, CTX)  # the final segment is intact: open succeeds
    assert r.size == len(data)
    with pytest.raises(IntegrityError) as info:
        result = r.read()
    assert result is None
    assert str(path) in str(info.value) and "segment 3" in str(info.value)
    r.close()
    with pytest.raises(IntegrityError), exitless.open_spill(path, "rb", key, CTX) as r:
        result = r.readall()
    assert result is None


def test_readinto_of_tampered_middle_raises_and_holds_no_bad_segment_bytes(key, tampered_middle):
    path, data = tampered_middle
    buf = bytearray(len(data))
    with exitless.open_spill(path, "rb", key, CTX) as r, pytest.raises(IntegrityError):
        r.readinto(buf)
    # Whatever the reader copied before it failed, nothing of the failed segment (or later) is there.
    assert buf[plaintext_start(3) :] == bytes(len(data) - plaintext_start(3))
    with exitless.open_spill(path, "rb", key, CTX) as r, pytest.raises(IntegrityError):
        r.readinto(memoryview(bytearray(len(data))))


@pytest.mark.skipif(not hasattr(exitless, "open_into"), reason="exitless.open_into not available")
def test_open_into_leaves_no_plaintext_in_the_buffer(tmp_path, key, algorithm):
    """The in-memory open into a caller's buffer wipes what it wrote when a later segment fails."""
    data = plaintext(SIX_SEGMENTS)
    blob = bytearray(write_stream(tmp_path / "s", data, key, algorithm))
    a, _ = segment_bounds(len(blob))[4]
    blob[a + 1] ^= 0x10
    out = bytearray(len(blob))
    with pytest.raises(IntegrityError):
        exitless.open_into(bytes(blob), out, key, CTX)
    assert out == bytes(len(blob)), "plaintext of the authenticated segments was left in the buffer"


def test_chunked_reads_stop_before_the_tampered_segment(key, tampered_middle):
    path, data = tampered_middle
    got = bytearray()
    with exitless.open_spill(path, "rb", key, CTX) as r, pytest.raises(IntegrityError):
        while chunk := r.read(50):
            got += chunk
    assert len(got) <= plaintext_start(3)
    assert bytes(got) == data[: len(got)]


def test_random_access_still_opens_intact_segments(key, tampered_middle):
    """Segments are authenticated one by one: the intact ones remain readable, the bad one never is."""
    path, data = tampered_middle
    with exitless.open_spill(path, "rb", key, CTX) as r:
        r.seek(plaintext_start(4) + 3)
        assert r.read(10) == data[plaintext_start(4) + 3 : plaintext_start(4) + 13]
        r.seek(plaintext_start(3) + P - 1)
        with pytest.raises(IntegrityError):
            r.read(1)
        r.seek(plaintext_start(2))
        with pytest.raises(IntegrityError):
            r.read(P + 1)  # crosses into segment 3
        r.seek(0)
        assert r.read(P0) == data[:P0]


def test_tampered_final_segment_fails_at_open(tmp_path, key, algorithm):
    blob = bytearray(write_stream(tmp_path / "s", plaintext(SIX_SEGMENTS), key, algorithm))
    blob[-1] ^= 0x01
    path = tmp_path / "t"
    path.write_bytes(blob)
    with pytest.raises(IntegrityError):
        exitless.open_spill(path, "rb", key, CTX)


def test_spill_file_detects_tampering_after_it_switched_to_reading(tmp_path, key, algorithm):
    """w+b: bytes changed on disk after the stream was finished are caught when read."""
    path = tmp_path / "spill"
    data = plaintext(SIX_SEGMENTS)
    with exitless.open_spill(path, "w+b", key, CTX, segment_size=S, algorithm=algorithm) as f:
        f.write(data)
        assert f.seek(0) == 0  # finishes the stream and opens it for reading
        with open(path, "r+b") as raw:  # same inode, changed in place
            raw.seek(2 * S + 5)
            byte = raw.read(1)
            raw.seek(2 * S + 5)
            raw.write(bytes([byte[0] ^ 1]))
        result = None
        with pytest.raises(IntegrityError):
            result = f.read()
        assert result is None


# --------------------------------------------------------------------------- incomplete writers

ABORT_SIZES = [0, 1, P0 - 1, P0, P0 + 1, P0 + P, P0 + P + 1, P0 + 3 * P + 5, SIX_SEGMENTS]


class Boom(Exception):
    pass


class BoomBase(BaseException):
    pass


def assert_incomplete(path: Path, key, written: bytes) -> None:
    """The file exists and reads back as an IntegrityError, never as a (shorter) stream."""
    assert path.exists()
    blob = path.read_bytes()
    got = open_bytes_outcome(blob, key)
    assert got is IntegrityError, (
        f"the unfinished stream opens as a complete stream of {len(got)} bytes"
        if isinstance(got, bytes)
        else got
    )
    result = None
    with pytest.raises(IntegrityError):
        result = read_file(path, key)
    assert result is None
    assert len(blob) < exitless.sealed_length(len(written), S)


@pytest.mark.parametrize("size", ABORT_SIZES)
@pytest.mark.parametrize("exc", [Boom, BoomBase])
def test_writer_with_block_that_raises_leaves_an_incomplete_file(tmp_path, key, algorithm, size, exc):
    path = tmp_path / "w"
    data = plaintext(size)
    with (
        pytest.raises(exc),
        exitless.open_spill(path, "wb", key, CTX, segment_size=S, algorithm=algorithm) as w,
    ):
        for i in range(0, size, 100):
            w.write(data[i : i + 100])
        assert w.tell() == size
        raise exc("failed mid-spill")
    assert w.closed
    assert_incomplete(path, key, data)


@pytest.mark.parametrize("size", ABORT_SIZES)
def test_explicit_abort_leaves_an_incomplete_file(tmp_path, key, algorithm, size):
    path = tmp_path / "w"
    data = plaintext(size)
    w = exitless.open_spill(path, "wb", key, CTX, segment_size=S, algorithm=algorithm)
    w.write(data)
    w.abort()
    assert w.closed
    w.close()  # closing after abort does not complete the stream
    assert_incomplete(path, key, data)


@pytest.mark.parametrize("size", ABORT_SIZES)
def test_writer_dropped_without_close_warns_and_leaves_an_incomplete_file(tmp_path, key, algorithm, size):
    path = tmp_path / "w"
    data = plaintext(size)
    w = exitless.open_spill(path, "wb", key, CTX, segment_size=S, algorithm=algorithm)
    w.write(data)
    with pytest.warns(ResourceWarning, match="never closed"):
        del w
        gc.collect()
    assert_incomplete(path, key, data)


@pytest.mark.parametrize("size", [1, P0 + P + 1, SIX_SEGMENTS])
def test_spill_file_with_block_that_raises_leaves_an_incomplete_file(tmp_path, key, algorithm, size):
    path = tmp_path / "w"
    data = plaintext(size)
    with (
        pytest.raises(Boom),
        exitless.open_spill(path, "w+b", key, CTX, segment_size=S, algorithm=algorithm) as f,
    ):
        f.write(data)
        raise Boom()
    assert_incomplete(path, key, data)


@pytest.mark.parametrize("size", [1, P0 + P + 1, SIX_SEGMENTS])
def test_spill_file_dropped_without_close_leaves_an_incomplete_file(tmp_path, key, algorithm, size):
    """A w+b spill file is a writer until it is read: dropped unclosed it must be aborted
    like a SealedWriter (with a ResourceWarning), not sealed as a complete stream."""
    path = tmp_path / "w"
    data = plaintext(size)
    f = exitless.open_spill(path, "w+b", key, CTX, segment_size=S, algorithm=algorithm)
    f.write(data[: size // 2 + 1])  # a task that failed half way through its spill
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del f
        gc.collect()
    assert_incomplete(path, key, data[: size // 2 + 1])
    assert any(issubclass(w.category, ResourceWarning) for w in caught), [str(w.message) for w in caught]


# --------------------------------------------------------------------------- format version 2 (key envelope)

ENVELOPE = bytes(range(59))  # the shape of a scheme-2 WrappedKey; opaque to the format
H2 = 72 + len(ENVELOPE)
V2_CANARY = b"v2-canary-c0ffee!"


def _v2_file(tmp_path: Path, algorithm: str, n: int) -> tuple[Path, bytes, bytes]:
    key = exitless.generate_key()
    pt = (V2_CANARY * (n // len(V2_CANARY) + 1))[:n]
    path = tmp_path / f"v2-{algorithm}-{n}.exls"
    with exitless.open_spill(
        path,
        "wb",
        key,
        CTX,
        segment_size=S,
        algorithm=algorithm,
        envelope=ENVELOPE,
        key_id=b"\x33" * 16,
        backend="sync",
    ) as f:
        f.write(pt)
    return path, path.read_bytes(), key.secret_bytes()


def _read_v2(path: Path, key: bytes) -> bytes:
    with exitless.open_spill(path, "rb", key, CTX, backend="sync") as f:
        return f.read()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("n", [0, 1, S - H2 - T, 1000])
def test_v2_every_header_and_envelope_bit_flip_fails(tmp_path: Path, algorithm: str, n: int) -> None:
    path, good, key = _v2_file(tmp_path, algorithm, n)
    assert _read_v2(path, key) == (V2_CANARY * (n // len(V2_CANARY) + 1))[:n]
    assert exitless.inspect(path).envelope == ENVELOPE
    bad = path.with_suffix(".bad")
    for i in range(H2):
        for bit in range(8):
            b = bytearray(good)
            b[i] ^= 1 << bit
            bad.write_bytes(bytes(b))
            expected = IntegrityError if i >= 72 else (FormatError, IntegrityError)
            with pytest.raises(expected):
                _read_v2(bad, key)
            with pytest.raises(expected):
                exitless.open_bytes(bytes(b), key, CTX)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_v2_truncation_and_ciphertext_flips_fail(tmp_path: Path, algorithm: str) -> None:
    path, good, key = _v2_file(tmp_path, algorithm, 1000)
    bad = path.with_suffix(".bad")
    for cut in [1, 4, 67, 68, 70, 71, 72, 100, H2 - 1, H2, H2 + T - 1, H2 + T, S, S + 1, len(good) - 1]:
        bad.write_bytes(good[:cut])
        with pytest.raises(IntegrityError):
            _read_v2(bad, key)
        with pytest.raises(IntegrityError):
            exitless.inspect(bad) if cut < H2 + T else _read_v2(bad, key)
    for i in range(H2, len(good), 7):
        b = bytearray(good)
        b[i] ^= 0x40
        bad.write_bytes(bytes(b))
        with pytest.raises(IntegrityError):
            _read_v2(bad, key)
    assert V2_CANARY not in good
