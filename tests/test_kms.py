"""exitless.kms: envelope encryption with a local keyring and a PKCS#11 token.

The PKCS#11 tests run against SoftHSM2 with tokens initialised in a temporary
directory by this module (SOFTHSM2_CONF points at a generated softhsm2.conf). If
SoftHSM2 or python-pkcs11 is missing they FAIL, saying what to install: they are
part of CI, not optional.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import threading
import traceback
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import keywrap
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exitless import ExitlessError, Key
from exitless.kms import (
    SCHEME_LOCAL_AES_GCM,
    SCHEME_PKCS11_AES_KEY_WRAP,
    WRAP_AAD_PREFIX,
    InsecureKeyringError,
    KeyringFormatError,
    Kms,
    KmsConfigError,
    KmsError,
    LocalKms,
    Pkcs11Kms,
    UnwrapError,
    WrappedKey,
    WrappedKeyFormatError,
    open_kms,
    open_sealed,
)

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "31415926"
SO_PIN = "27182818"
PIN_ENV = "EXITLESS_TEST_HSM_PIN"
TOKENS = [
    "exl-a",
    "exl-b",
    "exl-rot",
    "exl-prot",
    "exl-empty",
    "exl-pin",
    "exl-rogue",
    "exl-env-a",
    "exl-env-b",
]


# --------------------------------------------------------------------------- helpers


def secret_forms(secret: bytes) -> list[str]:
    """Every textual form a leaked key would likely take."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        repr(secret)[2:-1],
        secret.decode("latin-1"),
        str(list(secret))[1:-1],
    ]


def assert_no_secret(text: str, secrets: list[bytes]) -> None:
    assert secrets, "the check needs the real key bytes"
    for s in secrets:
        assert len(s) == 32
        for form in secret_forms(s):
            assert form not in text, f"key bytes leaked into: {text[:200]!r}"


def error_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback chain (causes and contexts)."""
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


def keyring_secrets(path: Path) -> dict[bytes, bytes]:
    doc = json.loads(path.read_text())
    return {bytes.fromhex(k["id"]): base64.b64decode(k["key"]) for k in doc["keys"]}


def flip(data: bytes, byte: int, bit: int) -> bytes:
    b = bytearray(data)
    b[byte] ^= 1 << bit
    return bytes(b)


# --------------------------------------------------------------------------- WrappedKey format


def test_wrapped_key_layout_is_exact() -> None:
    kid = bytes(range(16))
    body = bytes(range(100, 160))
    wk = WrappedKey(SCHEME_LOCAL_AES_GCM, kid, body)
    raw = wk.to_bytes()
    assert raw == b"\x01" + kid + b"\x00\x3c" + body
    assert len(raw) == wk.encoded_length == 1 + 16 + 2 + 60
    assert WrappedKey.from_bytes(raw) == wk
    assert WrappedKey.from_bytes(bytearray(raw)) == wk
    wk2 = WrappedKey(SCHEME_PKCS11_AES_KEY_WRAP, kid, bytes(40))
    assert wk2.to_bytes()[:1] == b"\x02" and wk2.to_bytes()[17:19] == struct.pack(">H", 40)
    # inside a larger header
    parsed, used = WrappedKey.from_prefix(raw + b"trailing")
    assert parsed == wk and used == len(raw)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x01" + bytes(16),  # no length field
        b"\x00" + bytes(16) + b"\x00\x3c" + bytes(60),  # scheme 0
        b"\x03" + bytes(16) + b"\x00\x3c" + bytes(60),  # scheme 3
        b"\xff" + bytes(16) + b"\x00\x28" + bytes(40),  # scheme 255
        b"\x01" + bytes(16) + b"\x00\x3c" + bytes(59),  # truncated
        b"\x01" + bytes(16) + b"\x00\x3c" + bytes(61),  # trailing byte
        b"\x01" + bytes(16) + b"\x00\x28" + bytes(40),  # scheme 1 with a 40-byte body
        b"\x02" + bytes(16) + b"\x00\x3c" + bytes(60),  # scheme 2 with a 60-byte body
        b"\x02" + bytes(16) + b"\x00\x00",  # empty body
    ],
)
def test_malformed_wrapped_bytes_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError) as ei:
        WrappedKey.from_bytes(data)
    assert isinstance(ei.value, WrappedKeyFormatError) and isinstance(ei.value, KmsError)
    assert isinstance(ei.value, ExitlessError)


def test_wrapped_key_constructor_validates() -> None:
    with pytest.raises(ValueError, match="unknown wrapped key scheme 7"):
        WrappedKey(7, bytes(16), bytes(60))
    with pytest.raises(ValueError, match="16 bytes"):
        WrappedKey(1, bytes(15), bytes(60))
    with pytest.raises(ValueError, match="exactly 60"):
        WrappedKey(1, bytes(16), bytes(59))
    with pytest.raises(ValueError):
        WrappedKey(True, bytes(16), bytes(60))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- LocalKms


def test_init_creates_0600_keyring_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "kr.json"
    old_umask = os.umask(0o022)
    try:
        kms = LocalKms.init(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert len(doc["keys"]) == 1
    entry = doc["keys"][0]
    assert doc["current"] == entry["id"] == kms.current_key_id.hex()
    assert len(bytes.fromhex(entry["id"])) == 16
    assert len(base64.b64decode(entry["key"])) == 32
    assert entry["created"].endswith("Z")
    infos = kms.list_keys()
    assert [(i.key_id, i.current) for i in infos] == [(kms.current_key_id, True)]
    assert kms.uri == f"local:{path}"
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        LocalKms.init(path)
    assert path.read_bytes() == before
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(FileExistsError):
        LocalKms.init(tmp_path / "link")
    assert not (tmp_path / "elsewhere.json").exists()


def test_local_round_trip(keyring: Path) -> None:
    kms = open_kms(f"local:{keyring}")
    assert isinstance(kms, LocalKms) and isinstance(kms, Kms)
    key, wk = kms.generate_data_key()
    assert isinstance(key, Key)
    assert wk.scheme == SCHEME_LOCAL_AES_GCM
    assert wk.primary_key_id == kms.current_key_id
    assert len(wk.wrapped) == 60
    assert kms.unwrap(wk) == key
    assert kms.unwrap(wk.to_bytes()) == key
    assert kms.unwrap(WrappedKey.from_bytes(wk.to_bytes())) == key
    # fresh key and nonce every time
    key2, wk2 = kms.generate_data_key()
    assert key2 != key and wk2.wrapped[:12] != wk.wrapped[:12]
    # another process/instance reading the file
    with LocalKms(keyring) as again:
        assert again.unwrap(wk) == key
        assert again.unwrap(wk2) == key2


def test_local_wrap_matches_documented_construction(keyring: Path) -> None:
    """Scheme 1 is nonce ‖ AES-256-GCM(primary, data key, AAD = prefix ‖ 0x01 ‖ id)."""
    kms = LocalKms(keyring)
    key, wk = kms.generate_data_key()
    primary = keyring_secrets(keyring)[wk.primary_key_id]
    aad = b"exitless wrap v1" + b"\x01" + wk.primary_key_id
    assert WRAP_AAD_PREFIX == b"exitless wrap v1"
    nonce, body = wk.wrapped[:12], wk.wrapped[12:]
    assert AESGCM(primary).decrypt(nonce, body, aad) == key.secret_bytes()
    # And the other direction: something wrapped by hand per the spec unwraps.
    dk = os.urandom(32)
    nonce = os.urandom(12)
    manual = WrappedKey(1, wk.primary_key_id, nonce + AESGCM(primary).encrypt(nonce, dk, aad))
    assert kms.unwrap(manual).secret_bytes() == dk
    # A different AAD (e.g. no scheme byte) is rejected.
    bad = WrappedKey(
        1,
        wk.primary_key_id,
        nonce + AESGCM(primary).encrypt(nonce, dk, b"exitless wrap v1" + wk.primary_key_id),
    )
    with pytest.raises(UnwrapError):
        kms.unwrap(bad)


def test_local_wrong_primary_key_is_rejected(tmp_path: Path) -> None:
    a = LocalKms.init(tmp_path / "a.json")
    b = LocalKms.init(tmp_path / "b.json")
    key, wk = a.generate_data_key()
    with pytest.raises(UnwrapError, match=wk.primary_key_id.hex()) as ei:
        b.unwrap(wk)
    assert "not in" in str(ei.value)
    # Same keyring, two primaries: data key wrapped under A, relabelled as under B.
    id_a = a.current_key_id
    id_b = a.rotate()
    relabelled = WrappedKey(1, id_b, wk.wrapped)
    assert wk.primary_key_id == id_a
    with pytest.raises(UnwrapError, match=id_b.hex()) as ei:
        a.unwrap(relabelled)
    assert "authentication" in str(ei.value)
    # B's keyring holding a primary with A's id but other bytes: still rejected.
    doc = json.loads((tmp_path / "b.json").read_text())
    doc["keys"][0]["id"] = id_a.hex()
    doc["current"] = id_a.hex()
    (tmp_path / "b2.json").write_text(json.dumps(doc))
    os.chmod(tmp_path / "b2.json", 0o600)
    with pytest.raises(UnwrapError):
        LocalKms(tmp_path / "b2.json").unwrap(wk)
    assert a.unwrap(wk) == key


def test_local_every_flipped_bit_is_rejected(keyring: Path) -> None:
    kms = LocalKms(keyring)
    key, wk = kms.generate_data_key()
    raw = wk.to_bytes()
    assert kms.unwrap(raw) == key
    for byte in range(len(raw)):
        for bit in range(8):
            bad = flip(raw, byte, bit)
            with pytest.raises((WrappedKeyFormatError, UnwrapError)) as ei:
                kms.unwrap(WrappedKey.from_bytes(bad))
            if byte == 0 or byte in (17, 18):  # scheme, length field
                assert isinstance(ei.value, WrappedKeyFormatError), (byte, bit)
            else:  # key id (unknown key), nonce, ciphertext, tag (authentication)
                assert isinstance(ei.value, UnwrapError), (byte, bit)


def test_local_rotation(keyring: Path) -> None:
    kms = LocalKms(keyring)
    other = LocalKms(keyring)  # opened before the rotation, e.g. another executor
    old_id = kms.current_key_id
    old_key, old_wk = kms.generate_data_key()
    new_id = kms.rotate()
    assert new_id != old_id and len(new_id) == 16
    assert kms.current_key_id == new_id
    infos = kms.list_keys()
    assert [i.key_id for i in infos] == [old_id, new_id]
    assert [i.current for i in infos] == [False, True]
    assert infos[0].created < infos[1].created
    new_key, new_wk = kms.generate_data_key()
    assert new_wk.primary_key_id == new_id
    assert kms.unwrap(old_wk) == old_key
    assert kms.unwrap(new_wk) == new_key
    # explicit old primary still wraps on request
    k3, wk3 = kms.generate_data_key(old_id)
    assert wk3.primary_key_id == old_id and kms.unwrap(wk3) == k3
    # the rewritten file is still 0600, with no temp files left behind
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert sorted(p.name for p in keyring.parent.iterdir()) == ["keyring.json", "keyring.json.lock"]
    # the instance opened before sees the rotation
    assert other.current_key_id == new_id
    assert other.generate_data_key()[1].primary_key_id == new_id
    assert other.unwrap(new_wk) == new_key
    id3 = other.create_key()
    assert kms.unwrap(other.generate_data_key()[1]).key_id is not None
    assert [i.key_id for i in LocalKms(keyring).list_keys()] == [old_id, new_id, id3]
    with pytest.raises(KmsError, match="no primary key"):
        kms.generate_data_key(bytes(16))


def test_local_concurrent_rotations_lose_no_key(keyring: Path) -> None:
    a, b = LocalKms(keyring), LocalKms(keyring)
    made: list[bytes] = []
    lock = threading.Lock()

    def rotate(kms: LocalKms) -> None:
        for _ in range(5):
            kid = kms.rotate()
            with lock:
                made.append(kid)

    threads = [threading.Thread(target=rotate, args=(k,)) for k in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {i.key_id for i in LocalKms(keyring).list_keys()}
    assert len(ids) == 11 and set(made) <= ids


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610])
def test_keyring_readable_by_others_is_refused(keyring: Path, mode: int) -> None:
    os.chmod(keyring, mode)
    with pytest.raises(InsecureKeyringError) as ei:
        LocalKms(keyring)
    assert isinstance(ei.value, PermissionError)
    assert str(keyring) in str(ei.value) and f"{mode:o}" in str(ei.value)
    with pytest.raises(PermissionError):
        open_kms(f"local:{keyring}")
    os.chmod(keyring, 0o400)
    LocalKms(keyring).close()


def test_keyring_chmodded_after_open_is_refused(keyring: Path) -> None:
    kms = LocalKms(keyring)
    key, wk = kms.generate_data_key()
    os.chmod(keyring, 0o644)
    with pytest.raises(InsecureKeyringError, match="644"):
        kms.generate_data_key()
    with pytest.raises(InsecureKeyringError):
        kms.unwrap(wk)
    os.chmod(keyring, 0o600)
    assert kms.unwrap(wk) == key


def test_malformed_keyrings(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    LocalKms.init(good).close()
    doc = json.loads(good.read_text())
    secret = keyring_secrets(good)
    short = base64.b64encode(next(iter(secret.values()))[:31]).decode()

    def write(name: str, text: str) -> Path:
        p = tmp_path / name
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return p

    cases = {
        "notjson": "{not json",
        "array": "[]",
        "version": json.dumps({**doc, "version": 2}),
        "shortkey": json.dumps({**doc, "keys": [{**doc["keys"][0], "key": short}]}),
        "badb64": json.dumps({**doc, "keys": [{**doc["keys"][0], "key": "!!" + doc["keys"][0]["key"]}]}),
        "badid": json.dumps({**doc, "keys": [{**doc["keys"][0], "id": "abcd"}]}),
        "dup": json.dumps({**doc, "keys": doc["keys"] * 2}),
        "current": json.dumps({**doc, "current": "00" * 16}),
        "created": json.dumps({**doc, "keys": [{**doc["keys"][0], "created": "yesterday"}]}),
    }
    for name, text in cases.items():
        p = write(name, text)
        with pytest.raises(KeyringFormatError) as ei:
            LocalKms(p)
        assert isinstance(ei.value, ValueError)
        assert str(p) in str(ei.value), name
        assert_no_secret(error_text(ei.value), list(secret.values()))
        assert short not in str(ei.value)


def test_local_closed_kms_refuses_and_wipes(keyring: Path) -> None:
    kms = LocalKms(keyring)
    _, wk = kms.generate_data_key()
    kms.close()
    with pytest.raises(KmsError, match="closed"):
        kms.unwrap(wk)
    with pytest.raises(KmsError, match="closed"):
        kms.generate_data_key()
    assert all(b == 0 for buf in kms._keys.values() for b in buf)


def test_local_no_key_bytes_in_reprs_or_errors(tmp_path: Path) -> None:
    a = LocalKms.init(tmp_path / "a.json")
    b = LocalKms.init(tmp_path / "b.json")
    a.rotate()
    key, wk = a.generate_data_key()
    secrets_ = list(keyring_secrets(tmp_path / "a.json").values()) + list(
        keyring_secrets(tmp_path / "b.json").values()
    )
    secrets_.append(key.secret_bytes())
    texts = [
        repr(key),
        str(key),
        repr(wk),
        str(wk),
        repr(a),
        str(a),
        repr(a.list_keys()),
        str(a.list_keys()[0]),
        a.uri,
    ]
    errors: list[BaseException] = []
    for attempt in (
        lambda: b.unwrap(wk),  # unknown primary
        lambda: a.unwrap(WrappedKey(1, wk.primary_key_id, flip(wk.wrapped, 30, 1))),  # bad tag
        lambda: a.unwrap(WrappedKey(1, a.list_keys()[0].key_id, wk.wrapped)),  # other primary
        lambda: a.unwrap(WrappedKey(2, wk.primary_key_id, bytes(40))),  # other scheme
        lambda: WrappedKey.from_bytes(wk.to_bytes()[:-1]),
    ):
        with pytest.raises(KmsError) as ei:
            attempt()
        errors.append(ei.value)
    os.chmod(tmp_path / "a.json", 0o644)
    with pytest.raises(InsecureKeyringError) as ei:
        LocalKms(tmp_path / "a.json")
    errors.append(ei.value)
    for e in errors:
        if isinstance(e, UnwrapError):  # names the key id, as 32 hex digits
            assert re.search(r"primary key [0-9a-f]{32}\b", str(e)), str(e)
        texts.append(error_text(e))
    for t in texts:
        assert_no_secret(t, secrets_)


def test_kms_uri_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for uri in ("local:", "s3://bucket/key", "kms", "file:/tmp/x"):
        with pytest.raises(KmsConfigError):
            open_kms(uri)
    with pytest.raises(FileNotFoundError):
        open_kms(f"local:{tmp_path / 'missing.json'}")
    m = f"module={SOFTHSM_MODULE}"
    bad = {
        f"pkcs11:{m};token=t;pin-value=987654": "never",
        f"pkcs11:{m};token=t;pin=987654": "never",
        f"pkcs11:token=t?{m}&pin-source=987654": "never",
        f"pkcs11:{m};pin-env=X": "token",
        "pkcs11:token=t;pin-env=X": "module",
        f"pkcs11:{m};token=t": "exactly one",
        f"pkcs11:{m};token=t;pin-env=X;pin-file=/p": "exactly one",
        f"pkcs11:{m};token=t;pin-env=X;slot=3": "unknown",
        f"pkcs11:{m};token=t;token=u;pin-env=X": "twice",
        f"pkcs11:{m};token=;pin-env=X": "empty",
    }
    for uri, why in bad.items():
        with pytest.raises(KmsConfigError, match=why) as ei:
            open_kms(uri)
        assert "987654" not in str(ei.value)
    monkeypatch.delenv("EXITLESS_NO_SUCH_PIN", raising=False)
    with pytest.raises(KmsConfigError, match="EXITLESS_NO_SUCH_PIN"):
        open_kms(f"pkcs11:{m};token=t;pin-env=EXITLESS_NO_SUCH_PIN")
    pin_file = tmp_path / "pin"
    pin_file.write_text("987654\n")
    os.chmod(pin_file, 0o644)
    with pytest.raises(InsecureKeyringError, match="PIN file") as ei:
        open_kms(f"pkcs11:{m};token=t;pin-file={pin_file}")
    assert "987654" not in str(ei.value)


# --------------------------------------------------------------------------- PKCS#11 / SoftHSM2

INSTALL_HINT = (
    "the PKCS#11 tests need SoftHSM2 and python-pkcs11: "
    "`apt-get install -y softhsm2` (provides softhsm2-util and /usr/lib/softhsm/libsofthsm2.so) "
    "and `.venv/bin/pip install python-pkcs11`"
)


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory):
    """Initialises the SoftHSM2 tokens in TOKENS (all before the module is first
    loaded: SoftHSM reads its token directory at C_Initialize)."""
    missing = []
    if shutil.which("softhsm2-util") is None:
        missing.append("softhsm2-util")
    if not os.path.exists(SOFTHSM_MODULE):
        missing.append(SOFTHSM_MODULE)
    try:
        import pkcs11
    except ImportError:
        pkcs11 = None
        missing.append("python module pkcs11")
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {INSTALL_HINT}", pytrace=False)

    if SOFTHSM_MODULE in getattr(
        pkcs11, "_loaded", {}
    ):  # pragma: no cover - only if something else loaded it first
        pytest.fail(
            "libsofthsm2 was already loaded in this process with another configuration", pytrace=False
        )
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    saved = {k: os.environ.get(k) for k in ("SOFTHSM2_CONF", PIN_ENV)}
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[PIN_ENV] = PIN
    for label in TOKENS:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
    yield {"base": base}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def hsm_uri(token: str) -> str:
    return f"pkcs11:module={SOFTHSM_MODULE};token={token};pin-env={PIN_ENV}"


def inspect_session(token: str):
    """A second, independent session on the token (the application is logged in by
    the open Pkcs11Kms, so it sees private objects without logging in again)."""
    import pkcs11

    return pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=token).open(rw=True)


def test_pkcs11_round_trip(hsm, tmp_path: Path) -> None:
    with open_kms(hsm_uri("exl-a")) as kms:
        assert isinstance(kms, Pkcs11Kms)
        kid = kms.create_key()
        assert len(kid) == 16 and kms.current_key_id == kid
        key, wk = kms.generate_data_key()
        assert isinstance(key, Key)
        assert wk.scheme == SCHEME_PKCS11_AES_KEY_WRAP and wk.primary_key_id == kid
        assert len(wk.wrapped) == 40 and len(wk.to_bytes()) == 59
        assert kms.unwrap(wk) == key
        assert kms.unwrap(WrappedKey.from_bytes(wk.to_bytes())) == key
        key2, wk2 = kms.generate_data_key(kid)
        assert key2 != key and wk2.wrapped != wk.wrapped
        # PIN from a 0600 file, second instance on the same token
        pin_file = tmp_path / "pin"
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, PIN.encode() + b"\n")
        os.close(fd)
        with open_kms(f"pkcs11:module={SOFTHSM_MODULE};token=exl-a;pin-file={pin_file}") as again:
            assert again.unwrap(wk) == key and again.unwrap(wk2) == key2
        assert kms.unwrap(wk) == key  # closing the other instance did not log us out
    # reopened after every instance closed (logged out and in again)
    with open_kms(hsm_uri("exl-a")) as kms:
        assert kms.unwrap(wk) == key


def test_pkcs11_wrong_primary_is_rejected(hsm) -> None:
    with open_kms(hsm_uri("exl-a")) as a, open_kms(hsm_uri("exl-b")) as b:
        id1 = a.create_key()
        id2 = a.create_key()
        key, wk = a.generate_data_key(id1)
        assert a.unwrap(wk) == key
        with pytest.raises(UnwrapError, match=id2.hex()):
            a.unwrap(WrappedKey(2, id2, wk.wrapped))  # RFC 3394 integrity check fails
        b.create_key()
        with pytest.raises(UnwrapError, match=id1.hex()) as ei:
            b.unwrap(wk)  # B's token does not hold primary id1
        assert "not on token" in str(ei.value)
        with pytest.raises(UnwrapError):
            b.unwrap(WrappedKey(2, b.current_key_id, wk.wrapped))


def test_pkcs11_flipped_bits_are_rejected(hsm) -> None:
    with open_kms(hsm_uri("exl-a")) as kms:
        kms.create_key()
        key, wk = kms.generate_data_key()
        raw = wk.to_bytes()
        for byte in (0, 1, 16, 17, 18, 19, 30, 58):
            for bit in range(8):
                with pytest.raises((WrappedKeyFormatError, UnwrapError)) as ei:
                    kms.unwrap(WrappedKey.from_bytes(flip(raw, byte, bit)))
                assert isinstance(ei.value, WrappedKeyFormatError if byte in (0, 17, 18) else UnwrapError), (
                    byte,
                    bit,
                )
        assert kms.unwrap(raw) == key


def test_pkcs11_rotation(hsm) -> None:
    with open_kms(hsm_uri("exl-rot")) as kms:
        assert kms.list_keys() == []
        id1 = kms.create_key()
        k1, w1 = kms.generate_data_key()
        id2 = kms.rotate()
        assert id2 != id1 and kms.current_key_id == id2
        infos = kms.list_keys()
        assert [(i.key_id, i.current) for i in infos] == [(id1, False), (id2, True)]
        assert infos[0].created < infos[1].created
        k2, w2 = kms.generate_data_key()
        assert w1.primary_key_id == id1 and w2.primary_key_id == id2
        assert kms.unwrap(w1) == k1 and kms.unwrap(w2) == k2
        with open_kms(hsm_uri("exl-rot")) as other:
            assert [(i.key_id, i.current) for i in other.list_keys()] == [(id1, False), (id2, True)]
            id3 = other.rotate()
        assert kms.current_key_id == id3
        assert kms.generate_data_key()[1].primary_key_id == id3
        assert kms.unwrap(w1) == k1


def test_pkcs11_primary_key_cannot_leave_the_token(hsm) -> None:
    import pkcs11
    from pkcs11 import Attribute as A

    with open_kms(hsm_uri("exl-prot")) as kms:
        kid = kms.create_key()
        key, wk = kms.generate_data_key()
        session = inspect_session("exl-prot")
        try:
            (prim,) = list(session.get_objects({A.CLASS: pkcs11.ObjectClass.SECRET_KEY, A.ID: kid}))
            attrs = prim.get_attributes(
                [
                    A.TOKEN,
                    A.PRIVATE,
                    A.SENSITIVE,
                    A.ALWAYS_SENSITIVE,
                    A.EXTRACTABLE,
                    A.NEVER_EXTRACTABLE,
                    A.WRAP,
                    A.UNWRAP,
                    A.ENCRYPT,
                    A.DECRYPT,
                    A.SIGN,
                    A.DERIVE,
                    A.MODIFIABLE,
                    A.LOCAL,
                    A.KEY_TYPE,
                    A.VALUE_LEN,
                    A.LABEL,
                ]
            )
            assert attrs[A.TOKEN] and attrs[A.PRIVATE] and attrs[A.SENSITIVE] and attrs[A.ALWAYS_SENSITIVE]
            assert not attrs[A.EXTRACTABLE] and attrs[A.NEVER_EXTRACTABLE] and attrs[A.LOCAL]
            assert attrs[A.WRAP] and attrs[A.UNWRAP]
            assert not (
                attrs[A.ENCRYPT]
                or attrs[A.DECRYPT]
                or attrs[A.SIGN]
                or attrs[A.DERIVE]
                or attrs[A.MODIFIABLE]
            )
            assert attrs[A.KEY_TYPE] == pkcs11.KeyType.AES and attrs[A.VALUE_LEN] == 32
            assert kid.hex() in attrs[A.LABEL]

            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                prim[A.VALUE]
            kek = session.generate_key(
                pkcs11.KeyType.AES,
                256,
                store=False,
                capabilities=pkcs11.MechanismFlag.WRAP | pkcs11.MechanismFlag.UNWRAP,
            )
            for mech in (pkcs11.Mechanism.AES_KEY_WRAP, pkcs11.Mechanism.AES_KEY_WRAP_PAD):
                with pytest.raises(pkcs11.exceptions.PKCS11Error):
                    kek.wrap_key(prim, mechanism=mech)
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                prim.wrap_key(prim, mechanism=pkcs11.Mechanism.AES_KEY_WRAP)
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                prim[A.EXTRACTABLE] = True
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                prim[A.SENSITIVE] = False
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                prim.copy({A.EXTRACTABLE: True, A.SENSITIVE: False})
            # nothing changed, and it still works
            assert not prim[A.EXTRACTABLE] and prim[A.SENSITIVE]
            assert len(list(session.get_objects({A.CLASS: pkcs11.ObjectClass.SECRET_KEY, A.ID: kid}))) == 1
            # the session objects made for the data key (generate and unwrap) were destroyed
            assert kms.unwrap(wk) == key
            leftovers = [
                o for o in session.get_objects({A.CLASS: pkcs11.ObjectClass.SECRET_KEY, A.SENSITIVE: False})
            ]
            assert leftovers == []
        finally:
            session.close()
        assert kms.unwrap(wk) == key


def test_pkcs11_refuses_an_extractable_key_with_an_exitless_label(hsm) -> None:
    import pkcs11
    from pkcs11 import Attribute as A

    with open_kms(hsm_uri("exl-rogue")) as kms:
        kms.create_key()
        rogue_id = bytes(range(16))
        session = inspect_session("exl-rogue")
        try:
            session.create_object(
                {
                    A.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                    A.KEY_TYPE: pkcs11.KeyType.AES,
                    A.TOKEN: True,
                    A.PRIVATE: True,
                    A.VALUE: bytes(32),
                    A.ID: rogue_id,
                    A.WRAP: True,
                    A.UNWRAP: True,
                    A.EXTRACTABLE: True,
                    A.SENSITIVE: False,
                    A.LABEL: f"exitless-kms-v1:{rogue_id.hex()}:2999-01-01T00:00:00.000000Z",
                }
            )
        finally:
            session.close()
        with pytest.raises(KmsError, match="CKA_EXTRACTABLE") as ei:
            kms.generate_data_key()
        assert rogue_id.hex() in str(ei.value)
        with pytest.raises(KmsError):
            kms.list_keys()


def test_scheme_2_is_rfc3394(hsm) -> None:
    """What the token produces under CKM_AES_KEY_WRAP is RFC 3394 with the default
    IV: checked with a throwaway, importable key-encryption key."""
    import pkcs11
    from pkcs11 import Attribute as A

    with open_kms(hsm_uri("exl-a")):
        session = inspect_session("exl-a")
        try:
            kek_bytes, dk_bytes = os.urandom(32), os.urandom(32)
            kek = session.create_object(
                {
                    A.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                    A.KEY_TYPE: pkcs11.KeyType.AES,
                    A.TOKEN: False,
                    A.VALUE: kek_bytes,
                    A.WRAP: True,
                    A.UNWRAP: True,
                }
            )
            dk = session.create_object(
                {
                    A.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                    A.KEY_TYPE: pkcs11.KeyType.AES,
                    A.TOKEN: False,
                    A.VALUE: dk_bytes,
                    A.EXTRACTABLE: True,
                }
            )
            wrapped = kek.wrap_key(dk, mechanism=pkcs11.Mechanism.AES_KEY_WRAP)
            assert wrapped == keywrap.aes_key_wrap(kek_bytes, dk_bytes)
            assert keywrap.aes_key_unwrap(kek_bytes, wrapped) == dk_bytes
            WrappedKey(SCHEME_PKCS11_AES_KEY_WRAP, bytes(16), wrapped)  # the length scheme 2 expects
            kek.destroy()
            dk.destroy()
        finally:
            session.close()


def test_schemes_are_not_crossed(hsm, keyring: Path) -> None:
    local = LocalKms(keyring)
    lk, lw = local.generate_data_key()
    with open_kms(hsm_uri("exl-a")) as token:
        token.create_key()
        tk, tw = token.generate_data_key()
        with pytest.raises(UnwrapError, match="scheme"):
            token.unwrap(lw)
        with pytest.raises(UnwrapError, match="scheme"):
            local.unwrap(tw)
        assert token.unwrap(tw) == tk and local.unwrap(lw) == lk


def test_pkcs11_empty_token_and_closed_kms(hsm) -> None:
    kms = open_kms(hsm_uri("exl-empty"))
    assert kms.list_keys() == []
    with pytest.raises(KmsError, match="no primary key"):
        _ = kms.current_key_id
    with pytest.raises(KmsError, match="no primary key"):
        kms.generate_data_key()
    with pytest.raises(KmsError, match="no primary key"):
        kms.generate_data_key(bytes(16))
    with pytest.raises(UnwrapError):
        kms.unwrap(WrappedKey(2, bytes(16), bytes(40)))
    kms.close()
    with pytest.raises(KmsError, match="closed"):
        kms.list_keys()
    with pytest.raises(KmsConfigError, match="no PKCS#11 token labelled"):
        open_kms(hsm_uri("exl-nonexistent"))


def test_pkcs11_no_secrets_in_reprs_or_errors(hsm, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong_pin = "99887766"
    with pytest.raises(KmsError) as ei:
        Pkcs11Kms(SOFTHSM_MODULE, "exl-pin", wrong_pin)
    assert "exl-pin" in str(ei.value)
    assert wrong_pin not in error_text(ei.value)
    with open_kms(hsm_uri("exl-a")) as kms:
        with pytest.raises(KmsError, match="different PIN") as ei:
            Pkcs11Kms(SOFTHSM_MODULE, "exl-a", wrong_pin)
        assert wrong_pin not in error_text(ei.value)
        kms.create_key()
        key, wk = kms.generate_data_key()
        texts = [repr(kms), str(kms), kms.uri, repr(key), repr(wk), repr(kms.list_keys())]
        for attempt in (
            lambda: kms.unwrap(WrappedKey(2, wk.primary_key_id, flip(wk.wrapped, 3, 0))),
            lambda: kms.unwrap(WrappedKey(2, bytes(16), wk.wrapped)),
            lambda: kms.unwrap(WrappedKey(1, wk.primary_key_id, bytes(60))),
        ):
            with pytest.raises(UnwrapError) as ei:
                attempt()
            texts.append(error_text(ei.value))
        for t in texts:
            assert_no_secret(t, [key.secret_bytes()])
            assert PIN not in t


# --------------------------------------------------------------------------- open_sealed (format version 2)

CANARY = b"exitless-canary-7f3e9a1c" * 50


def sealed_round_trip(kms: Kms, path: Path, **options: object) -> None:
    """Writes with open_sealed "wb", checks the header, reads back with "rb"."""
    import exitless

    data = CANARY + os.urandom(100_000)
    with open_sealed(path, "wb", kms, b"ctx", **options) as f:
        f.write(data)
    raw = path.read_bytes()
    assert CANARY[:24] not in raw
    info = exitless.inspect(path)
    wk = WrappedKey.from_bytes(info.envelope)
    assert (info.version, info.key_id, info.header_size) == (2, wk.primary_key_id, 72 + wk.encoded_length)
    assert wk.primary_key_id == kms.current_key_id
    with open_sealed(path, "rb", kms, b"ctx", **options) as f:
        assert f.read() == data
    with pytest.raises(exitless.IntegrityError), open_sealed(path, "rb", kms, b"other context") as f:
        f.read()


def assert_envelope_tamper_rejected(kms: Kms, path: Path) -> None:
    """Every single-bit flip in the header (envelope included) is refused, and never
    yields plaintext."""
    import exitless

    good = path.read_bytes()
    info = exitless.inspect(path)
    bad_path = path.with_suffix(".bad")
    for byte in range(info.header_size):
        for bit in (0, 3, 7):
            bad_path.write_bytes(flip(good, byte, bit))
            with (
                pytest.raises((exitless.FormatError, exitless.IntegrityError, KmsError)),
                open_sealed(bad_path, "rb", kms, b"ctx") as f,
            ):
                f.read()


def test_open_sealed_local_round_trip_and_tamper(keyring: Path, tmp_path: Path) -> None:
    import exitless

    with LocalKms(keyring) as kms:
        kms.create_key()
        path = tmp_path / "f.exls"
        sealed_round_trip(kms, path)
        sealed_round_trip(
            kms, tmp_path / "g.exls", segment_size=4096, algorithm="chacha20-poly1305", backend="sync"
        )
        assert_envelope_tamper_rejected(kms, path)
        # Rotation: files sealed under the old primary still open.
        kms.rotate()
        with open_sealed(path, "rb", kms, b"ctx") as f:
            assert f.read().startswith(CANARY)
        # A version-1 file carries no wrapped key.
        v1 = tmp_path / "v1.exls"
        with exitless.open_spill(v1, "wb", exitless.generate_key()) as f:
            f.write(b"x")
        with pytest.raises(exitless.FormatError, match="carries no wrapped key"):
            open_sealed(v1, "rb", kms)
        # Argument checks.
        with pytest.raises(TypeError):
            open_sealed(path, "wb", kms, envelope=b"x")
        with pytest.raises(ValueError):
            open_sealed(path, "w+b", kms)


def test_open_sealed_wrong_kms_and_key_id_mismatch(tmp_path: Path) -> None:
    import exitless

    a = LocalKms.init(tmp_path / "a.json")
    b = LocalKms.init(tmp_path / "b.json")
    a.create_key()
    b.create_key()
    path = tmp_path / "f.exls"
    with open_sealed(path, "wb", a) as f:
        f.write(CANARY)
    with pytest.raises(UnwrapError):
        open_sealed(path, "rb", b)
    # A header key id that is not the envelope's primary key id is refused before unwrapping.
    data = bytearray(path.read_bytes())
    data[12] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(exitless.IntegrityError, match="key id"):
        open_sealed(path, "rb", a)
    # An envelope that is not a WrappedKey.
    with exitless.open_spill(path, "wb", exitless.generate_key(), envelope=b"not a wrapped key") as f:
        f.write(b"x")
    with pytest.raises(exitless.FormatError, match="envelope"):
        open_sealed(path, "rb", a)
    a.close()
    b.close()


def test_open_sealed_wipes_data_keys(keyring: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Key] = []
    with LocalKms(keyring) as kms:
        kms.create_key()
        real_generate, real_unwrap = kms.generate_data_key, kms.unwrap

        def generate(key_id: bytes | None = None):
            key, wk = real_generate(key_id)
            made.append(key)
            return key, wk

        def unwrap(wk):
            key = real_unwrap(wk)
            made.append(key)
            return key

        monkeypatch.setattr(kms, "generate_data_key", generate)
        monkeypatch.setattr(kms, "unwrap", unwrap)
        path = tmp_path / "f.exls"
        with open_sealed(path, "wb", kms) as f:
            f.write(b"data")
        with open_sealed(path, "rb", kms) as f:
            assert f.read() == b"data"
    assert len(made) == 2
    for key in made:
        with pytest.raises(ValueError, match="wiped"):
            key.secret_bytes()


def test_open_sealed_pkcs11(hsm, tmp_path: Path) -> None:
    with open_kms(hsm_uri("exl-env-a")) as a, open_kms(hsm_uri("exl-env-b")) as b:
        a.create_key()
        b.create_key()
        path = tmp_path / "h.exls"
        sealed_round_trip(a, path)
        import exitless

        wk = WrappedKey.from_bytes(exitless.inspect(path).envelope)
        assert wk.scheme == SCHEME_PKCS11_AES_KEY_WRAP and len(wk.to_bytes()) == 59
        with pytest.raises(KmsError):
            open_sealed(path, "rb", b)
        assert_envelope_tamper_rejected(a, path)
