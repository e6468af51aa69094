"""Data keys: 32 secret bytes that never show up in a repr, a log or an error."""

from __future__ import annotations

import binascii
import hashlib
import os
import secrets
from pathlib import Path
from typing import NoReturn

KEY_LEN = 32
#: Largest key file :meth:`Key.load` reads (one is 81 bytes: prefix, 64 hex digits, newline).
KEY_FILE_MAX = 4096
_KEY_FILE_PREFIX = "exitless-key-v1:"


class Key:
    """A 32-byte data key.

    The bytes live in a ``bytearray`` that :meth:`wipe` (and garbage collection,
    best effort) overwrites with zeros. ``repr`` shows only the key id, a
    one-way fingerprint that is safe to log and is what sealed files record.
    """

    __slots__ = ("_key_id", "_secret", "_wiped")

    def __init__(self, secret: bytes | bytearray | memoryview) -> None:
        if not isinstance(secret, (bytes, bytearray, memoryview)):
            raise TypeError(f"a key is made from 32 bytes, not {type(secret).__name__}")
        # No intermediate bytes copies: those could not be wiped (docs/HARDENING.md,
        # "Key hygiene"). A memoryview is copied straight into the bytearray.
        if memoryview(secret).nbytes != KEY_LEN:
            raise ValueError(f"a data key must be exactly {KEY_LEN} bytes, got {memoryview(secret).nbytes}")
        self._secret = bytearray(secret)
        self._wiped = False
        fingerprint = hashlib.sha256(b"exitless key id v1")
        fingerprint.update(self._secret)
        self._key_id = fingerprint.digest()[:16]

    @classmethod
    def generate(cls) -> Key:
        """A fresh random key from the OS CSPRNG."""
        return cls(secrets.token_bytes(KEY_LEN))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Key:
        """Reads a key file written by :meth:`save` (or ``exitless keygen``).

        Refuses a symbolic link (the file is opened with ``O_NOFOLLOW``), anything
        but a regular file (a FIFO is never waited on), a file owned by another user
        than the caller or root, a file that group or others can access, and more
        than :data:`KEY_FILE_MAX` bytes. Errors name the path, never the file's bytes.
        """
        from ._files import read_private_file

        p = Path(path)
        raw, _ = read_private_file(p, "key file", limit=KEY_FILE_MAX)
        text = raw.strip()
        secret = bytearray()
        try:
            # Every refusal is raised outside an ``except`` block, with no exception
            # chained to it: a UnicodeDecodeError names the offending byte and holds
            # the whole file in its ``object``; a hex error may hold part of the key.
            problem = None
            if not text.isascii():
                problem = f"{p} is not an exitless key file (it is not ASCII text; it should start with {_KEY_FILE_PREFIX!r})"
            elif not text.startswith(_KEY_FILE_PREFIX.encode("ascii")):
                problem = f"{p} is not an exitless key file (it should start with {_KEY_FILE_PREFIX!r})"
            else:
                try:
                    secret = bytearray(binascii.a2b_hex(memoryview(text)[len(_KEY_FILE_PREFIX) :]))
                except binascii.Error:
                    problem = f"{p}: the key is not valid hex"
            if problem is None and len(secret) != KEY_LEN:
                problem = f"{p}: a data key must be exactly {KEY_LEN} bytes, got {len(secret)}"
            if problem is not None:
                raise ValueError(problem)
            return cls(secret)
        finally:
            for buf in (raw, text, secret):
                buf[:] = bytes(len(buf))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the key to a new file created with mode 0600 (fails if it exists)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_KEY_FILE_PREFIX + self._secret.hex() + "\n")

    @property
    def key_id(self) -> bytes:
        """16-byte fingerprint recorded in sealed headers: SHA-256("exitless key id v1" ‖ key)[:16]."""
        return self._key_id

    def secret_bytes(self) -> bytes:
        """The raw key bytes, for handing to a KMS. Do not log them."""
        self._check()
        return bytes(self._secret)

    def _buffer(self) -> bytearray:
        self._check()
        return self._secret

    def _check(self) -> None:
        if self._wiped:
            raise ValueError("this key was wiped")

    def wipe(self) -> None:
        """Overwrites the key bytes with zeros; the key is unusable afterwards."""
        self._secret[:] = bytes(len(self._secret))
        self._wiped = True

    def __del__(self) -> None:
        # No contextlib.suppress: at interpreter shutdown its module may be gone already.
        try:  # noqa: SIM105
            self.wipe()
        except Exception:  # interpreter shutdown: nothing to do
            pass

    def __repr__(self) -> str:
        return f"<exitless.Key id={self._key_id.hex()} (secret hidden)>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and secrets.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self._key_id)

    def __reduce__(self) -> NoReturn:
        raise TypeError("exitless.Key cannot be pickled: it would put the secret in the pickle")


def generate_key() -> Key:
    """A fresh random 32-byte data key."""
    return Key.generate()


def as_key(key: Key | bytes | bytearray | memoryview) -> Key:
    """Accepts a :class:`Key` or 32 raw bytes."""
    if isinstance(key, Key):
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        return Key(key)
    raise TypeError(f"key must be an exitless.Key or 32 bytes, not {type(key).__name__}")
