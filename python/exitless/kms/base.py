"""What every KMS shares: the :class:`Kms` interface, :class:`WrappedKey` (a data key
wrapped under a primary key) and its byte layout, :class:`KeyInfo`, the errors, the
helpers both backends use, and :func:`open_sealed`, which writes and reads sealed files
that carry their wrapped data key in the header (format version 2, docs/FORMAT.md
section 9).

This module knows no backend: :mod:`exitless.kms.local` and :mod:`exitless.kms.pkcs11`
build on it. Key bytes never appear in a ``repr``, a log line or an exception message:
errors name primary keys by their 16-byte key id (hex) only.
"""

from __future__ import annotations

import abc
import datetime as _dt
import hmac
import os
import struct
from dataclasses import dataclass
from typing import Any, Self

from .._errors import ExitlessError
from ..keys import KEY_LEN, Key

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

    def __enter__(self) -> Self:
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


def _read_private_file(
    path: str, what: str, limit: int, too_large: type[Exception]
) -> tuple[bytearray, os.stat_result]:
    """The bytes (to be wiped by the caller) and ``fstat`` of a keyring or PIN file:
    never through a symbolic link, only a regular file owned by the caller or root
    with no group or other access, at most ``limit`` bytes (see :mod:`exitless._files`)."""
    from .._files import read_private_file

    return read_private_file(
        path, what, limit=limit, insecure=InsecureKeyringError, invalid=KmsConfigError, too_large=too_large
    )


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
    from .. import _errors
    from ..memory import inspect
    from ..streams import open_spill

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
