"""The error classes of a reader that unwraps a sealed file's key envelope
(``exitless.kms.open_sealed``), one test per class, in the order of docs/FORMAT.md
section 10.4:

- ``FormatError``: no envelope (version 1), or an envelope that is not one wrapped
  key (scheme byte, length field, envelope length);
- ``IntegrityError``: the header's key id is not the envelope's primary key id; or the
  envelope unwraps but the stream does not open with that key;
- ``UnwrapError``: the KMS cannot unwrap (unknown primary key, another scheme,
  wrapped bytes that fail authentication).

Every message names the file and holds no key bytes. tests/test_reference_format.py
checks the same classes against the independent reference, bit by bit.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import exitless
from exitless.kms import KmsError, LocalKms, UnwrapError, WrappedKey, open_sealed

CTX = b"envelope-errors"
DATA = b"envelope error classes " * 400
ENV = 72  # the envelope's offset in a version-2 header
# Offsets inside a scheme-1 envelope (FORMAT.md section 10.1): scheme, id, length, wrapped.
SCHEME, KID, LENGTH, WRAPPED = (
    ENV,
    range(ENV + 1, ENV + 17),
    range(ENV + 17, ENV + 19),
    range(ENV + 19, ENV + 79),
)


@pytest.fixture
def kms(tmp_path: Path) -> LocalKms:
    kms = LocalKms.init(tmp_path / "ring.json")
    kms.rotate()  # two primary keys
    return kms


def seal(kms: LocalKms, path: Path) -> bytes:
    with open_sealed(path, "wb", kms, CTX, segment_size=4096) as f:
        f.write(DATA)
    return path.read_bytes()


def secrets_of(kms: LocalKms) -> list[bytes]:
    doc = json.loads(Path(kms.path).read_text())
    return [base64.b64decode(k["key"]) for k in doc["keys"]]


def fails(kms: LocalKms, path: Path, data: bytes, cls: type[Exception], match: str) -> Exception:
    """Writes ``data`` to ``path``; opening and reading it raises exactly ``cls``,
    whose message names the file, matches ``match`` and holds no primary key."""
    path.write_bytes(data)
    with pytest.raises(exitless.ExitlessError) as ei, open_sealed(path, "rb", kms, CTX) as f:
        f.read()
    assert type(ei.value) is cls, ei.value
    text = str(ei.value)
    assert str(path) in text and re.search(match, text), text
    for secret in secrets_of(kms):
        assert secret.hex() not in text and base64.b64encode(secret).decode() not in text
    return ei.value


def flip(data: bytes, offset: int, mask: int = 1) -> bytes:
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def test_format_no_envelope_or_not_a_wrapped_key(kms: LocalKms, tmp_path: Path) -> None:
    good = seal(kms, tmp_path / "good.exls")
    bad = tmp_path / "bad.exls"
    # Version 1: no envelope at all.
    with exitless.open_spill(bad, "wb", exitless.generate_key(), CTX) as f:
        f.write(DATA)
    fails(kms, bad, bad.read_bytes(), exitless.FormatError, "carries no wrapped key")
    # An envelope of the right size that is not a wrapped key.
    with exitless.open_spill(bad, "wb", exitless.generate_key(), CTX, envelope=b"x" * 79) as f:
        f.write(DATA)
    fails(kms, bad, bad.read_bytes(), exitless.FormatError, "not a wrapped key")
    # Scheme byte: 1 -> 2 (whose wrapped key is 40 bytes, not 60) or an unknown scheme.
    fails(kms, bad, flip(good, SCHEME, 0x03), exitless.FormatError, "scheme 2")
    fails(kms, bad, flip(good, SCHEME, 0x80), exitless.FormatError, "unknown wrapped key scheme")
    # Length field.
    for off in LENGTH:
        fails(kms, bad, flip(good, off), exitless.FormatError, "length field")


def test_integrity_key_id_mismatch(kms: LocalKms, tmp_path: Path) -> None:
    good = seal(kms, tmp_path / "good.exls")
    kid = good[12:28].hex()
    bad = tmp_path / "bad.exls"
    fails(kms, bad, flip(good, 12), exitless.IntegrityError, "key id .* is not the primary key id " + kid)
    for off in (KID[0], KID[-1]):
        fails(kms, bad, flip(good, off, 0x10), exitless.IntegrityError, f"header's key id {kid} is not")


def test_integrity_envelope_unwraps_but_the_stream_does_not_open(kms: LocalKms, tmp_path: Path) -> None:
    good = seal(kms, tmp_path / "good.exls")
    other = seal(kms, tmp_path / "other.exls")
    h = ENV + 79
    bad = tmp_path / "bad.exls"
    # Another file's envelope, under the same primary key: unwraps, to the wrong data key.
    assert good[12:28] == other[12:28] and good[ENV:h] != other[ENV:h]
    fails(kms, bad, good[:ENV] + other[ENV:h] + good[h:], exitless.IntegrityError, "authentication failed")
    # This file's own data key, wrapped again (another nonce): the header changed.
    wk = WrappedKey.from_bytes(good[ENV:h])
    key = kms.unwrap(wk)
    primary = dict(zip([k.key_id for k in kms.list_keys()], secrets_of(kms), strict=True))[wk.primary_key_id]
    nonce = os.urandom(12)
    aad = b"exitless wrap v1\x01" + wk.primary_key_id
    rewrapped = WrappedKey(
        1, wk.primary_key_id, nonce + AESGCM(primary).encrypt(nonce, key.secret_bytes(), aad)
    )
    assert kms.unwrap(rewrapped) == key
    fails(
        kms,
        bad,
        good[:ENV] + rewrapped.to_bytes() + good[h:],
        exitless.IntegrityError,
        "authentication failed",
    )
    # The right file with another context.
    bad.write_bytes(good)
    with pytest.raises(exitless.IntegrityError, match="authentication failed"):
        open_sealed(bad, "rb", kms, CTX + b"!")


def test_unwrap_the_kms_cannot_unwrap(kms: LocalKms, tmp_path: Path) -> None:
    good = seal(kms, tmp_path / "good.exls")
    bad = tmp_path / "bad.exls"
    # Wrapped bytes: nonce, ciphertext, tag.
    for off in (WRAPPED[0], WRAPPED[11], WRAPPED[12], WRAPPED[43], WRAPPED[44], WRAPPED[-1]):
        fails(kms, bad, flip(good, off), UnwrapError, "failed authentication")
    # Header and envelope agree on the other primary key of the keyring.
    first = kms.list_keys()[0].key_id
    b = bytearray(good)
    b[12:28] = b[KID[0] : KID[-1] + 1] = first
    fails(kms, bad, bytes(b), UnwrapError, f"primary key {first.hex()} failed authentication")
    # A keyring that does not hold the primary key.
    stranger = LocalKms.init(tmp_path / "stranger.json")
    bad.write_bytes(good)
    with pytest.raises(
        UnwrapError, match=f"{bad}: cannot unwrap data key: primary key {good[12:28].hex()} is not in"
    ):
        open_sealed(bad, "rb", stranger, CTX)
    # A scheme-2 (PKCS#11) envelope given to a LocalKms.
    kid = kms.current_key_id
    with exitless.open_spill(
        bad, "wb", exitless.generate_key(), CTX, key_id=kid, envelope=WrappedKey(2, kid, bytes(40)).to_bytes()
    ) as f:
        f.write(DATA)
    err = fails(kms, bad, bad.read_bytes(), UnwrapError, "scheme 2 .* cannot unwrap")
    assert isinstance(err, KmsError) and not isinstance(err, exitless.IntegrityError)


def test_every_envelope_byte_has_its_class(kms: LocalKms, tmp_path: Path) -> None:
    """Section 10.4's summary: scheme byte and length field -> Format, primary key id ->
    Integrity, wrapped bytes -> Unwrap; never plaintext."""
    good = seal(kms, tmp_path / "good.exls")
    bad = tmp_path / "bad.exls"
    expected = {SCHEME: exitless.FormatError}
    expected.update({o: exitless.IntegrityError for o in KID})
    expected.update({o: exitless.FormatError for o in LENGTH})
    expected.update({o: UnwrapError for o in WRAPPED})
    assert sorted(expected) == list(range(ENV, ENV + 79))
    for off, cls in expected.items():
        for mask in (0x01, 0x80):
            bad.write_bytes(flip(good, off, mask))
            with pytest.raises(exitless.ExitlessError) as ei, open_sealed(bad, "rb", kms, CTX) as f:
                f.read()
            assert type(ei.value) is cls, (off, mask, ei.value)
    with open_sealed(tmp_path / "good.exls", "rb", kms, CTX) as f:
        assert f.read() == DATA
