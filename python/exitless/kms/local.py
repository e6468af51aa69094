""":class:`LocalKms` (``local:PATH``): primary keys in a JSON keyring file that only
its owner may read (mode 0600); wrapping is AES-256-GCM (scheme 1). The keyring's
layout and how it is rewritten are in docs/KMS.md. Needs the optional ``cryptography``
package, imported when a key is wrapped or unwrapped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import fcntl
import json
import os
import secrets
import stat
import threading
from typing import Any

from ..keys import KEY_LEN, Key
from .base import (
    _GCM_NONCE_LEN,
    KEY_ID_LEN,
    SCHEME_LOCAL_AES_GCM,
    WRAP_AAD_PREFIX,
    InsecureKeyringError,
    KeyInfo,
    KeyringFormatError,
    Kms,
    KmsConfigError,
    KmsError,
    UnwrapError,
    WrappedKey,
    _check_key_id,
    _fmt_time,
    _next_created,
    _read_private_file,
    _utcnow,
    _wipe,
    _wrapped_for,
)

KEYRING_FORMAT = "exitless-kms-keyring"
KEYRING_VERSION = 1
#: Largest keyring file :class:`LocalKms` reads (a key entry is ~130 bytes).
KEYRING_MAX = 16 << 20


def _local_aad(key_id: bytes) -> bytes:
    return WRAP_AAD_PREFIX + bytes([SCHEME_LOCAL_AES_GCM]) + key_id


def _aesgcm() -> Any:
    """cryptography's AESGCM class, imported on first use (an optional dependency)."""
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
    from .._files import describe_mode, open_nofollow

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
    doc: object = None
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
                t = _dt.datetime.fromisoformat(entry.get("created"))  # type: ignore[arg-type]  # not a str: refused below
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
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(d)
