"""Whole buffers sealed and opened in memory, and key-less inspection of files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack

from ._errors import raise_for
from ._native import ffi, lib
from .keys import Key, as_key
from .streams import (
    _DEFAULTS,
    _SEAL_KEYS,
    ALGORITHM_NAMES,
    DEFAULT_SEGMENT_SIZE,
    KeyLike,
    PathLike,
    SealOptions,
    _attach_envelope,
    _check_envelope,
    _context_bytes,
    _keyword_options,
    _native_options,
    _path_bytes,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from ._native import ExitlessOptionsPtr


def sealed_length(
    plaintext_len: int, segment_size: int = DEFAULT_SEGMENT_SIZE, *, envelope_len: int = 0
) -> int:
    """Length of the sealed file for a plaintext of ``plaintext_len`` bytes (with a key
    envelope of ``envelope_len`` bytes in the header: format version 2; 0: version 1)."""
    if not isinstance(plaintext_len, int) or isinstance(plaintext_len, bool):
        raise TypeError(f"plaintext_len must be an int, not {type(plaintext_len).__name__}")
    if not 0 <= plaintext_len < 1 << 64:
        raise ValueError(f"plaintext_len must be between 0 and 2**64 - 1, got {plaintext_len}")
    _native_options({"segment_size": segment_size})  # validates segment_size with Python errors
    if not isinstance(envelope_len, int) or isinstance(envelope_len, bool) or envelope_len < 0:
        raise ValueError(f"envelope_len must be a non-negative int, got {envelope_len!r}")
    out = ffi.new("uint64_t *")
    raise_for(lib.exitless_sealed_len_envelope(plaintext_len, segment_size, envelope_len, out))
    return int(out[0])


@_keyword_options(_SEAL_KEYS)
def seal_into(
    data: ReadableBuffer,
    out: WriteableBuffer,
    key: KeyLike,
    context: bytes | str = b"",
    **options: Unpack[SealOptions],
) -> int:
    """Seal ``data`` into the writable buffer ``out`` (at least
    ``sealed_length(len(data), segment_size, envelope_len=len(envelope or b""))``
    bytes); returns the sealed length. ``envelope``: see :func:`exitless.open_spill`."""
    key = as_key(key)
    env = _check_envelope(options.get("envelope"))
    return _seal(memoryview(data).cast("B"), out, key, context, _seal_options(key, options), env)


def _seal_options(key: Key, options: SealOptions) -> ExitlessOptionsPtr:
    """The native options of one seal call, validated with Python errors; the key id
    defaults to the key's."""
    key_id = options.get("key_id")
    return _native_options({**_DEFAULTS, **options, "key_id": key.key_id if key_id is None else key_id})


def _seal(
    src: memoryview,
    out: WriteableBuffer,
    key: Key,
    context: bytes | str,
    opts: ExitlessOptionsPtr,
    env: bytes | None,
) -> int:
    """Seals ``src`` into ``out`` with validated options; returns the sealed length."""
    keep = _attach_envelope(opts, env)
    dst = memoryview(out).cast("B")
    n = ffi.new("size_t *")
    ctx = _context_bytes(context)
    secret = key._buffer()
    raise_for(
        lib.exitless_seal_buffer(
            ffi.from_buffer(secret),
            len(secret),
            ctx,
            len(ctx),
            opts,
            ffi.from_buffer(src),
            src.nbytes,
            ffi.from_buffer(dst, require_writable=True),
            dst.nbytes,
            n,
        )
    )
    del keep
    return int(n[0])


def open_into(sealed: ReadableBuffer, out: WriteableBuffer, key: KeyLike, context: bytes | str = b"") -> int:
    """Open a sealed stream held in memory into the writable buffer ``out``; returns
    the plaintext length. Raises, leaving no plaintext in ``out``, if any segment fails."""
    key = as_key(key)
    src = memoryview(sealed).cast("B")
    dst = memoryview(out).cast("B")
    n = ffi.new("size_t *")
    ctx = _context_bytes(context)
    secret = key._buffer()
    raise_for(
        lib.exitless_open_buffer(
            ffi.from_buffer(secret),
            len(secret),
            ctx,
            len(ctx),
            ffi.from_buffer(src),
            src.nbytes,
            ffi.from_buffer(dst, require_writable=True),
            dst.nbytes,
            n,
        )
    )
    return int(n[0])


@_keyword_options(_SEAL_KEYS)
def seal_bytes(
    data: ReadableBuffer, key: KeyLike, context: bytes | str = b"", **options: Unpack[SealOptions]
) -> bytes:
    """Seal ``data`` into a complete sealed stream, in memory (format version 2 when
    ``envelope`` is given: see :func:`exitless.open_spill`)."""
    key = as_key(key)
    opts = _seal_options(key, options)  # argument errors before any allocation
    env = _check_envelope(options.get("envelope"))
    src = memoryview(data).cast("B")
    length = ffi.new("uint64_t *")
    raise_for(lib.exitless_sealed_len_envelope(src.nbytes, opts.segment_size, len(env or b""), length))
    out = bytearray(length[0])
    n = _seal(src, out, key, context, opts, env)
    del out[n:]
    return bytes(out)


def open_bytes(sealed: ReadableBuffer, key: KeyLike, context: bytes | str = b"") -> bytes:
    """Open a sealed stream held in memory. Raises (returning nothing) if any segment fails."""
    out = bytearray(memoryview(sealed).nbytes)  # plaintext is always shorter than the sealed stream
    n = open_into(sealed, out, key, context)
    del out[n:]
    return bytes(out)


@dataclass(frozen=True)
class FileInfo:
    """What a sealed file's header and length say, read without a key (unauthenticated)."""

    path: str
    version: int
    algorithm: str
    segment_size: int
    key_id: bytes
    file_size: int
    segments: int
    plaintext_size: int
    #: Header length: 68 (version 1) or 72 + len(envelope) (version 2).
    header_size: int = 68
    #: The key envelope (the wrapped data key) of a version-2 file; None for version 1.
    #: Unauthenticated: a wrong envelope makes the stream fail to open.
    envelope: bytes | None = None


def inspect(path: PathLike) -> FileInfo:
    """Header facts of a sealed file, without a key. Raises FormatError or
    IntegrityError (truncation) when the file cannot be a sealed stream."""
    info = ffi.new("ExitlessFileInfo *")
    raise_for(lib.exitless_inspect(_path_bytes(path), info), os.fsdecode(path))
    return FileInfo(
        path=os.fsdecode(path),
        version=info.version,
        algorithm=ALGORITHM_NAMES[info.algorithm],
        segment_size=info.segment_size,
        key_id=bytes(ffi.buffer(info.key_id)),
        file_size=info.file_len,
        segments=info.segments,
        plaintext_size=info.plaintext_len,
        header_size=info.header_len,
        envelope=bytes(ffi.buffer(info.envelope, info.envelope_len)) if info.envelope_len else None,
    )
