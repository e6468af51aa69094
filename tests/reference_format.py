"""Independent reference implementation of the exitless sealed stream format, versions 1
and 2 (version 2: section 9, "Version 2: key envelope"), and of section 10: the key
envelopes of exitless.kms (the wrapped key layout, the scheme-1 AES-256-GCM wrap) and
the order of checks of a reader that unwraps them.

Written from ``docs/FORMAT.md`` alone (no code shared with ``native/`` or ``python/``),
for cross-checking. Section numbers in comments refer to that document.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "ReferenceFormatError",
    "ReferenceIntegrityError",
    "ReferenceUnwrapError",
    "derive_stream_key",
    "load_envelope_vectors",
    "load_vectors",
    "open_sealed",
    "open_sealed_with_primary_keys",
    "parse_header",
    "parse_wrapped_key",
    "seal",
    "sealed_length",
    "segment_nonce",
    "stream_layout",
    "unwrap_scheme1",
    "v1_key_id",
    "wrap_scheme1",
]

# Section 1 / 2 constants.
MAGIC = b"EXLS"
VERSION = 1
VERSION_2 = 2
H = 68  # header length, version 1
H2_FIXED = 72  # section 9: fixed part of a version-2 header; H = 72 + L
MAX_ENVELOPE = 1024
T = 16  # tag length
MIN_SEGMENT_SIZE = 256
MAX_SEGMENT_SIZE = 1 << 30
MAX_SEGMENTS = 1 << 32
AES_256_GCM = 1
CHACHA20_POLY1305 = 2
KDF_LABEL = b"exitless stream v1"  # section 3, 18 ASCII bytes
KEY_LEN = 32
KEY_ID_LABEL = bytes.fromhex("65 78 69 74 6c 65 73 73 20 6b 65 79 20 69 64 20 76 31")  # section 2, "Key id"
# Section 10.
WRAP_AAD_LABEL = bytes.fromhex("65 78 69 74 6c 65 73 73 20 77 72 61 70 20 76 31")  # "exitless wrap v1"
SCHEME_1 = 1  # AES-256-GCM (10.2)
SCHEME_2 = 2  # RFC 3394 (10.3)
WRAPPED_LEN = {SCHEME_1: 60, SCHEME_2: 40}  # 10.1
WRAP_NONCE_LEN = 12

_AEADS: dict[int, type[AESGCM] | type[ChaCha20Poly1305]] = {
    AES_256_GCM: AESGCM,
    CHACHA20_POLY1305: ChaCha20Poly1305,
}
# magic, version, AEAD id, header length, segment size, key id, salt, nonce prefix, reserved
_HEADER = struct.Struct(">4sBBHI16s32s7sB")
assert _HEADER.size == H


class ReferenceFormatError(Exception):
    """Spec error class ``Format``: not a sealed stream, or unsupported version/algorithm/parameter."""


class ReferenceIntegrityError(Exception):
    """Spec error class ``Integrity``: authentication failed (tampered, truncated, reordered,
    spliced data, wrong key, wrong context)."""


class ReferenceUnwrapError(Exception):
    """Spec error class ``Unwrap`` (sections 6, 10.4): the key envelope cannot be unwrapped
    (unknown primary key, a scheme the reader does not handle, authentication failed)."""


def _check_key(key: bytes) -> None:
    # The spec fixes the data key at 32 bytes but names no error class for a wrong
    # length: it is a caller error, not a property of the file.
    if len(key) != KEY_LEN:
        raise ValueError(f"data key must be {KEY_LEN} bytes, got {len(key)}")


def parse_header(data: bytes) -> dict[str, Any]:
    """Apply the section 2 parsing rules 1-8 in order to ``data`` (a file or its prefix)
    and return the header fields. Raises the spec's error classes."""
    if len(data) == 0:  # rule 1
        raise ReferenceIntegrityError("truncated: empty file")
    if len(data) < H:  # rule 2
        if MAGIC.startswith(data) or data.startswith(MAGIC):
            raise ReferenceIntegrityError(f"truncated header ({len(data)} of {H} bytes)")
        raise ReferenceFormatError("not a sealed stream (short file without magic)")
    magic, version, aead_id, header_len, seg, key_id, salt, prefix, reserved = _HEADER.unpack_from(data)
    if magic != MAGIC:  # rule 3
        raise ReferenceFormatError("not a sealed stream (bad magic)")
    if version == VERSION_2:  # rule 4, section 9
        return _parse_header_v2(data)
    if version != VERSION:  # rule 4
        raise ReferenceFormatError(f"unsupported version {version}")
    if header_len != H:  # rule 5
        raise ReferenceFormatError(f"bad header length {header_len}")
    if aead_id not in _AEADS:  # rule 6
        raise ReferenceFormatError(f"unsupported AEAD id {aead_id}")
    if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE:  # rule 7
        raise ReferenceFormatError(f"segment size {seg} out of range")
    if reserved != 0:  # rule 8
        raise ReferenceFormatError(f"reserved byte is {reserved:#04x}")
    return {
        "magic": magic,
        "version": version,
        "aead_id": aead_id,
        "header_length": header_len,
        "segment_size": seg,
        "key_id": key_id,
        "salt": salt,
        "nonce_prefix": prefix,
        "reserved": reserved,
        "header": bytes(data[:H]),
    }


def _parse_header_v2(data: bytes) -> dict[str, Any]:
    """Section 9.1 rules 5-13 (rules 1-4 already applied by parse_header)."""
    if len(data) < H2_FIXED:  # rule 5
        raise ReferenceIntegrityError(
            f"truncated version-2 header ({len(data)} of at least {H2_FIXED} bytes)"
        )
    magic, version, aead_id, header_len, seg, key_id, salt, prefix, reserved = _HEADER.unpack_from(data)
    env_len, reserved2 = struct.unpack_from(">HH", data, 68)
    if not 1 <= env_len <= MAX_ENVELOPE:  # rule 6
        raise ReferenceFormatError(f"envelope length {env_len} out of range")
    h = H2_FIXED + env_len
    if header_len != h:  # rule 7
        raise ReferenceFormatError(f"bad header length {header_len} (72 + {env_len} expected)")
    if aead_id not in _AEADS:  # rule 8
        raise ReferenceFormatError(f"unsupported AEAD id {aead_id}")
    if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE:  # rule 9
        raise ReferenceFormatError(f"segment size {seg} out of range")
    if reserved != 0:  # rule 10
        raise ReferenceFormatError(f"reserved byte 67 is {reserved:#04x}")
    if reserved2 != 0:  # rule 11
        raise ReferenceFormatError(f"reserved bytes 70-71 are {reserved2:#06x}")
    if seg < h + T + 1:  # rule 12
        raise ReferenceFormatError(f"segment size {seg} leaves no plaintext after a {h}-byte header")
    if len(data) < h:  # rule 13
        raise ReferenceIntegrityError(f"truncated inside the key envelope ({len(data)} of {h} bytes)")
    return {
        "magic": magic,
        "version": version,
        "aead_id": aead_id,
        "header_length": h,
        "segment_size": seg,
        "key_id": key_id,
        "salt": salt,
        "nonce_prefix": prefix,
        "reserved": reserved,
        "envelope": bytes(data[H2_FIXED:h]),
        "header": bytes(data[:h]),
    }


def stream_layout(length: int, segment_size: int, header_length: int = H) -> tuple[int, int]:
    """Section 5: from file length ``L >= H`` return ``(n, c)`` = (segment count, final
    segment ciphertext length), raising in the order the section lists its checks.
    ``header_length`` is 68 (version 1) or 72 + L (version 2, section 9.2)."""
    h = header_length
    if length < h:
        raise ValueError("stream_layout requires L >= H (section 2 rejects shorter files)")
    s = segment_size
    if length <= s:
        n, c = 1, length - h
    else:
        n = 1 + -(-(length - s) // s)
        c = length - (n - 1) * s
    if c < T or (c == T and n > 1):
        raise ReferenceIntegrityError(f"truncated stream (final segment {n - 1} has {c} bytes)")
    if n > MAX_SEGMENTS:
        raise ReferenceFormatError(f"too many segments ({n})")
    return n, c


def sealed_length(plaintext_len: int, segment_size: int, envelope_len: int = 0) -> int:
    """Length of the file sealing ``plaintext_len`` bytes: ``H + m + n*T`` (sections 4, 5;
    ``H = 72 + envelope_len`` for version 2, section 9)."""
    h = H2_FIXED + envelope_len if envelope_len else H
    p0, p = segment_size - h - T, segment_size - T
    n = 1 if plaintext_len <= p0 else 1 + -(-(plaintext_len - p0) // p)
    return h + plaintext_len + n * T


def derive_stream_key(key: bytes, header: bytes, context: bytes = b"") -> bytes:
    """Section 3: HKDF-SHA256(IKM=key, salt=header.salt, info=label || header || context, L=32)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=bytes(header[28:60]),
        info=KDF_LABEL + bytes(header) + bytes(context),
    )
    return hkdf.derive(bytes(key))


def segment_nonce(nonce_prefix: bytes, index: int, last: bool) -> bytes:
    """Section 4: ``nonce_prefix (7) || BE32(i) || last (1)``."""
    return bytes(nonce_prefix) + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


def seal(
    key: bytes,
    plaintext: bytes,
    context: bytes = b"",
    *,
    segment_size: int = 65536,
    aead_id: int = AES_256_GCM,
    key_id: bytes = bytes(16),
    salt: bytes | None = None,
    nonce_prefix: bytes | None = None,
    envelope: bytes | None = None,
) -> bytes:
    """Seal ``plaintext`` into a whole version-1 file, or version 2 (section 9) when
    ``envelope`` is given. Invalid arguments raise ValueError."""
    _check_key(key)
    if aead_id not in _AEADS:
        raise ValueError(f"unknown AEAD id {aead_id}")
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size {segment_size} out of range")
    salt = os.urandom(32) if salt is None else bytes(salt)
    prefix = os.urandom(7) if nonce_prefix is None else bytes(nonce_prefix)
    if len(key_id) != 16 or len(salt) != 32 or len(prefix) != 7:
        raise ValueError("key_id, salt and nonce_prefix must be 16, 32 and 7 bytes")
    if envelope is None:
        h = H
        header = _HEADER.pack(MAGIC, VERSION, aead_id, H, segment_size, bytes(key_id), salt, prefix, 0)
    else:
        envelope = bytes(envelope)
        if not 1 <= len(envelope) <= MAX_ENVELOPE:
            raise ValueError(f"envelope must be 1 to {MAX_ENVELOPE} bytes")
        h = H2_FIXED + len(envelope)
        if segment_size < h + T + 1:
            raise ValueError(f"segment size {segment_size} too small for a {h}-byte header")
        header = (
            _HEADER.pack(MAGIC, VERSION_2, aead_id, h, segment_size, bytes(key_id), salt, prefix, 0)
            + struct.pack(">HH", len(envelope), 0)
            + envelope
        )
    aead = _AEADS[aead_id](derive_stream_key(key, header, context))
    p0, p = segment_size - h - T, segment_size - T
    pt = memoryview(bytes(plaintext))
    # Segment 0 always exists (possibly empty); an exact fit never adds an empty segment.
    chunks = [pt[:p0]] + [pt[o : o + p] for o in range(p0, len(pt), p)]
    n = len(chunks)
    if n > MAX_SEGMENTS:
        raise ValueError("plaintext needs more than 2^32 segments")
    out = [header]
    out += [
        aead.encrypt(segment_nonce(prefix, i, i == n - 1), bytes(ch), None) for i, ch in enumerate(chunks)
    ]
    return b"".join(out)


def open_sealed(key: bytes, data: bytes, context: bytes = b"") -> bytes:
    """Open a whole sealed file: section 2 rules, then section 5 layout checks, then the
    final segment first (as section 5 requires of streaming readers), then the rest."""
    _check_key(key)
    data = bytes(data)
    hdr = parse_header(data)
    s = hdr["segment_size"]
    h = hdr["header_length"]
    n, _ = stream_layout(len(data), s, h)
    aead = _AEADS[hdr["aead_id"]](derive_stream_key(key, hdr["header"], context))
    plain: list[bytes] = [b""] * n
    for i in [n - 1, *range(n - 1)]:
        start = h if i == 0 else i * s
        end = len(data) if i == n - 1 else (i + 1) * s
        try:
            plain[i] = aead.decrypt(segment_nonce(hdr["nonce_prefix"], i, i == n - 1), data[start:end], None)
        except InvalidTag:
            raise ReferenceIntegrityError(f"segment {i} failed to authenticate") from None
    return b"".join(plain)


def v1_key_id(key: bytes) -> bytes:
    """Section 2, "Key id": the fingerprint exitless's Python API records,
    SHA-256(label || data key)[:16]."""
    _check_key(key)
    return hashlib.sha256(KEY_ID_LABEL + bytes(key)).digest()[:16]


# ---------------------------------------------------------------------------------------
# Section 10: key envelopes of exitless.kms


def parse_wrapped_key(envelope: bytes) -> tuple[int, bytes, bytes]:
    """Section 10.1: ``(scheme, primary key id, wrapped)``; ReferenceFormatError for bytes
    that are not exactly one wrapped key (10.4 step 3)."""
    envelope = bytes(envelope)
    if len(envelope) < 19:
        raise ReferenceFormatError(f"envelope of {len(envelope)} bytes is shorter than a wrapped key (19)")
    scheme, kid, n = envelope[0], envelope[1:17], struct.unpack(">H", envelope[17:19])[0]
    if scheme not in WRAPPED_LEN:
        raise ReferenceFormatError(f"unknown wrapped key scheme {scheme}")
    if n != WRAPPED_LEN[scheme]:
        raise ReferenceFormatError(
            f"scheme {scheme} wraps into {WRAPPED_LEN[scheme]} bytes, the length field says {n}"
        )
    if len(envelope) != 19 + n:
        raise ReferenceFormatError(
            f"envelope is {len(envelope)} bytes, a scheme-{scheme} wrapped key {19 + n}"
        )
    return scheme, kid, envelope[19:]


def _scheme1_aad(primary_key_id: bytes) -> bytes:
    return WRAP_AAD_LABEL + bytes([SCHEME_1]) + bytes(primary_key_id)  # section 10.2


def wrap_scheme1(
    primary_key: bytes, primary_key_id: bytes, data_key: bytes, nonce: bytes | None = None
) -> bytes:
    """Section 10.2: the whole envelope (10.1 layout) wrapping ``data_key``."""
    _check_key(primary_key)
    _check_key(data_key)
    if len(primary_key_id) != 16:
        raise ValueError("a primary key id is 16 bytes")
    nonce = os.urandom(WRAP_NONCE_LEN) if nonce is None else bytes(nonce)
    if len(nonce) != WRAP_NONCE_LEN:
        raise ValueError(f"the wrap nonce is {WRAP_NONCE_LEN} bytes")
    wrapped = nonce + AESGCM(bytes(primary_key)).encrypt(nonce, bytes(data_key), _scheme1_aad(primary_key_id))
    return bytes([SCHEME_1]) + bytes(primary_key_id) + struct.pack(">H", len(wrapped)) + wrapped


def unwrap_scheme1(primary_keys: dict[bytes, bytes], envelope: bytes) -> bytes:
    """Section 10.2 and 10.4 step 5, for a reader holding scheme-1 primary keys by id:
    the data key, or ReferenceUnwrapError. ReferenceFormatError if ``envelope`` does not
    parse (10.1)."""
    scheme, kid, wrapped = parse_wrapped_key(envelope)
    if scheme != SCHEME_1:
        raise ReferenceUnwrapError(f"scheme {scheme}: this reader unwraps scheme 1 only")
    primary = primary_keys.get(kid)
    if primary is None:
        raise ReferenceUnwrapError(f"unknown primary key {kid.hex()}")
    nonce, body = wrapped[:WRAP_NONCE_LEN], wrapped[WRAP_NONCE_LEN:]
    try:
        return AESGCM(bytes(primary)).decrypt(nonce, body, _scheme1_aad(kid))
    except InvalidTag:
        raise ReferenceUnwrapError(f"wrapped key under {kid.hex()} failed authentication") from None


def open_sealed_with_primary_keys(
    data: bytes, primary_keys: dict[bytes, bytes], context: bytes = b""
) -> bytes:
    """Section 10.4: open a whole file whose data key is in its envelope, with scheme-1
    primary keys by id, checking in the section's order."""
    data = bytes(data)
    hdr = parse_header(data)  # step 1
    if hdr["version"] != VERSION_2:  # step 2
        raise ReferenceFormatError("version 1: the file carries no key envelope")
    _, kid, _ = parse_wrapped_key(hdr["envelope"])  # step 3
    if kid != hdr["key_id"]:  # step 4
        raise ReferenceIntegrityError(
            f"header key id {hdr['key_id'].hex()} is not the envelope's {kid.hex()}"
        )
    data_key = unwrap_scheme1(primary_keys, hdr["envelope"])  # step 5
    return open_sealed(data_key, data, context)  # step 6


# ---------------------------------------------------------------------------------------
# Section 8 test vectors

_VECTOR_HEADING = re.compile(r"^#{2,6}\s*vector\s+(\d+)\b\s*:?\s*(.*?)\s*#*\s*$", re.IGNORECASE)
_DECIMAL_FIELDS = {"segment_size", "plaintext_len"}
_HEX_INT_FIELDS = {"aead"}
_EMPTY_SPELLINGS = {"", "(empty)", "<empty>", "-", '""', "''"}


def _convert_field(name: str, value: str) -> Any:
    value = value.strip()
    if value.lower() in _EMPTY_SPELLINGS:
        value = ""
    if name in _HEX_INT_FIELDS:
        return int(value, 16)
    if name in _DECIMAL_FIELDS:
        return int(value, 0) if value.lower().startswith("0x") else int(value, 10)
    compact = "".join(value.split())
    compact = compact[2:] if compact.lower().startswith("0x") else compact
    try:
        return bytes.fromhex(compact)
    except ValueError:
        return value  # unknown non-hex field: keep the text


def load_vectors(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse ``### Vector N: title`` headings each followed by a fenced block of
    ``name = value`` lines. Returns one dict per vector with ``number``, ``title`` and the
    fields: ``aead`` (hex) and ``segment_size``/``plaintext_len`` (decimal) as ints, the
    others as bytes. A line without ``=`` inside a block continues the previous value
    (wrapped hex)."""
    vectors: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    raw: dict[str, str] = {}
    in_block = False
    last: str | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if in_block:
            if s.startswith("```"):
                assert current is not None
                current.update({k: _convert_field(k, v) for k, v in raw.items()})
                vectors.append(current)
                current, in_block = None, False
            elif "=" in s:
                name, value = s.split("=", 1)
                last = name.strip()
                raw[last] = value.strip()
            elif s and not s.startswith("#") and last is not None:
                raw[last] += s
            continue
        m = _VECTOR_HEADING.match(s)
        if m:
            current, raw, last = {"number": int(m.group(1)), "title": m.group(2)}, {}, None
        elif s.startswith("```") and current is not None:
            in_block = True
        elif s.startswith("#"):
            current = None  # another heading ends the vector without a block
    return vectors


_ENVELOPE_HEADING = re.compile(r"^#{2,6}\s*envelope\s+vector\s+(\d+)\b\s*:?\s*(.*?)\s*#*\s*$", re.IGNORECASE)


def load_envelope_vectors(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Section 10.5: ``### Envelope vector N: title`` headings each followed by a fenced
    block of ``name = hex`` lines; one dict per vector with ``number``, ``title`` and the
    fields as bytes."""
    vectors: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    in_block = False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if in_block:
            if s.startswith("```"):
                vectors.append(current)
                current, in_block = None, False
            elif "=" in s:
                name, value = s.split("=", 1)
                current[name.strip()] = bytes.fromhex("".join(value.split()))  # type: ignore[index]
            continue
        m = _ENVELOPE_HEADING.match(s)
        if m:
            current = {"number": int(m.group(1)), "title": m.group(2)}
        elif s.startswith("```") and current is not None:
            in_block = True
        elif s.startswith("#"):
            current = None
    return vectors
