"""Envelope encryption: data keys wrapped by a key-management service (KMS).

Every sealed file is encrypted under its own random 32-byte data key
(:class:`exitless.Key`). The data key is stored next to the data only in *wrapped*
form (:class:`WrappedKey`): encrypted under a long-lived **primary key** that lives
in a KMS. Two backends:

- :class:`LocalKms` (``local:PATH``): primary keys in a 0600 JSON keyring file;
  wrapping is AES-256-GCM (scheme 1).
- :class:`Pkcs11Kms` (``pkcs11:module=...;token=...;pin-env=VAR``): primary keys
  are AES-256 secret keys generated inside a PKCS#11 token (e.g. SoftHSM2) that
  can never leave it; wrapping is the token's CKM_AES_KEY_WRAP, RFC 3394
  (scheme 2).

:func:`open_kms` opens either from a URI. :func:`open_sealed` writes and reads
sealed files that carry their wrapped data key in the header (format version 2,
docs/FORMAT.md section 9), so a reader needs only the KMS. The byte layouts, the URI syntax and what
is checked where are in docs/KMS.md.

Key bytes never appear in a ``repr``, a log line or an exception message: errors
name primary keys by their 16-byte key id (hex) only.
"""

from __future__ import annotations

import abc
import base64
import binascii
import datetime as _dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ._errors import ExitlessError
from .keys import KEY_LEN, Key

__all__ = [
    "KEY_ID_LEN",
    "SCHEME_LOCAL_AES_GCM",
    "SCHEME_PKCS11_AES_KEY_WRAP",
    "WRAP_AAD_PREFIX",
    "InsecureKeyringError",
    "KeyInfo",
    "KeyringFormatError",
    "Kms",
    "KmsConfigError",
    "KmsError",
    "LocalKms",
    "Pkcs11Kms",
    "UnwrapError",
    "WrappedKey",
    "WrappedKeyFormatError",
    "open_kms",
    "open_sealed",
]

KEY_ID_LEN = 16
SCHEME_LOCAL_AES_GCM = 1
SCHEME_PKCS11_AES_KEY_WRAP = 2
WRAP_AAD_PREFIX = b"exitless wrap v1"

_GCM_NONCE_LEN = 12
_GCM_TAG_LEN = 16
# Exact length of the ``wrapped`` field of a 32-byte data key, per scheme.
_WRAPPED_LEN = {
    SCHEME_LOCAL_AES_GCM: _GCM_NONCE_LEN + KEY_LEN + _GCM_TAG_LEN,  # 60
    SCHEME_PKCS11_AES_KEY_WRAP: KEY_LEN + 8,  # 40: RFC 3394 adds one 64-bit block
}
_SCHEME_NAMES = {
    SCHEME_LOCAL_AES_GCM: "1 (local AES-256-GCM)",
    SCHEME_PKCS11_AES_KEY_WRAP: "2 (PKCS#11 AES key wrap, RFC 3394)",
}
_HEADER = struct.Struct(">B16sH")  # scheme, primary key id, BE16 len(wrapped)

KEYRING_FORMAT = "exitless-kms-keyring"
KEYRING_VERSION = 1
PKCS11_LABEL_PREFIX = "exitless-kms-v1:"
DEFAULT_SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


# --------------------------------------------------------------------------- errors


class KmsError(ExitlessError):
    """Base class of the KMS's errors. Messages name key ids, never key bytes."""


class UnwrapError(KmsError):
    """A wrapped data key could not be unwrapped: its primary key is unknown to this
    KMS, belongs to another scheme, or authentication failed (wrong primary key or
    modified bytes). No key material is returned."""


class WrappedKeyFormatError(KmsError, ValueError):
    """Bytes that are not a well-formed :class:`WrappedKey` (length, scheme)."""


class KmsConfigError(KmsError, ValueError):
    """A bad KMS URI or configuration (missing PIN variable, missing module...)."""


class KeyringFormatError(KmsError, ValueError):
    """A local keyring file that is not valid JSON in the expected shape."""


class InsecureKeyringError(KmsError, PermissionError):
    """A keyring (or PIN) file that group or others can access."""


# --------------------------------------------------------------------------- data types


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _fmt_time(t: _dt.datetime) -> str:
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _next_created(existing: list[_dt.datetime | None]) -> _dt.datetime:
    """Now, but strictly after every existing creation time (so "newest" is unambiguous)."""
    now = _utcnow()
    latest = max((t for t in existing if t is not None), default=None)
    if latest is not None and now <= latest:
        now = latest + _dt.timedelta(microseconds=1)
    return now


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under a primary key.

    Serialized by :meth:`to_bytes` as::

        scheme (1) ‖ primary_key_id (16) ‖ BE16(len(wrapped)) ‖ wrapped

    ``wrapped`` is 60 bytes for scheme 1 (nonce 12 ‖ ciphertext 32 ‖ tag 16) and
    40 bytes for scheme 2 (RFC 3394 output). Anything else is rejected with
    :class:`WrappedKeyFormatError` (a ``ValueError``).
    """

    scheme: int
    primary_key_id: bytes
    wrapped: bytes

    def __post_init__(self) -> None:
        scheme = self.scheme
        if not isinstance(scheme, int) or isinstance(scheme, bool):
            raise WrappedKeyFormatError(f"wrapped key scheme must be an int, not {type(scheme).__name__}")
        if scheme not in _WRAPPED_LEN:
            raise WrappedKeyFormatError(
                f"unknown wrapped key scheme {scheme} (known: {sorted(_WRAPPED_LEN)})"
            )
        if not isinstance(self.primary_key_id, (bytes, bytearray, memoryview)):
            raise WrappedKeyFormatError("primary_key_id must be bytes")
        if not isinstance(self.wrapped, (bytes, bytearray, memoryview)):
            raise WrappedKeyFormatError("wrapped must be bytes")
        kid = bytes(self.primary_key_id)
        wrapped = bytes(self.wrapped)
        if len(kid) != KEY_ID_LEN:
            raise WrappedKeyFormatError(f"primary key id must be {KEY_ID_LEN} bytes, got {len(kid)}")
        if len(wrapped) != _WRAPPED_LEN[scheme]:
            raise WrappedKeyFormatError(
                f"scheme {scheme} wraps a {KEY_LEN}-byte data key into exactly {_WRAPPED_LEN[scheme]} bytes, got {len(wrapped)}"
            )
        object.__setattr__(self, "primary_key_id", kid)
        object.__setattr__(self, "wrapped", wrapped)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.scheme, self.primary_key_id, len(self.wrapped)) + self.wrapped

    @property
    def encoded_length(self) -> int:
        """``len(self.to_bytes())``."""
        return _HEADER.size + len(self.wrapped)

    @classmethod
    def from_prefix(cls, data: bytes | bytearray | memoryview) -> tuple[WrappedKey, int]:
        """Parses a wrapped key at the start of ``data`` (e.g. inside a file header);
        returns it and the number of bytes it occupied. Trailing bytes are allowed."""
        mv = memoryview(data).cast("B")
        if len(mv) < _HEADER.size:
            raise WrappedKeyFormatError(
                f"a wrapped key is at least {_HEADER.size} bytes (scheme, key id, length), got {len(mv)}"
            )
        scheme, kid, n = _HEADER.unpack_from(mv)
        if scheme not in _WRAPPED_LEN:
            raise WrappedKeyFormatError(
                f"unknown wrapped key scheme {scheme} (known: {sorted(_WRAPPED_LEN)})"
            )
        if n != _WRAPPED_LEN[scheme]:
            raise WrappedKeyFormatError(
                f"scheme {scheme} needs a {_WRAPPED_LEN[scheme]}-byte wrapped key, the length field says {n}"
            )
        end = _HEADER.size + n
        if len(mv) < end:
            raise WrappedKeyFormatError(f"wrapped key truncated: {end} bytes expected, {len(mv)} present")
        return cls(scheme, kid, bytes(mv[_HEADER.size : end])), end

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> WrappedKey:
        """Parses exactly one wrapped key (the whole of ``data``)."""
        wk, end = cls.from_prefix(data)
        total = memoryview(data).nbytes
        if end != total:
            raise WrappedKeyFormatError(f"{total - end} unexpected bytes after the wrapped key ({end} bytes)")
        return wk

    def __repr__(self) -> str:
        name = _SCHEME_NAMES.get(self.scheme, str(self.scheme))
        return f"WrappedKey(scheme={name}, primary_key_id={self.primary_key_id.hex()}, wrapped={len(self.wrapped)} bytes)"

    __str__ = __repr__


@dataclass(frozen=True)
class KeyInfo:
    """What a KMS tells about one primary key (never its bytes)."""

    key_id: bytes
    created: _dt.datetime | None
    current: bool

    def __repr__(self) -> str:
        created = _fmt_time(self.created) if self.created is not None else "unknown"
        return f"KeyInfo(key_id={self.key_id.hex()}, created={created}, current={self.current})"


# --------------------------------------------------------------------------- interface


class Kms(abc.ABC):
    """A key-management service holding primary keys that wrap data keys.

    Primary keys are named by 16-byte key ids. The newest one (made by
    :meth:`create_key`/:meth:`rotate`) is *current* and wraps new data keys; older
    ones are kept so that data keys wrapped under them still unwrap.
    """

    @abc.abstractmethod
    def create_key(self) -> bytes:
        """Makes a new primary key, makes it current, returns its key id."""

    def rotate(self) -> bytes:
        """Makes a new current primary key (old ones still unwrap); returns its id."""
        return self.create_key()

    @abc.abstractmethod
    def list_keys(self) -> list[KeyInfo]:
        """All primary keys, oldest first."""

    @property
    def current_key_id(self) -> bytes:
        """Id of the primary key that wraps new data keys (KmsError if there is none)."""
        for info in self.list_keys():
            if info.current:
                return info.key_id
        raise KmsError(f"{self.uri} has no primary key yet; call create_key()")

    @abc.abstractmethod
    def generate_data_key(self, key_id: bytes | None = None) -> tuple[Key, WrappedKey]:
        """A fresh random 32-byte data key and its wrapped form, under ``key_id`` (or
        the current primary key)."""

    @abc.abstractmethod
    def unwrap(self, wrapped: WrappedKey | bytes) -> Key:
        """The data key inside ``wrapped`` (a :class:`WrappedKey` or its bytes);
        :class:`UnwrapError` if this KMS cannot authenticate it."""

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """Where this KMS lives, e.g. ``local:/etc/exitless/keyring.json`` (no secrets)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases resources and wipes cached key material."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wrapped_for(wrapped: WrappedKey | bytes, scheme: int, uri: str) -> WrappedKey:
    """``wrapped`` as a :class:`WrappedKey`, if it uses the ``scheme`` the KMS at
    ``uri`` handles; else :class:`UnwrapError`."""
    wk = _as_wrapped(wrapped)
    if wk.scheme != scheme:
        raise UnwrapError(
            f"data key under primary key {wk.primary_key_id.hex()} uses scheme {_SCHEME_NAMES[wk.scheme]}, "
            f"which {uri} cannot unwrap (it handles scheme {_SCHEME_NAMES[scheme]})"
        )
    return wk


def _as_wrapped(wrapped: WrappedKey | bytes | bytearray | memoryview) -> WrappedKey:
    if isinstance(wrapped, WrappedKey):
        return wrapped
    if isinstance(wrapped, (bytes, bytearray, memoryview)):
        return WrappedKey.from_bytes(wrapped)
    raise TypeError(f"expected a WrappedKey or its bytes, not {type(wrapped).__name__}")


def _check_key_id(key_id: Any) -> bytes:
    if not isinstance(key_id, (bytes, bytearray, memoryview)) or len(bytes(key_id)) != KEY_ID_LEN:
        raise ValueError(f"a primary key id is {KEY_ID_LEN} bytes")
    return bytes(key_id)


def _wipe(buf: bytearray | None) -> None:
    if buf is not None:
        buf[:] = bytes(len(buf))


#: Largest keyring file :class:`LocalKms` reads (a key entry is ~130 bytes).
KEYRING_MAX = 16 << 20
#: Largest PIN file read for a ``pin-file=`` PKCS#11 URI.
PIN_FILE_MAX = 4096


def _read_private_file(
    path: str, what: str, limit: int, too_large: type[Exception]
) -> tuple[bytearray, os.stat_result]:
    """The bytes (to be wiped by the caller) and ``fstat`` of a keyring or PIN file:
    never through a symbolic link, only a regular file owned by the caller or root
    with no group or other access, at most ``limit`` bytes (see :mod:`exitless._files`)."""
    from ._files import read_private_file

    return read_private_file(
        path, what, limit=limit, insecure=InsecureKeyringError, invalid=KmsConfigError, too_large=too_large
    )


def _local_aad(key_id: bytes) -> bytes:
    return WRAP_AAD_PREFIX + bytes([SCHEME_LOCAL_AES_GCM]) + key_id


def _aesgcm():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - depends on the environment
        raise KmsError("LocalKms needs the 'cryptography' package: pip install 'cryptography>=42'") from None
    return AESGCM


# --------------------------------------------------------------------------- local keyring


class LocalKms(Kms):
    """Primary keys in a JSON keyring file that only its owner may read (mode 0600).

    File (``version`` 1)::

        {"format": "exitless-kms-keyring", "version": 1, "current": "<hex id>",
         "keys": [{"id": "<32 hex>", "created": "2025-01-31T12:00:00.000000Z",
                   "key": "<base64 of 32 bytes>"}, ...]}

    :meth:`init` creates it (refusing to overwrite anything) with one primary key.
    :meth:`create_key`/:meth:`rotate` rewrite it atomically (temp file 0600 +
    ``os.replace``) under an exclusive ``flock`` on ``PATH.lock``, re-reading it
    first, so concurrent rotations by several processes never lose a key. Instances
    notice a rewrite by another process (``stat``) and reload.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.path.abspath(os.fspath(path))
        self._lock = threading.RLock()
        self._keys: dict[bytes, bytearray] = {}
        self._created: dict[bytes, _dt.datetime] = {}
        self._current: bytes | None = None
        self._stamp: tuple[int, ...] | None = None
        self._closed = False
        self._load()

    # -- creation

    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> LocalKms:
        """Creates a new keyring file (mode 0600; fails if ``path`` exists) holding
        one fresh primary key, and opens it."""
        p = os.path.abspath(os.fspath(path))
        key = bytearray(secrets.token_bytes(KEY_LEN))
        kid = secrets.token_bytes(KEY_ID_LEN)
        try:
            data = _keyring_json(kid, {kid: key}, {kid: _utcnow()})
        finally:
            _wipe(key)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(p)
            raise
        os.close(fd)
        _fsync_dir(os.path.dirname(p))
        return cls(p)

    # -- loading

    def _file_stamp(self, st: os.stat_result) -> tuple[int, ...]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)

    def _load(self) -> None:
        """(Re)reads the keyring; on any error the previous state is kept."""
        raw, st = _read_private_file(self._path, "keyring", KEYRING_MAX, KeyringFormatError)
        try:
            current, keys, created = _parse_keyring(raw, self._path)
        finally:
            _wipe(raw)
        old = self._keys
        self._keys, self._created, self._current = keys, created, current
        self._stamp = self._file_stamp(st)
        for buf in old.values():
            _wipe(buf)

    def _refresh(self) -> None:
        """Reloads if another process (or instance) rewrote or chmodded the file."""
        self._check_open()
        try:
            st = os.lstat(self._path)  # a symbolic link put in its place is noticed (and refused)
        except FileNotFoundError:
            raise KmsError(f"keyring {self._path} disappeared") from None
        if self._file_stamp(st) != self._stamp:
            self._load()

    def _check_open(self) -> None:
        if self._closed:
            raise KmsError(f"{self.uri} is closed")

    # -- Kms interface

    @property
    def uri(self) -> str:
        return "local:" + self._path

    @property
    def path(self) -> str:
        return self._path

    def list_keys(self) -> list[KeyInfo]:
        with self._lock:
            self._refresh()
            ids = sorted(self._keys, key=lambda k: (self._created[k], k))
            return [KeyInfo(k, self._created[k], k == self._current) for k in ids]

    @property
    def current_key_id(self) -> bytes:
        with self._lock:
            self._refresh()
            if self._current is None:
                raise KmsError(f"{self.uri} has no primary key yet; call create_key()")
            return self._current

    def create_key(self) -> bytes:
        with self._lock:
            self._check_open()
            lock_fd = _open_lock_file(self._path + ".lock")
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                self._load()  # merge whatever other processes wrote meanwhile
                kid = secrets.token_bytes(KEY_ID_LEN)
                while kid in self._keys:  # pragma: no cover - 2^-128
                    kid = secrets.token_bytes(KEY_ID_LEN)
                key = bytearray(secrets.token_bytes(KEY_LEN))
                keys = dict(self._keys)
                keys[kid] = key
                created = dict(self._created)
                created[kid] = _next_created(list(created.values()))
                data = _keyring_json(kid, keys, created)
                try:
                    _atomic_replace(self._path, data)
                except BaseException:
                    _wipe(key)
                    raise
                self._keys[kid] = key
                self._created[kid] = created[kid]
                self._current = kid
                self._stamp = self._file_stamp(os.stat(self._path))
                return kid
            finally:
                os.close(lock_fd)  # releases the flock

    def generate_data_key(self, key_id: bytes | None = None) -> tuple[Key, WrappedKey]:
        with self._lock:
            self._refresh()
            kid = self._current if key_id is None else _check_key_id(key_id)
            if kid is None:
                raise KmsError(f"{self.uri} has no primary key yet; call create_key()")
            primary = self._keys.get(kid)
            if primary is None:
                raise KmsError(f"{self.uri} has no primary key {kid.hex()}")
            data_key = Key.generate()
            nonce = os.urandom(_GCM_NONCE_LEN)
            sealed = _aesgcm()(primary).encrypt(nonce, data_key._buffer(), _local_aad(kid))
        return data_key, WrappedKey(SCHEME_LOCAL_AES_GCM, kid, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey | bytes) -> Key:
        wk = _wrapped_for(wrapped, SCHEME_LOCAL_AES_GCM, self.uri)
        kid = wk.primary_key_id
        with self._lock:
            self._refresh()
            primary = self._keys.get(kid)
            if primary is None:
                raise UnwrapError(f"cannot unwrap data key: primary key {kid.hex()} is not in {self.uri}")
            aesgcm = _aesgcm()
            from cryptography.exceptions import InvalidTag

            out = bytearray(KEY_LEN)
            try:
                nonce, body = wk.wrapped[:_GCM_NONCE_LEN], wk.wrapped[_GCM_NONCE_LEN:]
                cipher = aesgcm(primary)
                try:
                    if hasattr(cipher, "decrypt_into"):  # newer cryptography: no immutable copy
                        cipher.decrypt_into(nonce, body, _local_aad(kid), out)
                    else:  # pragma: no cover - older cryptography
                        out[:] = cipher.decrypt(nonce, body, _local_aad(kid))
                except InvalidTag:
                    raise UnwrapError(
                        f"data key under primary key {kid.hex()} failed authentication "
                        "(wrong primary key, or the wrapped key was modified)"
                    ) from None
                return Key(out)
            finally:
                _wipe(out)

    def close(self) -> None:
        with self._lock:
            for buf in self._keys.values():
                _wipe(buf)
            self._keys.clear()
            self._closed = True

    def __del__(self) -> None:
        try:
            for buf in self._keys.values():
                _wipe(buf)
        except Exception:
            pass

    def __repr__(self) -> str:
        state = (
            "closed"
            if self._closed
            else f"{len(self._keys)} keys, current={self._current.hex() if self._current else None}"
        )
        return f"<LocalKms {self.uri} ({state})>"

    __str__ = __repr__


def _open_lock_file(path: str) -> int:
    """Opens (creating it 0600 if needed) the keyring's lock file. A symbolic link at
    ``path`` is refused, not followed (``O_NOFOLLOW``): nothing is created at its
    target. So is anything but a regular file owned by the caller or root."""
    from ._files import describe_mode, open_nofollow

    fd = open_nofollow(
        path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, "keyring lock file", InsecureKeyringError
    )
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KmsConfigError(
                f"keyring lock file {path} is {describe_mode(st.st_mode)}, not a regular file"
            )
        if st.st_uid not in (os.geteuid(), 0):
            raise InsecureKeyringError(
                f"keyring lock file {path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}) or root; refusing it"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _keyring_json(
    current: bytes, keys: dict[bytes, bytearray], created: dict[bytes, _dt.datetime]
) -> bytearray:
    ordered = sorted(keys, key=lambda k: (created[k], k))
    doc = {
        "format": KEYRING_FORMAT,
        "version": KEYRING_VERSION,
        "current": current.hex(),
        "keys": [
            {
                "id": k.hex(),
                "created": _fmt_time(created[k]),
                "key": base64.b64encode(keys[k]).decode("ascii"),
            }
            for k in ordered
        ],
    }
    return bytearray(json.dumps(doc, indent=2).encode("ascii") + b"\n")


def _describe(value: Any) -> str:
    """A short description of a JSON value for an error message: scalars as such
    (strings cut to 40 characters), containers by their type only."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40]) + f"... ({len(value)} characters)"
    return "a JSON " + (
        "array" if isinstance(value, list) else "object" if isinstance(value, dict) else type(value).__name__
    )


def _parse_keyring(
    raw: bytearray, path: str
) -> tuple[bytes | None, dict[bytes, bytearray], dict[bytes, _dt.datetime]]:
    def bad(why: str) -> KeyringFormatError:
        return KeyringFormatError(f"keyring {path}: {why}")

    # The refusals are raised outside the ``except`` blocks: a JSONDecodeError holds
    # the whole document (every primary key) in ``doc``, a UnicodeDecodeError in
    # ``object``, and a chained exception would keep them alive.
    problem = None
    try:
        doc = json.loads(bytes(raw).decode("utf-8"))
    except UnicodeDecodeError as e:
        problem = f"not valid JSON (UnicodeDecodeError at position {e.start})"
    except json.JSONDecodeError as e:
        problem = f"not valid JSON (JSONDecodeError at position {e.pos})"
    except RecursionError:
        problem = "not valid JSON (nested too deeply)"
    if problem is not None:
        raise bad(problem)
    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    if doc.get("format", KEYRING_FORMAT) != KEYRING_FORMAT:
        raise bad(f"format is not {KEYRING_FORMAT!r}")
    if doc.get("version") != KEYRING_VERSION:
        raise bad(
            f"unsupported version {_describe(doc.get('version'))} (this reader knows {KEYRING_VERSION})"
        )
    entries = doc.get("keys")
    if not isinstance(entries, list):
        raise bad("'keys' must be a list")
    keys: dict[bytes, bytearray] = {}
    created: dict[bytes, _dt.datetime] = {}
    try:
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise bad(f"keys[{i}] is not an object")
            hex_id = entry.get("id")
            try:
                kid = bytes.fromhex(hex_id) if isinstance(hex_id, str) else b""
            except ValueError:
                kid = b""
            if len(kid) != KEY_ID_LEN:
                raise bad(f"keys[{i}]: 'id' must be {2 * KEY_ID_LEN} hex digits")
            if kid in keys:
                raise bad(f"key id {kid.hex()} appears twice")
            try:
                t = _dt.datetime.fromisoformat(entry.get("created"))
                if t.tzinfo is None:
                    t = t.replace(tzinfo=_dt.UTC)
            except (TypeError, ValueError):
                raise bad(f"key {kid.hex()}: 'created' is not an ISO 8601 time") from None
            b64 = entry.get("key")
            try:
                secret = (
                    bytearray(base64.b64decode(b64, validate=True)) if isinstance(b64, str) else bytearray()
                )
            except (binascii.Error, ValueError):
                raise bad(f"key {kid.hex()}: 'key' is not valid base64") from None
            if len(secret) != KEY_LEN:
                n = len(secret)
                _wipe(secret)
                raise bad(f"key {kid.hex()}: 'key' must decode to {KEY_LEN} bytes, got {n}")
            keys[kid] = secret
            created[kid] = t
        cur = doc.get("current")
        if cur is None:
            if keys:
                raise bad("'current' is missing")
            current = None
        else:
            try:
                current = bytes.fromhex(cur) if isinstance(cur, str) else b""
            except ValueError:
                current = b""
            if current not in keys:
                raise bad(f"'current' ({_describe(cur)}) is not one of the key ids")
    except BaseException:
        for buf in keys.values():
            _wipe(buf)
        raise
    return current, keys, created


def _write_all(fd: int, data: bytes | bytearray) -> None:
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _fsync_dir(d: str) -> None:
    try:
        fd = os.open(d or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


def _atomic_replace(path: str, data: bytearray) -> None:
    d, base = os.path.split(path)
    tmp = os.path.join(d, f".{base}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
            _wipe(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(d)


# --------------------------------------------------------------------------- PKCS#11


def _pkcs11():
    try:
        import pkcs11
    except ImportError:
        raise KmsConfigError("Pkcs11Kms needs python-pkcs11: pip install python-pkcs11") from None
    return pkcs11


class _TokenLogin:
    """One logged-in session per (module, token) per process, shared by every
    Pkcs11Kms on that token. PKCS#11 login state belongs to the whole application:
    a second C_Login fails and any C_Logout logs every session out, so it is
    reference-counted here."""

    registry: dict[tuple[str, bytes, str], _TokenLogin] = {}
    registry_lock = threading.Lock()
    _mac_key = secrets.token_bytes(32)  # per-process; only to compare PINs

    def __init__(self, key: tuple[str, bytes, str], session: Any, pin_mac: bytes) -> None:
        self.key = key
        self.session = session
        self.pin_mac = pin_mac
        self.refs = 1
        self.lock = threading.RLock()  # one PKCS#11 operation at a time on this session

    @classmethod
    def acquire(cls, token: Any, module: str, pin: str) -> _TokenLogin:
        pkcs11 = _pkcs11()
        key = (module, bytes(token.serial), token.label)
        pin_mac = hmac.new(cls._mac_key, pin.encode("utf-8"), hashlib.sha256).digest()
        with cls.registry_lock:
            login = cls.registry.get(key)
            if login is not None:
                if not hmac.compare_digest(login.pin_mac, pin_mac):
                    raise KmsError(
                        f"token {token.label!r} is already logged in by this process with a different PIN"
                    )
                login.refs += 1
                return login
            try:
                session = token.open(rw=True, user_pin=pin)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # Logged in by code outside exitless: its login covers our session
                # too (and it, not we, decides when to log out).
                session = token.open(rw=True)
            except pkcs11.exceptions.PKCS11Error as e:
                raise KmsError(f"login to token {token.label!r} failed: {type(e).__name__}") from None
            login = cls(key, session, pin_mac)
            cls.registry[key] = login
            return login

    def release(self) -> None:
        with self.registry_lock:
            self.refs -= 1
            if self.refs > 0:
                return
            self.registry.pop(self.key, None)
            with self.lock:
                try:
                    self.session.close()
                except Exception:  # pragma: no cover - token gone
                    pass


class Pkcs11Kms(Kms):
    """Primary keys that live in a PKCS#11 token (tested with SoftHSM2).

    Each primary key is an AES-256 secret key generated in the token with
    CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE = true, CKA_EXTRACTABLE, CKA_MODIFIABLE = false,
    CKA_WRAP/CKA_UNWRAP = true and every other use (encrypt, decrypt, sign, verify,
    derive) false; CKA_ID is the 16-byte key id and CKA_LABEL is
    ``exitless-kms-v1:<id hex>:<creation time, UTC>``. The newest is current.

    Wrapping is CKM_AES_KEY_WRAP (RFC 3394, default IV; scheme 2). A data key is
    generated by the token as a session object (sensitive = false, extractable =
    true, no usage flags), wrapped by the primary key, read out and destroyed.
    Unwrapping is C_UnwrapKey into a similar session object whose value is read
    into a :class:`Key` and which is then destroyed.

    The PIN is used only to log in and is not kept.
    """

    def __init__(self, module: str, token: str, pin: str, *, uri: str | None = None) -> None:
        pkcs11 = _pkcs11()
        if not isinstance(pin, str) or not pin:
            raise KmsConfigError("a PKCS#11 user PIN (non-empty str) is needed")
        self._module = os.path.abspath(module)
        self._token_label = token
        self._uri = uri or _format_pkcs11_uri({"module": self._module, "token": token})
        self._login: _TokenLogin | None = None
        if not os.path.exists(self._module):
            hint = " (apt-get install softhsm2)" if "softhsm" in self._module else ""
            raise KmsConfigError(f"PKCS#11 module {self._module} does not exist{hint}")
        try:
            lib = pkcs11.lib(self._module)
        except Exception as e:
            raise KmsConfigError(
                f"could not load PKCS#11 module {self._module}: {type(e).__name__}: {e} "
                "(for SoftHSM2, check that SOFTHSM2_CONF names a readable softhsm2.conf)"
            ) from None
        try:
            tok = lib.get_token(token_label=token)
        except pkcs11.exceptions.NoSuchToken:
            raise KmsConfigError(f"no PKCS#11 token labelled {token!r} in {self._module}") from None
        except pkcs11.exceptions.MultipleTokensReturned:
            raise KmsConfigError(f"several PKCS#11 tokens are labelled {token!r} in {self._module}") from None
        self._login = _TokenLogin.acquire(tok, self._module, pin)

    @classmethod
    def from_uri(cls, uri: str) -> Pkcs11Kms:
        attrs = _parse_pkcs11_uri(uri)
        pin = _read_pin(attrs)
        canonical = _format_pkcs11_uri(attrs)
        return cls(attrs["module"], attrs["token"], pin, uri=canonical)

    # -- plumbing

    @property
    def uri(self) -> str:
        return self._uri

    def _session(self) -> Any:
        if self._login is None:
            raise KmsError(f"{self._uri} is closed")
        return self._login.session

    def _primaries(self, key_id: bytes | None = None) -> list[tuple[bytes, _dt.datetime, Any]]:
        """(id, created, object) of exitless primary keys on the token, oldest first.
        Refuses keys carrying our label that do not have the required protections."""
        pkcs11 = _pkcs11()
        A = pkcs11.Attribute
        query = {A.CLASS: pkcs11.ObjectClass.SECRET_KEY, A.KEY_TYPE: pkcs11.KeyType.AES, A.TOKEN: True}
        if key_id is not None:
            query[A.ID] = key_id
        session = self._session()
        out = []
        for obj in list(session.get_objects(query)):
            a = obj.get_attributes([A.LABEL, A.ID])
            label = a.get(A.LABEL) or ""
            if not label.startswith(PKCS11_LABEL_PREFIX):
                continue
            hex_id, _, when = label[len(PKCS11_LABEL_PREFIX) :].partition(":")
            try:
                kid = bytes.fromhex(hex_id)
                created = _dt.datetime.fromisoformat(when)
            except ValueError:
                raise KmsError(
                    f"token {self._token_label!r} has a key with a malformed exitless label {label!r}"
                ) from None
            if len(kid) != KEY_ID_LEN or bytes(a.get(A.ID) or b"") != kid:
                raise KmsError(
                    f"token {self._token_label!r}: key labelled {label!r} has a CKA_ID that does not match its label"
                )
            policy = {
                A.SENSITIVE: True,
                A.ALWAYS_SENSITIVE: True,
                A.EXTRACTABLE: False,
                A.NEVER_EXTRACTABLE: True,
                A.WRAP: True,
                A.UNWRAP: True,
            }
            got = obj.get_attributes(list(policy))
            wrong = [attr.name for attr, want in policy.items() if bool(got.get(attr)) != want]
            if wrong:
                raise KmsError(
                    f"primary key {kid.hex()} on token {self._token_label!r} does not have the required protections "
                    f"({', '.join('CKA_' + w for w in wrong)} wrong); refusing to use it"
                )
            out.append((kid, created, obj))
        out.sort(key=lambda t: (t[1], t[0]))
        return out

    # -- Kms interface

    def list_keys(self) -> list[KeyInfo]:
        with self._op_lock():
            found = self._primaries()
        return [KeyInfo(kid, created, i == len(found) - 1) for i, (kid, created, _) in enumerate(found)]

    def create_key(self) -> bytes:
        pkcs11 = _pkcs11()
        A = pkcs11.Attribute
        with self._op_lock():
            existing = self._primaries()
            kid = secrets.token_bytes(KEY_ID_LEN)
            created = _next_created([c for _, c, _ in existing])
            try:
                self._session().generate_key(
                    pkcs11.KeyType.AES,
                    256,
                    id=kid,
                    label=f"{PKCS11_LABEL_PREFIX}{kid.hex()}:{_fmt_time(created)}",
                    store=True,
                    capabilities=pkcs11.MechanismFlag.WRAP | pkcs11.MechanismFlag.UNWRAP,
                    template={
                        A.TOKEN: True,
                        A.PRIVATE: True,
                        A.SENSITIVE: True,
                        A.EXTRACTABLE: False,
                        A.MODIFIABLE: False,
                    },
                )
            except pkcs11.exceptions.PKCS11Error as e:
                raise KmsError(
                    f"token {self._token_label!r} refused to generate a primary key: {type(e).__name__}"
                ) from None
        return kid

    def _primary(self, kid: bytes) -> Any | None:
        found = self._primaries(kid)
        return found[0][2] if found else None

    def generate_data_key(self, key_id: bytes | None = None) -> tuple[Key, WrappedKey]:
        pkcs11 = _pkcs11()
        A = pkcs11.Attribute
        with self._op_lock():
            if key_id is None:
                found = self._primaries()
                if not found:
                    raise KmsError(f"{self._uri} has no primary key yet; call create_key()")
                kid, _, primary = found[-1]
            else:
                kid = _check_key_id(key_id)
                primary = self._primary(kid)
                if primary is None:
                    raise KmsError(f"token {self._token_label!r} has no primary key {kid.hex()}")
            session = self._session()
            try:
                dk = session.generate_key(
                    pkcs11.KeyType.AES,
                    256,
                    store=False,
                    capabilities=0,
                    template={A.TOKEN: False, A.PRIVATE: True, A.SENSITIVE: False, A.EXTRACTABLE: True},
                )
            except pkcs11.exceptions.PKCS11Error as e:
                raise KmsError(
                    f"token {self._token_label!r} failed to generate a data key: {type(e).__name__}"
                ) from None
            try:
                wrapped = primary.wrap_key(dk, mechanism=pkcs11.Mechanism.AES_KEY_WRAP)
                value = bytearray(dk[A.VALUE])
            except pkcs11.exceptions.PKCS11Error as e:
                raise KmsError(
                    f"token {self._token_label!r} failed to wrap a data key under {kid.hex()}: {type(e).__name__}"
                ) from None
            finally:
                dk.destroy()
        try:
            if len(value) != KEY_LEN:
                raise KmsError(f"token {self._token_label!r} returned a {len(value)}-byte data key")
            key = Key(value)
        finally:
            _wipe(value)
        return key, WrappedKey(SCHEME_PKCS11_AES_KEY_WRAP, kid, wrapped)

    def unwrap(self, wrapped: WrappedKey | bytes) -> Key:
        pkcs11 = _pkcs11()
        A = pkcs11.Attribute
        wk = _wrapped_for(wrapped, SCHEME_PKCS11_AES_KEY_WRAP, self._uri)
        kid = wk.primary_key_id
        with self._op_lock():
            primary = self._primary(kid)
            if primary is None:
                raise UnwrapError(
                    f"cannot unwrap data key: primary key {kid.hex()} is not on token {self._token_label!r}"
                )
            try:
                obj = primary.unwrap_key(
                    pkcs11.ObjectClass.SECRET_KEY,
                    pkcs11.KeyType.AES,
                    wk.wrapped,
                    mechanism=pkcs11.Mechanism.AES_KEY_WRAP,
                    store=False,
                    capabilities=0,
                    template={A.TOKEN: False, A.PRIVATE: True, A.SENSITIVE: False, A.EXTRACTABLE: True},
                )
            except pkcs11.exceptions.PKCS11Error as e:
                raise UnwrapError(
                    f"data key under primary key {kid.hex()} failed to unwrap on token {self._token_label!r} "
                    f"({type(e).__name__}: wrong primary key, or the wrapped key was modified)"
                ) from None
            try:
                value = bytearray(obj[A.VALUE])
            finally:
                obj.destroy()
        try:
            if len(value) != KEY_LEN:
                raise UnwrapError(
                    f"data key under primary key {kid.hex()} unwrapped to {len(value)} bytes, not {KEY_LEN}"
                )
            return Key(value)
        finally:
            _wipe(value)

    def _op_lock(self) -> threading.RLock:
        if self._login is None:
            raise KmsError(f"{self._uri} is closed")
        return self._login.lock

    def close(self) -> None:
        login, self._login = self._login, None
        if login is not None:
            login.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._login is None else "open"
        return f"<Pkcs11Kms {self._uri} ({state})>"

    __str__ = __repr__


# --------------------------------------------------------------------------- URIs

_PKCS11_ALIASES = {"module-path": "module", "token-label": "token"}
_PKCS11_KNOWN = ("module", "token", "pin-env", "pin-file")


def _parse_pkcs11_uri(uri: str) -> dict[str, str]:
    """``pkcs11:module=PATH;token=LABEL;pin-env=VAR`` (or ``pin-file=PATH``).
    Values may be percent-encoded (``%3B`` for ``;``). RFC 7512 spellings are
    accepted too: ``module-path``, and ``?pin-source=file:PATH`` / ``&``-separated
    query attributes. A PIN itself is never accepted in a URI."""
    if not uri.startswith("pkcs11:"):
        raise KmsConfigError("a PKCS#11 KMS URI starts with 'pkcs11:'")
    body = uri[len("pkcs11:") :]
    path_part, _, query = body.partition("?")
    items = [p for p in path_part.split(";") if p] + [q for q in query.split("&") if q]
    attrs: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not eq:
            raise KmsConfigError(f"PKCS#11 URI attribute {name!r} has no '=value'")
        value = urllib.parse.unquote(value)
        if name in ("pin", "pin-value", "pin-source") and not (
            name == "pin-source" and value.startswith("file:")
        ):
            raise KmsConfigError(
                "a PIN must never be written in a KMS URI; use pin-env=VARIABLE or pin-file=PATH"
            )
        if name == "pin-source":
            name, value = "pin-file", value[len("file:") :]
        name = _PKCS11_ALIASES.get(name, name)
        if name not in _PKCS11_KNOWN:
            raise KmsConfigError(
                f"unknown PKCS#11 URI attribute {name!r} (known: {', '.join(_PKCS11_KNOWN)})"
            )
        if name in attrs:
            raise KmsConfigError(f"PKCS#11 URI attribute {name!r} is given twice")
        if not value:
            raise KmsConfigError(f"PKCS#11 URI attribute {name!r} is empty")
        attrs[name] = value
    for required in ("module", "token"):
        if required not in attrs:
            raise KmsConfigError(f"PKCS#11 URI needs {required}=...")
    if ("pin-env" in attrs) == ("pin-file" in attrs):
        raise KmsConfigError("PKCS#11 URI needs exactly one of pin-env=VARIABLE or pin-file=PATH")
    return attrs


def _format_pkcs11_uri(attrs: dict[str, str]) -> str:
    parts = []
    for name in _PKCS11_KNOWN:
        if name in attrs:
            parts.append(f"{name}={urllib.parse.quote(attrs[name], safe='/:@-._~')}")
    return "pkcs11:" + ";".join(parts)


def _read_pin(attrs: dict[str, str]) -> str:
    if "pin-env" in attrs:
        var = attrs["pin-env"]
        pin = os.environ.get(var)
        if not pin:
            raise KmsConfigError(
                f"environment variable {var} (pin-env of the PKCS#11 URI) is not set or empty"
            )
        return pin
    path = os.path.abspath(attrs["pin-file"])
    raw, _ = _read_private_file(path, "PIN file", PIN_FILE_MAX, KmsConfigError)
    text: str | None = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass  # refused below, outside the handler: the error names a byte of the PIN and holds it all
    finally:
        _wipe(raw)
    if text is None:
        raise KmsConfigError(f"PIN file {path} is not UTF-8 text")
    pin = text.rstrip("\r\n")
    if not pin:
        raise KmsConfigError(f"PIN file {path} is empty")
    return pin


def open_kms(uri: str) -> Kms:
    """Opens a KMS from a URI:

    - ``local:PATH`` — a :class:`LocalKms` keyring (which must exist; create one
      with :meth:`LocalKms.init`). PATH is taken literally.
    - ``pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=LABEL;pin-env=VAR``
      (or ``pin-file=PATH`` for a 0600 file holding the PIN) — a
      :class:`Pkcs11Kms`. A PIN written in the URI is refused.
    """
    if not isinstance(uri, str):
        raise TypeError(f"a KMS URI is a str, not {type(uri).__name__}")
    if uri.startswith("local:"):
        path = uri[len("local:") :]
        if not path:
            raise KmsConfigError("'local:' needs a keyring path, e.g. local:/etc/exitless/keyring.json")
        return LocalKms(path)
    if uri.startswith("pkcs11:"):
        return Pkcs11Kms.from_uri(uri)
    scheme = uri.partition(":")[0] if ":" in uri else uri[:20]
    raise KmsConfigError(f"unknown KMS URI scheme {scheme!r} (known: local:, pkcs11:)")


def open_sealed(
    path: str | os.PathLike[str], mode: str, kms: Kms, context: bytes | str = b"", **options: Any
) -> Any:
    """Opens a sealed file whose data key travels in its header (format version 2).

    - ``"wb"``: asks ``kms`` for a fresh data key, and writes a file whose header
      carries the wrapped key (``WrappedKey.to_bytes()``) as its key envelope and the
      wrapping primary key's id as its key id. Returns a :class:`exitless.SealedWriter`.
    - ``"rb"``: returns a :class:`exitless.SealedReader`, after these checks, in the
      order of docs/FORMAT.md section 10.4 (the first that fails raises):

      1. the header's parsing rules: :class:`exitless.FormatError` or
         :class:`exitless.IntegrityError` (truncation);
      2. a file without an envelope (version 1): :class:`exitless.FormatError`;
      3. an envelope that is not one :class:`WrappedKey` (unknown scheme, wrong
         length): :class:`exitless.FormatError`;
      4. a header key id that is not the envelope's primary key id:
         :class:`exitless.IntegrityError`;
      5. ``kms`` cannot unwrap it (unknown primary key, another scheme, wrapped
         bytes that fail authentication): :class:`UnwrapError`, naming the file;
      6. the unwrapped key does not open the stream (another file's envelope, a
         changed header or envelope, truncation, a wrong context):
         :class:`exitless.IntegrityError`, here for the final segment (checked when
         the stream opens), or from the read that reaches a segment that fails.

      The envelope is authenticated by the stream itself (step 6): a modified one
      never yields plaintext.

    ``context`` and ``options`` are those of :func:`exitless.open_spill` (except
    ``key_id`` and ``envelope``, which this function sets). The data key is wiped as
    soon as the stream is open (the stream keeps only its derived stream key).
    """
    from . import _errors
    from .memory import inspect
    from .streams import open_spill

    for name in ("key_id", "envelope"):
        if name in options:
            raise TypeError(f"open_sealed sets {name} itself; do not pass it")
    if not isinstance(kms, Kms):
        raise TypeError(f"kms must be an exitless.kms.Kms, not {type(kms).__name__}")
    normalized = "".join(sorted(mode)) if isinstance(mode, str) else mode
    if normalized == "bw":
        key, wrapped = kms.generate_data_key()
        try:
            return open_spill(
                path,
                "wb",
                key,
                context,
                key_id=wrapped.primary_key_id,
                envelope=wrapped.to_bytes(),
                **options,
            )
        finally:
            key.wipe()
    if normalized == "br":
        info = inspect(path)
        if info.envelope is None:
            raise _errors.FormatError(
                f"{info.path}: the file carries no wrapped key (format version {info.version} has no key "
                "envelope); open it with exitless.open_spill and its data key"
            )
        try:
            wrapped = WrappedKey.from_bytes(info.envelope)
        except WrappedKeyFormatError as e:
            raise _errors.FormatError(
                f"{info.path}: the key envelope is not a wrapped key this KMS reads: {e}"
            ) from None
        if not hmac.compare_digest(wrapped.primary_key_id, info.key_id):
            raise _errors.IntegrityError(
                f"{info.path}: the header's key id {info.key_id.hex()} is not the primary key id "
                f"{wrapped.primary_key_id.hex()} of its key envelope"
            )
        try:
            key = kms.unwrap(wrapped)
        except UnwrapError as e:
            raise UnwrapError(f"{info.path}: {e}") from None
        try:
            return open_spill(path, "rb", key, context, **options)
        finally:
            key.wipe()
    raise ValueError(f"unsupported mode {mode!r}: open_sealed opens 'wb' or 'rb'")
