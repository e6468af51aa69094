"""Tests for the independent reference of the sealed stream format (docs/FORMAT.md).

Three groups, selectable with ``-k``:
- self-tests of ``reference_format`` (no ``cross``/``vector`` in their names);
- ``vector`` tests against the normative vectors of FORMAT.md section 8 (fail if absent);
- ``cross`` tests against the native package ``exitless`` (fail if it is not importable).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import reference_format as rf
from reference_format import H, ReferenceFormatError, ReferenceIntegrityError, T

FORMAT_MD = Path(__file__).parent.parent / "docs" / "FORMAT.md"
KEY = bytes(range(32))
CTX = b"app-id/shuffle-3/partition-7"
AEAD_IDS = [1, 2]
ALGORITHMS = {1: "aes-256-gcm", 2: "chacha20-poly1305"}
SEGMENT_SIZES = [256, 4096]


def capacities(s: int) -> tuple[int, int]:
    """(P0, P) for segment size ``s`` (section 4)."""
    return s - H - T, s - T


def interesting_sizes(s: int) -> list[int]:
    """0, 1, P0-1, P0, P0+1, P0+P and 5.5 segments (P0 + 4P + P/2)."""
    p0, p = capacities(s)
    return [0, 1, p0 - 1, p0, p0 + 1, p0 + p, p0 + 4 * p + p // 2]


def segment_count(m: int, s: int) -> int:
    p0, p = capacities(s)
    return 1 if m <= p0 else 1 + -(-(m - p0) // p)


def pattern(m: int) -> bytes:
    return bytes(i % 251 for i in range(m))


def sealed(m: int, s: int = 256, aead_id: int = 1, ctx: bytes = CTX, key: bytes = KEY) -> bytes:
    return rf.seal(key, pattern(m), ctx, segment_size=s, aead_id=aead_id)


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def segment_bounds(n: int, s: int, length: int) -> list[tuple[int, int]]:
    """Byte ranges of the n ciphertext segments (section 4 placement)."""
    return [(H if i == 0 else i * s, length if i == n - 1 else (i + 1) * s) for i in range(n)]


def aead(aead_id: int, key: bytes):
    return rf._AEADS[aead_id](key)


# --------------------------------------------------------------------------- self-tests

ROUND_TRIP_CASES = [(a, s, m) for a in AEAD_IDS for s in SEGMENT_SIZES for m in interesting_sizes(s)]


@pytest.mark.parametrize("aead_id,s,m", ROUND_TRIP_CASES)
def test_round_trip(aead_id: int, s: int, m: int) -> None:
    pt = os.urandom(m)
    data = rf.seal(KEY, pt, CTX, segment_size=s, aead_id=aead_id)
    assert rf.open_sealed(KEY, data, CTX) == pt
    assert len(data) == H + m + segment_count(m, s) * T == rf.sealed_length(m, s)


@pytest.mark.parametrize("aead_id,s,m", ROUND_TRIP_CASES)
def test_length_formula_and_layout(aead_id: int, s: int, m: int) -> None:
    data = sealed(m, s, aead_id)
    n = segment_count(m, s)
    assert len(data) == H + m + n * T
    n_read, c = rf.stream_layout(len(data), s)
    assert n_read == n
    p0, p = capacities(s)
    assert (c - T if n == 1 else p0 + (n - 2) * p + (c - T)) == m  # section 5 plaintext length
    if m > 0:  # a writer never emits an empty final segment
        assert c > T


@pytest.mark.parametrize("aead_id", AEAD_IDS)
@pytest.mark.parametrize("s", [*SEGMENT_SIZES, 65536, 1 << 30])
def test_empty_stream_is_84_bytes(aead_id: int, s: int) -> None:
    data = rf.seal(KEY, b"", b"", segment_size=s, aead_id=aead_id)
    assert len(data) == 84 == H + T
    assert rf.open_sealed(KEY, data) == b""


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_header_bytes(aead_id: int) -> None:
    key_id, salt, prefix = os.urandom(16), os.urandom(32), os.urandom(7)
    data = rf.seal(
        KEY, b"x", segment_size=4096, aead_id=aead_id, key_id=key_id, salt=salt, nonce_prefix=prefix
    )
    assert data[:4] == bytes.fromhex("45584c53") and data[4] == 1 and data[5] == aead_id
    assert data[6:8] == b"\x00\x44" and data[8:12] == (4096).to_bytes(4, "big")
    assert data[12:28] == key_id and data[28:60] == salt and data[60:67] == prefix and data[67] == 0
    hdr = rf.parse_header(data)
    assert (hdr["aead_id"], hdr["segment_size"], hdr["key_id"], hdr["salt"], hdr["nonce_prefix"]) == (
        aead_id,
        4096,
        key_id,
        salt,
        prefix,
    )
    assert rf.parse_header(data[:H]) == hdr  # a bare header parses too


def test_key_derivation_by_hand() -> None:
    """HKDF per RFC 5869 written with hmac, and the label bytes as given in hex."""
    assert bytes.fromhex("6578 6974 6c65 7373 2073 7472 6561 6d20 7631") == rf.KDF_LABEL
    data = sealed(10)
    header = data[:H]
    prk = hmac.new(header[28:60], KEY, hashlib.sha256).digest()
    okm = hmac.new(prk, rf.KDF_LABEL + header + CTX + b"\x01", hashlib.sha256).digest()
    assert rf.derive_stream_key(KEY, header, CTX) == okm


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_segment_placement_and_nonces(aead_id: int) -> None:
    """Each segment opens on its own at its section-4 slot with its section-4 nonce."""
    s = 256
    p0, p = capacities(s)
    m = p0 + 4 * p + p // 2
    pt = pattern(m)
    data = rf.seal(KEY, pt, CTX, segment_size=s, aead_id=aead_id)
    n = segment_count(m, s)
    cipher = aead(aead_id, rf.derive_stream_key(KEY, data[:H], CTX))
    pieces = []
    for i, (a, b) in enumerate(segment_bounds(n, s, len(data))):
        nonce = data[60:67] + struct.pack(">I", i) + bytes([i == n - 1])
        pieces.append(cipher.decrypt(nonce, data[a:b], b""))
        if i < n - 1:
            assert len(pieces[-1]) == (p0 if i == 0 else p)
    assert b"".join(pieces) == pt
    for off in (0, p0 - 1, p0, p0 + p, m - 1):  # random-access offset mapping
        i = 0 if off < p0 else 1 + (off - p0) // p
        within = off if i == 0 else (off - p0) % p
        assert pieces[i][within] == pt[off]


def test_random_and_fixed_salt_prefix() -> None:
    a, b = sealed(5), sealed(5)
    assert a[28:67] != b[28:67]
    fixed = dict(segment_size=256, salt=bytes(32), nonce_prefix=bytes(7))
    assert rf.seal(KEY, b"abc", **fixed) == rf.seal(KEY, b"abc", **fixed)


@pytest.mark.parametrize("aead_id", AEAD_IDS)
@pytest.mark.parametrize("s", SEGMENT_SIZES)
def test_truncation_at_boundaries(aead_id: int, s: int) -> None:
    p0, p = capacities(s)
    for m in (p0, p0 + p, p0 + 4 * p + p // 2):
        data = sealed(m, s, aead_id)
        n = segment_count(m, s)
        cuts = {0, H} | {b + d for _, b in segment_bounds(n, s, len(data)) for d in (-1, 0, 1)}
        cuts |= {a + d for a, _ in segment_bounds(n, s, len(data)) for d in (-1, 0, 1)}
        for cut in sorted(x for x in cuts if 0 <= x < len(data)):
            with pytest.raises(ReferenceIntegrityError):
                rf.open_sealed(KEY, data[:cut], CTX)


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_every_truncation(aead_id: int) -> None:
    data = sealed(capacities(256)[0] + 2 * capacities(256)[1] + 7, 256, aead_id)
    for cut in range(len(data)):
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(KEY, data[:cut], CTX)


def expected_for_header_change(header: bytes) -> type[Exception]:
    """Oracle for a one-byte change of a valid header: which field moved decides."""
    aead_id, seg = header[5], int.from_bytes(header[8:12], "big")
    if (
        header[:4] != b"EXLS"
        or header[4] != 1
        or header[6:8] != b"\x00\x44"
        or header[67] != 0
        or aead_id not in (1, 2)
        or not 256 <= seg <= 1 << 30
    ):
        return ReferenceFormatError
    return ReferenceIntegrityError  # key id / salt / prefix / another valid value: KDF changes


@pytest.mark.parametrize("aead_id", AEAD_IDS)
@pytest.mark.parametrize("mask", [0x01, 0x80, 0x03, 0xFF])
def test_byte_flip_everywhere(aead_id: int, mask: int) -> None:
    s = 256
    p0, p = capacities(s)
    data = sealed(p0 + 3 * p + 100, s, aead_id)
    for off in range(len(data)):
        bad = flip(data, off, mask)
        expected = expected_for_header_change(bad[:H]) if off < H else ReferenceIntegrityError
        with pytest.raises(expected):
            rf.open_sealed(KEY, bad, CTX)


def test_header_flip_examples() -> None:
    data = sealed(10, 256)
    for off in (0, 3, 4, 5, 6, 7, 67):
        with pytest.raises(ReferenceFormatError):
            rf.open_sealed(KEY, flip(data, off), CTX)
    for off in (8, 11, 12, 27, 28, 59, 60, 66):  # 256 -> 16777472 / 257 stay in range
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(KEY, flip(data, off), CTX)
    with pytest.raises(ReferenceFormatError):  # 256 -> 0
        rf.open_sealed(KEY, flip(data, 10), CTX)
    with pytest.raises(ReferenceIntegrityError):  # AEAD id 01 -> 02 is valid: wrong key
        rf.open_sealed(KEY, flip(data, 5, 0x03), CTX)


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_reorder_duplicate_drop_splice(aead_id: int) -> None:
    s = 256
    p0, p = capacities(s)
    m = p0 + 4 * p + p // 2
    data = sealed(m, s, aead_id)
    seg = [data[a:b] for a, b in segment_bounds(segment_count(m, s), s, len(data))]
    head = data[:H]
    other = sealed(m, s, aead_id)  # same key and context, fresh salt and prefix
    other_seg = [other[a:b] for a, b in segment_bounds(segment_count(m, s), s, len(other))]
    assert head + b"".join(seg) == data
    variants = {
        "swap 1,2": head + seg[0] + seg[2] + seg[1] + b"".join(seg[3:]),
        "swap 3,4": head + b"".join(seg[:3]) + seg[4] + seg[3] + seg[5],
        "duplicate 1": head + seg[0] + seg[1] + seg[1] + b"".join(seg[3:]),
        "drop 2": head + b"".join(seg[:2]) + b"".join(seg[3:]),
        "splice 2": head + b"".join(seg[:2]) + other_seg[2] + b"".join(seg[3:]),
        "splice final": head + b"".join(seg[:-1]) + other_seg[-1],
        "other header": other[:H] + b"".join(seg),
    }
    for name, bad in variants.items():
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(KEY, bad, CTX)
        assert len(bad) == len(data) or name == "drop 2", name


@pytest.mark.parametrize("aead_id", AEAD_IDS)
@pytest.mark.parametrize("m", [0, 1, 172, 173, 412, 1000])
def test_wrong_key_context_and_trailing_bytes(aead_id: int, m: int) -> None:
    data = sealed(m, 256, aead_id)
    with pytest.raises(ReferenceIntegrityError):
        rf.open_sealed(flip(KEY, 0), data, CTX)
    with pytest.raises(ReferenceIntegrityError):
        rf.open_sealed(KEY, data, CTX + b"x")
    with pytest.raises(ReferenceIntegrityError):
        rf.open_sealed(KEY, data, b"")
    for extra in (b"\x00", bytes(T), bytes(T + 1), bytes(256), os.urandom(300)):
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(KEY, data + extra, CTX)


def craft(segments: list[tuple[bytes, bool]], s: int = 256, aead_id: int = 1) -> bytes:
    """A file whose segments are sealed authentically with caller-chosen last flags."""
    header = rf.seal(KEY, b"", CTX, segment_size=s, aead_id=aead_id)[:H]
    cipher = aead(aead_id, rf.derive_stream_key(KEY, header, CTX))
    return header + b"".join(
        cipher.encrypt(rf.segment_nonce(header[60:67], i, last), pt, None)
        for i, (pt, last) in enumerate(segments)
    )


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_final_segment_rules(aead_id: int) -> None:
    p0, p = capacities(256)
    ok = craft([(pattern(p0), False), (pattern(5), True)], aead_id=aead_id)
    assert rf.open_sealed(KEY, ok, CTX) == pattern(p0) + pattern(5)
    assert rf.open_sealed(KEY, craft([(b"", True)], aead_id=aead_id), CTX) == b""
    bad = [
        [(pattern(p0), False), (b"", True)],  # authentic empty final segment after a full one
        [(pattern(p0), False), (pattern(p), False), (b"", True)],
        [(pattern(5), False)],  # final segment sealed without the last flag
        [(b"", False)],
        [(pattern(p0), False), (pattern(5), False)],
        [(pattern(p0), True), (pattern(5), True)],  # last flag on a non-final segment
    ]
    for segments in bad:
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(KEY, craft(segments, aead_id=aead_id), CTX)


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def test_parsing_rules() -> None:
    good = sealed(10, 256)
    integrity = [
        b"",
        b"E",
        b"EX",
        b"EXL",
        b"EXLS",
        b"EXLS\x01",
        b"EXLS\x09\x09",
        good[: H - 1],
        good[:H],
        good[: H + T - 1],
        good[: H + T],
    ]
    fmt = [
        b"X",
        b"\x00",
        b"EXLX",
        b"EXL\x00",
        b"exls",
        b"PK\x03\x04" + bytes(20),
        bytes(H - 1),
        bytes(200),
        b"XXLS" + good[4:],
    ]
    fmt += [_with(good, 4, bytes([v])) for v in (0, 2, 255)]  # version
    fmt += [_with(good, 6, struct.pack(">H", v)) for v in (0, 67, 69, 0x4400)]  # header length
    fmt += [_with(good, 5, bytes([v])) for v in (0, 3, 255)]  # AEAD id
    fmt += [_with(good, 8, struct.pack(">I", v)) for v in (0, 255, (1 << 30) + 1, 2**32 - 1)]
    fmt += [_with(good, 67, bytes([v])) for v in (1, 0x80)]  # reserved
    for data in integrity:
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(KEY, data, CTX)
    for data in fmt:
        with pytest.raises(ReferenceFormatError):
            rf.open_sealed(KEY, data, CTX)
    # Rule order: magic before version before header length before AEAD id before size.
    with pytest.raises(ReferenceFormatError, match="magic"):
        rf.parse_header(_with(good, 0, b"XXLS\x02"))
    with pytest.raises(ReferenceFormatError, match="version"):  # 02 is version 2 now (section 9): use 03
        rf.parse_header(_with(good, 4, b"\x03\x09\x00\x45"))
    with pytest.raises(ReferenceFormatError, match="header length"):
        rf.parse_header(_with(good, 5, b"\x09\x00\x45\x00\x00\x00\x00"))
    with pytest.raises(ReferenceFormatError, match="AEAD"):
        rf.parse_header(_with(_with(good, 5, b"\x09"), 67, b"\x01"))
    with pytest.raises(ReferenceFormatError, match="segment size"):
        rf.parse_header(_with(_with(good, 8, bytes(4)), 67, b"\x01"))
    # Extremes of the segment size range parse.
    for v in (256, 1 << 30):
        assert rf.parse_header(_with(good, 8, struct.pack(">I", v)))["segment_size"] == v


def test_layout_limits() -> None:
    s = 256
    with pytest.raises(ReferenceIntegrityError):
        rf.stream_layout(H, s)
    assert rf.stream_layout(2**32 * s, s) == (2**32, s)  # exactly 2^32 segments
    with pytest.raises(ReferenceFormatError):
        rf.stream_layout(2**32 * s + 100, s)  # 2^32 + 1 segments
    # Both section-5 conditions hold: the listed order reports Integrity first.
    with pytest.raises(ReferenceIntegrityError):
        rf.stream_layout(2**32 * s + 1, s)


def test_seal_rejects_bad_arguments() -> None:
    bad = [
        dict(segment_size=255),
        dict(segment_size=(1 << 30) + 1),
        dict(aead_id=0),
        dict(aead_id=3),
        dict(salt=bytes(31)),
        dict(nonce_prefix=bytes(8)),
        dict(key_id=bytes(15)),
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            rf.seal(KEY, b"x", **kwargs)
    with pytest.raises(ValueError):
        rf.seal(KEY[:31], b"x")
    with pytest.raises(ValueError):
        rf.open_sealed(KEY + b"\x00", sealed(1))


def test_spec_block_parser_synthetic(tmp_path: Path) -> None:
    md = tmp_path / "f.md"
    md.write_text(
        "## 8. Test vectors\n\ntext\n\n### Vector 1: AES-256-GCM, empty plaintext\n```text\n"
        "aead          = 01\nsegment_size  = 256\nkey=00ff\nkey_id        =\ncontext       = \n"
        "plaintext_len = 0\nplaintext     =\nciphertext    = aabb\n  ccdd\n```\n\n"
        "### Vector 2 - ChaCha\n\nprose\n\n```\naead = 02\nsegment_size = 0x100\nplaintext_len = 3\n"
        "plaintext = 00 01 02\n```\n\n### Vector 3: no block\n\n## 9. Other\n```text\naead = 01\n```\n",
        encoding="utf-8",
    )
    v = rf.load_vectors(md)
    assert len(v) == 2
    assert v[0]["number"] == 1 and v[0]["title"] == "AES-256-GCM, empty plaintext"
    assert (v[0]["aead"], v[0]["segment_size"], v[0]["plaintext_len"]) == (1, 256, 0)
    assert v[0]["key"] == b"\x00\xff" and v[0]["key_id"] == v[0]["context"] == v[0]["plaintext"] == b""
    assert v[0]["ciphertext"] == bytes.fromhex("aabbccdd")
    assert (v[1]["number"], v[1]["aead"], v[1]["segment_size"], v[1]["plaintext"]) == (
        2,
        2,
        256,
        b"\x00\x01\x02",
    )


# --------------------------------------------------------------------------- vectors

VECTOR_FIELDS = (
    "aead",
    "segment_size",
    "key",
    "key_id",
    "salt",
    "nonce_prefix",
    "context",
    "plaintext_len",
    "plaintext",
    "ciphertext",
)


def spec_vectors() -> list[dict]:
    vectors = rf.load_vectors(FORMAT_MD)
    assert len(vectors) >= 3, f"expected at least 3 test vectors in {FORMAT_MD}, found {len(vectors)}"
    for v in vectors:
        missing = [f for f in VECTOR_FIELDS if f not in v]
        assert not missing, f"vector {v['number']} lacks {missing}"
    return vectors


def test_vectors_present_and_well_formed() -> None:
    vectors = spec_vectors()
    assert {v["aead"] for v in vectors} >= {1, 2}, "both AEAD ids must occur in the vectors"
    assert len({v["number"] for v in vectors}) == len(vectors), "duplicate vector numbers"
    for v in vectors:
        assert v["plaintext_len"] == len(v["plaintext"]), v["number"]
        if 2 <= v["number"] <= 5:  # sections 8, 9.3: plaintext is i mod 251
            assert v["plaintext"] == pattern(v["plaintext_len"]), v["number"]
        env_len = len(v.get("envelope", b""))
        assert len(v["ciphertext"]) == rf.sealed_length(len(v["plaintext"]), v["segment_size"], env_len), v[
            "number"
        ]
        hdr = rf.parse_header(v["ciphertext"])
        assert (hdr["aead_id"], hdr["segment_size"], hdr["key_id"], hdr["salt"], hdr["nonce_prefix"]) == (
            v["aead"],
            v["segment_size"],
            v["key_id"],
            v["salt"],
            v["nonce_prefix"],
        ), v["number"]


def test_vectors_open() -> None:
    for v in spec_vectors():
        assert rf.open_sealed(v["key"], v["ciphertext"], v["context"]) == v["plaintext"], v["number"]
        with pytest.raises(ReferenceIntegrityError):
            rf.open_sealed(v["key"], v["ciphertext"], v["context"] + b"\x00")


def _reseal(v: dict) -> bytes:
    """Vector ``v``'s plaintext sealed again by the reference, with the vector's own
    parameters, salt, nonce prefix and envelope."""
    return rf.seal(
        v["key"],
        v["plaintext"],
        v["context"],
        segment_size=v["segment_size"],
        aead_id=v["aead"],
        key_id=v["key_id"],
        salt=v["salt"],
        nonce_prefix=v["nonce_prefix"],
        envelope=v.get("envelope"),
    )


def test_vectors_seal_reproduces_ciphertext() -> None:
    for v in spec_vectors():
        out = _reseal(v)
        assert out.hex() == v["ciphertext"].hex(), f"vector {v['number']} differs"


# --------------------------------------------------------------------------- cross (native)

CROSS_S = 4096


def cross_sizes() -> list[int]:
    p0, p = capacities(CROSS_S)
    return [0, 1, p0 - 1, p0, p0 + 1, p0 + p, p0 + 4 * p + p // 2, 100_000]


def native_write(path: Path, pt: bytes, aead_id: int, ctx: bytes = CTX, chunk: int = 1000) -> bytes:
    import exitless

    with exitless.open_spill(
        str(path), "wb", KEY, ctx, segment_size=CROSS_S, algorithm=ALGORITHMS[aead_id]
    ) as f:
        for o in range(0, len(pt), chunk):
            f.write(pt[o : o + chunk])
    return path.read_bytes()


def native_read(path: Path, ctx: bytes = CTX, chunk: int | None = None) -> bytes:
    import exitless

    with exitless.open_spill(str(path), "rb", KEY, ctx) as f:
        if chunk is None:
            return f.read()
        parts = []
        while piece := f.read(chunk):
            parts.append(piece)
        return b"".join(parts)


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_cross_native_writes_reference_reads(tmp_path: Path, aead_id: int) -> None:
    for m in cross_sizes():
        pt = os.urandom(m)
        data = native_write(tmp_path / f"n{m}.exls", pt, aead_id)
        hdr = rf.parse_header(data)
        assert (hdr["aead_id"], hdr["segment_size"]) == (aead_id, CROSS_S), m
        assert len(data) == rf.sealed_length(m, CROSS_S), m
        assert rf.open_sealed(KEY, data, CTX) == pt, m


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_cross_reference_writes_native_reads(tmp_path: Path, aead_id: int) -> None:
    for m in cross_sizes():
        pt = os.urandom(m)
        path = tmp_path / f"r{m}.exls"
        path.write_bytes(rf.seal(KEY, pt, CTX, segment_size=CROSS_S, aead_id=aead_id))
        assert native_read(path) == pt, m
        assert native_read(path, chunk=777) == pt, m


@pytest.mark.parametrize("aead_id", AEAD_IDS)
@pytest.mark.parametrize("writer", ["reference", "native"])
def test_cross_tampering_fails_in_both(tmp_path: Path, aead_id: int, writer: str) -> None:
    import exitless

    p0, p = capacities(CROSS_S)
    m = p0 + 2 * p + 123
    pt = os.urandom(m)
    path = tmp_path / "t.exls"
    if writer == "native":
        data = native_write(path, pt, aead_id)
    else:
        data = rf.seal(KEY, pt, CTX, segment_size=CROSS_S, aead_id=aead_id)
    L = len(data)
    cases = [
        flip(data, off)
        for off in (
            0,
            4,
            67,
            12,
            30,
            62,
            H,
            CROSS_S - 1,
            CROSS_S + 5,
            2 * CROSS_S - 1,
            3 * CROSS_S,
            L - T,
            L - 1,
        )
    ]
    cases += [data[:CROSS_S], data[: L - 1], data + b"\x00"]
    for bad in cases:
        expected = ReferenceIntegrityError
        try:
            rf.parse_header(bad)
        except ReferenceFormatError:
            expected = ReferenceFormatError
        native_expected = (
            exitless.FormatError if expected is ReferenceFormatError else exitless.IntegrityError
        )
        with pytest.raises(expected):
            rf.open_sealed(KEY, bad, CTX)
        path.write_bytes(bad)
        with pytest.raises(native_expected):
            native_read(path)
    path.write_bytes(data)
    with pytest.raises(exitless.IntegrityError):
        native_read(path, ctx=CTX + b"!")


# --------------------------------------------------------------------------- version 2 (section 9)

ENV = bytes([2]) + b"\x33" * 16 + (40).to_bytes(2, "big") + bytes(range(0xC0, 0xE8))


def test_vector_5_version_2() -> None:
    v5 = [v for v in spec_vectors() if v["number"] == 5]
    assert len(v5) == 1, "FORMAT.md section 9.3 must carry vector 5"
    v = v5[0]
    assert v["envelope"] == ENV
    hdr = rf.parse_header(v["ciphertext"])
    assert (hdr["version"], hdr["header_length"], hdr["envelope"], hdr["key_id"]) == (
        2,
        72 + len(ENV),
        ENV,
        v["key_id"],
    )
    assert rf.open_sealed(v["key"], v["ciphertext"], v["context"]) == v["plaintext"]
    assert _reseal(v) == v["ciphertext"]


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_v2_round_trip_and_layout(aead_id: int) -> None:
    for env in (b"x", ENV, os.urandom(1024)):
        h = 72 + len(env)
        s = max(256, h + 17 + 100)
        p0 = s - h - T
        for m in (0, 1, p0 - 1, p0, p0 + 1, p0 + (s - T) * 3 + 7):
            pt = os.urandom(m)
            data = rf.seal(KEY, pt, CTX, segment_size=s, aead_id=aead_id, envelope=env)
            assert len(data) == rf.sealed_length(m, s, len(env))
            assert data[4] == 2 and data[72:h] == env
            assert rf.open_sealed(KEY, data, CTX) == pt


def test_v2_parsing_rules() -> None:
    data = rf.seal(KEY, b"hello", CTX, segment_size=4096, envelope=b"E" * 100)  # H = 172

    def edit(**at: int) -> bytes:
        b = bytearray(data)
        for off, v in at.items():
            b[int(off[1:])] = v
        return bytes(b)

    def be16(off: int, v: int) -> dict[str, int]:
        return {f"o{off}": v >> 8, f"o{off + 1}": v & 0xFF}

    for cut in (1, 4, 5, 67, 68, 71, 72, 171):  # rules 2, 5, 13
        with pytest.raises(ReferenceIntegrityError):
            rf.parse_header(data[:cut])
    format_cases = [
        edit(o4=3),
        edit(o4=0),  # rule 4
        edit(**be16(68, 0), **be16(6, 72)),
        edit(**be16(68, 1025), **be16(6, 1097)),  # rule 6
        edit(**be16(6, 173)),
        edit(**be16(6, 68)),  # rule 7
        edit(o5=0),  # rule 8
        edit(o10=0, o11=0),  # rule 9
        edit(o67=1),
        edit(o70=1),
        edit(o71=1),  # rules 10, 11
    ]
    for bad in format_cases:
        with pytest.raises(ReferenceFormatError):
            rf.parse_header(bad)
        with pytest.raises(ReferenceFormatError):
            rf.parse_header(bad[:100])  # fixed-part rules come before the envelope truncation rule
    wide = rf.seal(KEY, b"hello", CTX, segment_size=4096, envelope=b"E" * 200)  # H = 272
    b = bytearray(wide)
    b[8:12] = (288).to_bytes(4, "big")  # rule 12: S < H + 17
    with pytest.raises(ReferenceFormatError):
        rf.parse_header(bytes(b))
    b[8:12] = (289).to_bytes(4, "big")
    assert rf.parse_header(bytes(b))["segment_size"] == 289
    with pytest.raises(ValueError):
        rf.seal(KEY, b"", segment_size=256, envelope=b"E" * 168)
    with pytest.raises(ValueError):
        rf.seal(KEY, b"", envelope=b"")


def test_v2_every_header_flip_fails() -> None:
    data = rf.seal(KEY, pattern(300), CTX, segment_size=256, envelope=ENV)
    h = 72 + len(ENV)
    for off in range(h):
        for bit in range(8):
            bad = flip(data, off, 1 << bit)
            with pytest.raises((ReferenceFormatError, ReferenceIntegrityError)):
                rf.open_sealed(KEY, bad, CTX)
            if off >= 72:  # the envelope is opaque: only the key derivation catches it
                with pytest.raises(ReferenceIntegrityError):
                    rf.open_sealed(KEY, bad, CTX)


def native_write_v2(path: Path, pt: bytes, aead_id: int, env: bytes, s: int = CROSS_S) -> bytes:
    import exitless

    with exitless.open_spill(
        str(path),
        "wb",
        KEY,
        CTX,
        segment_size=s,
        algorithm=ALGORITHMS[aead_id],
        key_id=b"\x33" * 16,
        envelope=env,
    ) as f:
        for o in range(0, len(pt), 1000):
            f.write(pt[o : o + 1000])
    return path.read_bytes()


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_cross_v2_native_writes_reference_reads(tmp_path: Path, aead_id: int) -> None:
    for env in (ENV, b"\x01", os.urandom(1024)):
        p0 = CROSS_S - 72 - len(env) - T
        for m in (0, 1, p0, p0 + 1, 100_000):
            pt = os.urandom(m)
            data = native_write_v2(tmp_path / f"n{m}-{len(env)}.exls", pt, aead_id, env)
            hdr = rf.parse_header(data)
            assert (hdr["version"], hdr["envelope"], hdr["key_id"]) == (2, env, b"\x33" * 16)
            assert len(data) == rf.sealed_length(m, CROSS_S, len(env))
            assert rf.open_sealed(KEY, data, CTX) == pt


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_cross_v2_reference_writes_native_reads(tmp_path: Path, aead_id: int) -> None:
    import exitless

    for env in (ENV, os.urandom(1024)):
        p0 = CROSS_S - 72 - len(env) - T
        for m in (0, 1, p0, p0 + 1, 100_000):
            pt = os.urandom(m)
            path = tmp_path / f"r{m}-{len(env)}.exls"
            path.write_bytes(rf.seal(KEY, pt, CTX, segment_size=CROSS_S, aead_id=aead_id, envelope=env))
            assert native_read(path) == pt
            assert native_read(path, chunk=777) == pt
            info = exitless.inspect(path)
            assert (info.version, info.envelope, info.header_size) == (2, env, 72 + len(env))
            assert exitless.open_bytes(path.read_bytes(), KEY, CTX) == pt


def test_cross_v2_tampering_classes_agree(tmp_path: Path) -> None:
    import exitless

    data = rf.seal(KEY, pattern(5000), CTX, segment_size=CROSS_S, envelope=ENV)
    h = 72 + len(ENV)
    path = tmp_path / "t.exls"
    cases = [flip(data, off, 1 << bit) for off in range(h) for bit in (0, 7)]
    cases += [data[:cut] for cut in (5, 68, 70, 72, 100, h - 1, h, h + 15)]
    for bad in cases:
        try:
            rf.open_sealed(KEY, bad, CTX)
            raise AssertionError("reference opened a tampered file")
        except ReferenceFormatError:
            native_expected = exitless.FormatError
        except ReferenceIntegrityError:
            native_expected = exitless.IntegrityError
        path.write_bytes(bad)
        with pytest.raises(native_expected):
            native_read(path)


# --------------------------------------------------------------------------- section 2 key id, section 10 envelopes


def test_v1_key_id_label_and_cross_native_fingerprint(tmp_path: Path) -> None:
    """Section 2 "Key id": the label's hex in the spec is "exitless key id v1", and the
    Python API records SHA-256(label || key)[:16] unless given a key id."""
    import exitless

    assert rf.KEY_ID_LABEL == b"exitless key id v1" and len(rf.KEY_ID_LABEL) == 18
    assert rf.v1_key_id(KEY) == exitless.Key(KEY).key_id
    data = native_write(tmp_path / "k.exls", b"abc", 1)
    assert rf.parse_header(data)["key_id"] == rf.v1_key_id(KEY) != bytes(16)
    assert exitless.seal_bytes(b"abc", KEY)[12:28] == rf.v1_key_id(KEY)
    custom = bytes(range(16))
    assert exitless.seal_bytes(b"abc", KEY, key_id=custom)[12:28] == custom


def envelope_vectors() -> list[dict]:
    vectors = rf.load_envelope_vectors(FORMAT_MD)
    assert [v["number"] for v in vectors] == [1], "FORMAT.md section 10.5 must carry envelope vector 1"
    return vectors


def test_envelope_vector_1_from_the_spec_alone() -> None:
    (v,) = envelope_vectors()
    pk, kid, dk, nonce = v["primary_key"], v["primary_key_id"], v["data_key"], v["wrap_nonce"]
    assert (len(pk), len(kid), len(dk), len(nonce)) == (32, 16, 32, 12)
    assert v["aad"] == rf.WRAP_AAD_LABEL + b"\x01" + kid and rf.WRAP_AAD_LABEL == b"exitless wrap v1"
    assert v["wrapped"][:12] == nonce and len(v["wrapped"]) == 60
    assert v["envelope"] == b"\x01" + kid + b"\x00\x3c" + v["wrapped"] and len(v["envelope"]) == 79
    assert rf.wrap_scheme1(pk, kid, dk, nonce) == v["envelope"]
    assert rf.parse_wrapped_key(v["envelope"]) == (1, kid, v["wrapped"])
    assert rf.unwrap_scheme1({kid: pk}, v["envelope"]) == dk
    # 10.2: the AAD binds scheme and id; a wrong primary key or a flipped bit fails.
    with pytest.raises(rf.ReferenceUnwrapError):
        rf.unwrap_scheme1({kid: flip(pk, 0)}, v["envelope"])
    with pytest.raises(rf.ReferenceUnwrapError):
        rf.unwrap_scheme1({kid: pk}, flip(v["envelope"], 40))
    with pytest.raises(rf.ReferenceUnwrapError):
        rf.unwrap_scheme1({}, v["envelope"])
    for bad in (
        v["envelope"][:18],
        flip(v["envelope"], 0, 0x03),
        flip(v["envelope"], 18),
        v["envelope"] + b"\x00",
    ):
        with pytest.raises(ReferenceFormatError):
            rf.parse_wrapped_key(bad)


def write_keyring(path: Path, primaries: dict[bytes, bytes]) -> Path:
    """A LocalKms keyring file (docs/KMS.md) holding exactly these primary keys."""
    import base64
    import json

    keys = [
        {
            "id": kid.hex(),
            "created": f"2025-01-0{i + 1}T00:00:00.000000Z",
            "key": base64.b64encode(pk).decode(),
        }
        for i, (kid, pk) in enumerate(primaries.items())
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {"format": "exitless-kms-keyring", "version": 1, "current": keys[-1]["id"], "keys": keys}, f
        )
    return path


def read_keyring(path: Path) -> dict[bytes, bytes]:
    import base64
    import json

    return {bytes.fromhex(k["id"]): base64.b64decode(k["key"]) for k in json.loads(path.read_text())["keys"]}


def test_cross_envelope_vector_1_is_what_local_kms_writes_and_unwraps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exitless
    import exitless.kms.local as local_kms
    from exitless.kms import LocalKms, WrappedKey

    (v,) = envelope_vectors()
    kms = LocalKms(write_keyring(tmp_path / "ring.json", {v["primary_key_id"]: v["primary_key"]}))
    # Unwrap: LocalKms returns the vector's data key.
    assert kms.unwrap(v["envelope"]).secret_bytes() == v["data_key"]
    # Wrap: with the vector's data key and nonce drawn, LocalKms writes the vector's envelope.
    real_urandom = os.urandom
    monkeypatch.setattr(local_kms.Key, "generate", classmethod(lambda cls: cls(v["data_key"])))
    monkeypatch.setattr(local_kms.os, "urandom", lambda n: v["wrap_nonce"] if n == 12 else real_urandom(n))
    key, wrapped = kms.generate_data_key()
    monkeypatch.undo()
    assert key.secret_bytes() == v["data_key"]
    assert wrapped.to_bytes() == v["envelope"] and wrapped == WrappedKey.from_bytes(v["envelope"])
    assert isinstance(key, exitless.Key)


def test_cross_reference_opens_local_kms_files_and_the_other_way_round(tmp_path: Path) -> None:
    import exitless
    from exitless.kms import LocalKms, open_sealed

    ring = tmp_path / "ring.json"
    kms = LocalKms.init(ring)
    kms.rotate()  # two primary keys: the reader must pick by id
    pt = pattern(5000)
    path = tmp_path / "k.exls"
    with open_sealed(path, "wb", kms, CTX, segment_size=CROSS_S) as f:
        f.write(pt)
    data = path.read_bytes()
    hdr = rf.parse_header(data)
    assert hdr["version"] == 2 and len(hdr["envelope"]) == 79 and hdr["header_length"] == 151
    assert hdr["key_id"] == kms.current_key_id == rf.parse_wrapped_key(hdr["envelope"])[1]
    primaries = read_keyring(ring)
    assert len(primaries) == 2
    assert rf.open_sealed_with_primary_keys(data, primaries, CTX) == pt
    # The reference wraps under the older primary key and seals; exitless.kms opens it.
    old_id = kms.list_keys()[0].key_id
    dk = os.urandom(32)
    env = rf.wrap_scheme1(primaries[old_id], old_id, dk)
    (tmp_path / "r.exls").write_bytes(rf.seal(dk, pt, CTX, segment_size=CROSS_S, key_id=old_id, envelope=env))
    with open_sealed(tmp_path / "r.exls", "rb", kms, CTX) as f:
        assert f.read() == pt
    assert exitless.inspect(tmp_path / "r.exls").envelope == env


def test_cross_envelope_error_classes_agree(tmp_path: Path) -> None:
    """Section 10.4: for every single-bit change of the header (envelope included) and
    the crafted cases below, exitless.kms.open_sealed raises the class the reference
    derives from the spec alone."""
    import exitless
    from exitless.kms import LocalKms, UnwrapError, open_sealed

    ring = tmp_path / "ring.json"
    kms = LocalKms.init(ring)
    second = kms.rotate()
    first = kms.list_keys()[0].key_id
    primaries = read_keyring(ring)
    pt = pattern(3000)

    def sealed_file(name: str) -> bytes:
        with open_sealed(tmp_path / name, "wb", kms, CTX, segment_size=1024) as f:
            f.write(pt)
        return (tmp_path / name).read_bytes()

    data, other = sealed_file("a.exls"), sealed_file("b.exls")
    h = 72 + 79
    dk = rf.unwrap_scheme1(primaries, data[72:h])
    cases = {f"flip {off}.{bit}": flip(data, off, 1 << bit) for off in range(h) for bit in (0, 1, 7)}
    relabelled = bytearray(data)
    relabelled[12:28] = relabelled[73:89] = first  # header and envelope agree, on another primary
    cases.update(
        {
            "other file's envelope": data[:72] + other[72:h] + data[h:],
            "same data key, rewrapped": data[:72] + rf.wrap_scheme1(primaries[second], second, dk) + data[h:],
            "both ids relabelled": bytes(relabelled),
            "envelope cut": data[:100],
            "version 1": rf.seal(dk, pt, CTX),
            "scheme 2 envelope": rf.seal(
                dk, pt, CTX, key_id=second, envelope=b"\x02" + second + b"\x00\x28" + bytes(40)
            ),
            "not a wrapped key": rf.seal(dk, pt, CTX, key_id=second, envelope=b"not a wrapped key"),
        }
    )
    to_exitless = {
        ReferenceFormatError: exitless.FormatError,
        ReferenceIntegrityError: exitless.IntegrityError,
        rf.ReferenceUnwrapError: UnwrapError,
    }
    seen = set()
    path = tmp_path / "t.exls"
    for name, bad in cases.items():
        try:
            rf.open_sealed_with_primary_keys(bad, primaries, CTX)
            raise AssertionError(f"{name}: the reference opened it")
        except tuple(to_exitless) as e:
            expected = to_exitless[type(e)]
        seen.add(expected)
        path.write_bytes(bad)
        with pytest.raises(exitless.ExitlessError) as ei, open_sealed(path, "rb", kms, CTX) as f:
            f.read()
        assert type(ei.value) is expected, (name, ei.value)
        assert str(path) in str(ei.value), (name, ei.value)
    assert seen == set(to_exitless.values())
    assert rf.open_sealed_with_primary_keys(data, primaries, CTX) == pt
