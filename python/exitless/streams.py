"""Sealed spill files as :mod:`io` file objects.

``open_spill(path, "wb", key)`` returns a :class:`SealedWriter`, ``"rb"`` a
:class:`SealedReader`, and ``"w+b"`` a :class:`SealedSpillFile` (write, then read
back). Every byte is sealed by the native core (exitless-seal via the C ABI);
the GIL is released during native calls, and buffers pass without copies.
"""

from __future__ import annotations

import functools
import inspect
import io
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import (
    TYPE_CHECKING,
    Final,
    ForwardRef,
    Literal,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
)

from ._closing import AbortOnError
from ._errors import BackendUnavailableError, raise_for
from ._native import ffi, lib
from .keys import Key, as_key

if TYPE_CHECKING:
    from types import FrameType

    from _typeshed import ReadableBuffer, WriteableBuffer

    from ._native import (
        CData,
        CType,
        ExitlessOptionsPtr,
        ExitlessReaderPtr,
        ExitlessStatsPtr,
        ExitlessWriterPtr,
    )

_ALGORITHMS = {"aes-256-gcm": lib.EXITLESS_AES_256_GCM, "chacha20-poly1305": lib.EXITLESS_CHACHA20_POLY1305}
ALGORITHM_NAMES = {v: k for k, v in _ALGORITHMS.items()}
DEFAULT_SEGMENT_SIZE = 65536
MAX_ENVELOPE_LEN = lib.EXITLESS_MAX_ENVELOPE_LEN
MAX_OCALL_CYCLES = lib.EXITLESS_MAX_OCALL_CYCLES
MAX_URING_SPIN_US = lib.EXITLESS_MAX_URING_SPIN_US

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]
Buffer = bytes | bytearray | memoryview
KeyLike = Key | bytes | bytearray | memoryview


def _context_bytes(context: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(context, str):
        return context.encode("utf-8")
    if isinstance(context, (bytes, bytearray, memoryview)):
        return bytes(context)
    raise TypeError(f"context must be bytes or str, not {type(context).__name__}")


def _path_bytes(path: PathLike) -> bytes:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be str, bytes or os.PathLike, not {type(path).__name__}")
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("path contains a NUL byte")
    return encoded


BACKENDS = ("uring", "ocall", "switchless", "sync")
_BACKEND_IDS = {
    "auto": lib.EXITLESS_BACKEND_AUTO,
    "uring": lib.EXITLESS_BACKEND_URING,
    "ocall": lib.EXITLESS_BACKEND_OCALL,
    "switchless": lib.EXITLESS_BACKEND_SWITCHLESS,
    "sync": lib.EXITLESS_BACKEND_SYNC,
    "null": lib.EXITLESS_BACKEND_NULL,
}
_BACKEND_NAMES = {v: k for k, v in _BACKEND_IDS.items()}
_uring_reason: str | None = None
_uring_checked = False
_auto_warned = False


def uring_unavailable_reason() -> str | None:
    """None if the io_uring backend works here, else a one-line reason (probed once)."""
    global _uring_reason, _uring_checked
    if not _uring_checked:
        if lib.exitless_uring_available() != lib.EXITLESS_OK:
            _uring_reason = ffi.string(lib.exitless_last_error_message()).decode("utf-8", "replace")
        _uring_checked = True
    return _uring_reason


def backends() -> dict[str, dict[str, object]]:
    """Which backends work here: ``{name: {"available": bool, "reason": str | None}}``."""
    reason = uring_unavailable_reason()
    out: dict[str, dict[str, object]] = {"uring": {"available": reason is None, "reason": reason}}
    for name in ("ocall", "switchless", "sync"):
        out[name] = {"available": True, "reason": None}
    return out


_RESOURCE_FIELDS = (
    "writers",
    "readers",
    "backends",
    "pooled_backends",
    "untrusted_regions",
    "untrusted_bytes",
    "trusted_pool_bytes",
)


def resources() -> dict[str, int]:
    """What the native core holds for streams right now: open writer and reader
    handles, IO backends alive (in use or pooled), untrusted buffer regions and
    bytes, pooled trusted chunk bytes. After every stream is closed and
    :func:`release_backends`, every count is zero (leak checks)."""
    raw = ffi.new("ExitlessResources *")
    raise_for(lib.exitless_resources(raw))
    return {name: int(getattr(raw, name)) for name in _RESOURCE_FIELDS}


def release_backends() -> None:
    """Releases pooled IO backends (io_uring rings and their buffers, switchless
    worker threads) and pooled trusted chunk buffers; open streams keep theirs.

    Closing an io_uring ring makes the kernel interrupt this process's threads once,
    a moment later: a blocking write to a pipe or socket may then return short (see
    docs/HARDENING.md, "Hostile use"), so write with a loop that checks counts."""
    lib.exitless_release_backends()


def unlink(
    path: PathLike,
    *,
    backend: str = "auto",
    ocall_cycles: int | None = None,
    uring_spin_us: int | None = None,
    uring_sqpoll: bool | None = None,
) -> dict[str, object]:
    """Deletes the file at ``path`` as :func:`os.unlink` does, through an IO backend:
    on io_uring with ``IORING_OP_UNLINKAT`` on a pooled ring (no enclave exit), on
    the OCALL path with one modeled exit. Use it for spill files written with
    :func:`open_spill`, so their whole life stays on the ring.

    A symlink is removed, not followed; a directory is refused (:class:`IsADirectoryError`);
    a missing file raises :class:`FileNotFoundError`. Returns what the backend did
    (the counters of :meth:`SealedWriter.stats`)."""
    opts = make_options(
        backend=backend, ocall_cycles=ocall_cycles, uring_spin_us=uring_spin_us, uring_sqpoll=uring_sqpoll
    )
    raw = ffi.new("ExitlessStats *")
    raise_for(lib.exitless_unlink(_path_bytes(path), opts, raw), os.fsdecode(path))
    return _stats_dict(raw)


def _caller_stacklevel() -> int:
    """The stacklevel that makes a warning point at the first frame outside exitless."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package_dir:
        frame, level = frame.f_back, level + 1
    return level


def _resolve_backend(backend: str) -> str:
    global _auto_warned
    if not isinstance(backend, str) or backend not in _BACKEND_IDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(_BACKEND_IDS)}")
    reason = uring_unavailable_reason() if backend in ("auto", "uring") else None
    if backend == "uring" and reason is not None:
        raise BackendUnavailableError(f"backend 'uring' is not available here: {reason}")
    if backend == "auto":
        if reason is None:
            return "uring"
        if not _auto_warned:
            warnings.warn(
                f"exitless: io_uring unavailable ({reason}); using the sync backend",
                RuntimeWarning,
                stacklevel=_caller_stacklevel(),
            )
            _auto_warned = True
        return "sync"
    return backend


class ReaderOptions(TypedDict, total=False):
    """The keyword options of a reader (:class:`SealedReader`), which every stream
    takes: how its IO reaches the disk. :func:`open_spill` says what each does."""

    backend: str
    queue_depth: int
    direct: bool | None
    ocall_cycles: int | None
    uring_spin_us: int | None
    uring_sqpoll: bool | None
    faults: str | None


class SealOptions(TypedDict, total=False):
    """How data is sealed: keyword options of :func:`exitless.seal_bytes` and
    :func:`exitless.seal_into`, and of writers. :func:`open_spill` says what each does."""

    segment_size: int
    algorithm: str
    key_id: bytes | None
    envelope: Buffer | None


class WriterOptions(SealOptions, ReaderOptions, total=False):
    """The keyword options of a writer (:class:`SealedWriter`, :class:`SealedSpillFile`)
    and of :func:`open_spill`: a reader's, how it seals, and these."""

    sync: bool
    parallel: bool
    _insecure_fixed_randomness: tuple[bytes, bytes] | None


#: Each option's default, in the order signatures list them.
_DEFAULTS: Final[WriterOptions] = {
    "segment_size": DEFAULT_SEGMENT_SIZE,
    "algorithm": "aes-256-gcm",
    "key_id": None,
    "sync": False,
    "backend": "auto",
    "queue_depth": 8,
    "direct": None,
    "ocall_cycles": None,
    "uring_spin_us": None,
    "uring_sqpoll": None,
    "parallel": True,
    "envelope": None,
    "faults": None,
    "_insecure_fixed_randomness": None,
}
_READER_KEYS: Final = ReaderOptions.__optional_keys__
_SEAL_KEYS: Final = SealOptions.__optional_keys__
_WRITER_KEYS: Final = WriterOptions.__optional_keys__
#: What :func:`make_options` takes: the pointers (``envelope``, ``faults``) are attached
#: by the caller, which keeps them alive during the native call.
_SCALAR_KEYS: Final = _WRITER_KEYS - {"envelope", "faults"}

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _check_keywords(where: str, options: Mapping[str, object], known: frozenset[str]) -> None:
    """The TypeError Python raises for a keyword a function does not take."""
    for name in options:
        if name not in known:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")


def _keyword_options(known: frozenset[str]) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """For a function whose options arrive as ``**options`` (typed by one of the
    dicts above): refuses other keywords as Python does, and shows each option as the
    keyword-only parameter it stands for, with its default, to :func:`help` and
    :func:`inspect.signature`, as if it were written out."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(func)
        spelled = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        # Also by keyword: the parameters before ``**options`` (such as ``context``).
        takes = known | {p.name for p in spelled if p.kind is not inspect.Parameter.POSITIONAL_ONLY}

        @functools.wraps(func)
        def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            _check_keywords(func.__qualname__, kwargs, takes)
            return func(*args, **kwargs)

        for name, default in _DEFAULTS.items():
            if name in known:
                annotation = WriterOptions.__annotations__[name]
                if isinstance(annotation, ForwardRef):  # `from __future__ import annotations`
                    annotation = annotation.__forward_arg__
                spelled.append(
                    inspect.Parameter(
                        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
                    )
                )
        vars(checked)["__signature__"] = signature.replace(parameters=spelled)
        return checked

    return decorate


def _reader_part(options: WriterOptions) -> ReaderOptions:
    """The options of ``options`` that apply to reading (a writer's others do not)."""
    part = {name: value for name, value in options.items() if name in _READER_KEYS}
    # mypy cannot follow a TypedDict built by filtering keys: these are ReaderOptions'
    # keys, with the values WriterOptions (a ReaderOptions) gives them.
    return cast(ReaderOptions, part)


def make_options(
    segment_size: int = DEFAULT_SEGMENT_SIZE, /, **options: Unpack[WriterOptions]
) -> ExitlessOptionsPtr:
    """Native stream options, validated with Python errors: :func:`open_spill`'s
    keywords but ``envelope`` and ``faults`` (pointers: see :func:`_native_options`)."""
    _check_keywords("make_options", options, _SCALAR_KEYS)
    return _native_options({"segment_size": segment_size, **options})


def _native_options(options: WriterOptions) -> ExitlessOptionsPtr:
    """The native options for ``options`` (the defaults for those missing), validated
    with Python errors. The pointers ``envelope`` and ``faults`` are left null: the
    caller attaches them (:func:`_attach_envelope`, :func:`_attach_faults`) and keeps
    them alive until the native call that reads them has returned."""
    o: WriterOptions = {**_DEFAULTS, **options}
    segment_size, algorithm, queue_depth = o["segment_size"], o["algorithm"], o["queue_depth"]
    direct, ocall_cycles, parallel = o["direct"], o["ocall_cycles"], o["parallel"]
    uring_spin_us, uring_sqpoll = o["uring_spin_us"], o["uring_sqpoll"]
    if not isinstance(segment_size, int) or isinstance(segment_size, bool):
        raise TypeError(f"segment_size must be an int, not {type(segment_size).__name__}")
    if not 256 <= segment_size <= 1 << 30:
        raise ValueError(f"segment_size must be between 256 and {1 << 30} bytes, got {segment_size}")
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {sorted(_ALGORITHMS)}")
    if not isinstance(queue_depth, int) or isinstance(queue_depth, bool) or not 1 <= queue_depth <= 1024:
        raise ValueError(f"queue_depth must be an int from 1 to 1024, got {queue_depth!r}")
    if direct not in (None, True, False):
        raise TypeError(f"direct must be None, True or False, not {direct!r}")
    if ocall_cycles is not None and (
        not isinstance(ocall_cycles, int)
        or isinstance(ocall_cycles, bool)
        or not 0 <= ocall_cycles <= MAX_OCALL_CYCLES
    ):
        raise ValueError(f"ocall_cycles must be an int from 0 to {MAX_OCALL_CYCLES}, got {ocall_cycles!r}")
    opts = ffi.new("ExitlessOptions *")
    raise_for(lib.exitless_options_default(opts))
    opts.segment_size = segment_size
    opts.algorithm = _ALGORITHMS[algorithm]
    key_id = o["key_id"]
    if key_id is not None:
        if len(key_id) != 16:
            raise ValueError(f"key_id must be 16 bytes, got {len(key_id)}")
        opts.has_key_id = 1
        ffi.memmove(opts.key_id, key_id, 16)
    opts.sync_on_finish = 1 if o["sync"] else 0
    opts.backend = _BACKEND_IDS[_resolve_backend(o["backend"])]
    opts.queue_depth = queue_depth
    opts.direct = -1 if direct is None else int(direct)
    opts.ocall_cycles = -1 if ocall_cycles is None else ocall_cycles
    if uring_spin_us is not None and (
        not isinstance(uring_spin_us, int)
        or isinstance(uring_spin_us, bool)
        or not 0 <= uring_spin_us <= MAX_URING_SPIN_US
    ):
        raise ValueError(f"uring_spin_us must be an int from 0 to {MAX_URING_SPIN_US}, got {uring_spin_us!r}")
    opts.uring_spin_us = -1 if uring_spin_us is None else uring_spin_us
    if uring_sqpoll not in (None, True, False):
        raise TypeError(f"uring_sqpoll must be None, True or False, not {uring_sqpoll!r}")
    opts.uring_sqpoll = -1 if uring_sqpoll is None else int(uring_sqpoll)
    if parallel not in (True, False):
        raise TypeError(f"parallel must be True or False, not {parallel!r}")
    opts.parallel = int(parallel)
    fixed = o["_insecure_fixed_randomness"]
    if fixed is not None:
        salt, prefix = fixed
        if len(salt) != 32 or len(prefix) != 7:
            raise ValueError("fixed randomness is a 32-byte salt and a 7-byte nonce prefix")
        opts.insecure_fixed_randomness = 1
        ffi.memmove(opts.fixed_salt, salt, 32)
        ffi.memmove(opts.fixed_nonce_prefix, prefix, 7)
    return opts


def _check_envelope(envelope: Buffer | None) -> bytes | None:
    """A writer's key envelope (format version 2) as bytes, or None (version 1)."""
    if envelope is None:
        return None
    if not isinstance(envelope, (bytes, bytearray, memoryview)):
        raise TypeError(f"envelope must be bytes or None, not {type(envelope).__name__}")
    env = bytes(envelope)
    if not 1 <= len(env) <= MAX_ENVELOPE_LEN:
        raise ValueError(f"envelope must be 1 to {MAX_ENVELOPE_LEN} bytes, got {len(env)}")
    return env


def _attach_envelope(opts: ExitlessOptionsPtr, envelope: bytes | None) -> CData | None:
    """Points ``opts`` at ``envelope``; the caller keeps the returned object alive
    until the native call that takes ``opts`` has returned (it copies the bytes)."""
    if envelope is None:
        return None
    buf = ffi.from_buffer(envelope)
    opts.envelope = buf
    opts.envelope_len = len(envelope)
    return buf


def _attach_faults(opts: ExitlessOptionsPtr, faults: str | None) -> CData | None:
    """Points ``opts`` at a fault-injection spec (tests: docs/HARDENING.md); the
    caller keeps the returned object alive until the native call has returned."""
    if faults is None:
        return None
    if not isinstance(faults, str):
        raise TypeError(f"faults must be a str or None, not {type(faults).__name__}")
    buf = ffi.new("char[]", faults.encode("ascii"))
    opts.faults = buf
    return buf


def _leaf_fields(ctype: CType, prefix: tuple[str, ...] = ()) -> tuple[tuple[str, ...], ...]:
    """The paths of a struct type's scalar fields, in order, nested structs flattened."""
    paths: list[tuple[str, ...]] = []
    for name, field in ctype.fields:
        if field.type.kind == "struct":
            paths.extend(_leaf_fields(field.type, (*prefix, name)))
        else:
            paths.append((*prefix, name))
    return tuple(paths)


# The stats dicts' counters are ``ExitlessStats``' fields as exitless.h declares them
# (the backend's, ``io``, are exitless-io's ``Counters``, their one definition): their
# paths in the struct, and the names of all but ``backend`` and ``direct``.
_STAT_PATHS = {path[-1]: path for path in _leaf_fields(ffi.typeof("ExitlessStats"))}
_STAT_FIELDS = tuple(name for name in _STAT_PATHS if name not in ("backend", "direct"))


def _stat(raw: ExitlessStatsPtr, path: tuple[str, ...]) -> int:
    value: object = raw
    for part in path:
        value = getattr(value, part)
    return int(cast(int, value))


def _stats_dict(raw: ExitlessStatsPtr) -> dict[str, object]:
    counts = {name: _stat(raw, _STAT_PATHS[name]) for name in _STAT_FIELDS}
    out: dict[str, object] = {**counts, "total_exits": counts["exits"] + counts["stream_syscalls"]}
    out["backend"] = _BACKEND_NAMES[raw.backend]
    out["direct"] = bool(raw.direct)
    return out


class SealedWriter(AbortOnError, io.RawIOBase):
    """A write-only sealed stream. ``close()`` (or leaving a ``with`` block normally)
    seals the final segment: only then is the file complete. If the ``with`` block
    raises, or the writer is garbage-collected unclosed, the stream is aborted and
    the file stays incomplete, so it can never read back as a whole stream."""

    _handle: ExitlessWriterPtr  # set once the stream is open; ``__del__`` frees it

    @_keyword_options(_WRITER_KEYS)
    def __init__(
        self, path: PathLike, key: KeyLike, context: bytes | str = b"", **options: Unpack[WriterOptions]
    ) -> None:
        super().__init__()
        key = as_key(key)
        env = _check_envelope(options.get("envelope"))
        self.name = os.fsdecode(path)
        self.mode = "wb"
        key_id = options.get("key_id")
        opts = _native_options({**options, "key_id": key.key_id if key_id is None else key_id})
        ctx = _context_bytes(context)
        out = ffi.new("ExitlessWriter **")
        secret = key._buffer()
        keep = _attach_envelope(opts, env), _attach_faults(opts, options.get("faults"))
        raise_for(
            lib.exitless_writer_open(
                _path_bytes(path), ffi.from_buffer(secret), len(secret), ctx, len(ctx), opts, out
            ),
            self.name,
        )
        del keep
        self._handle = out[0]
        self._pid = os.getpid()

    def writable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        raise io.UnsupportedOperation(f"{self.name}: sealed writer is write-only")

    def write(self, b: ReadableBuffer) -> int:
        """Seals and writes all of ``b``; returns ``len(b)`` in bytes."""
        self._check_open()
        view = memoryview(b)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        raise_for(lib.exitless_writer_write(self._handle, ffi.from_buffer(view), view.nbytes), self.name)
        return view.nbytes

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        self._check_open()
        out = ffi.new("uint64_t *")
        raise_for(lib.exitless_writer_tell(self._handle, out), self.name)
        return int(out[0])

    def stats(self) -> dict[str, object]:
        """What this stream did: exits, syscalls, io_uring enters, bytes, segments, ...
        (see docs/BENCHMARKS.md for each counter). After ``close()`` (or ``abort()``),
        what it did in all, the close included."""
        raw = ffi.new("ExitlessStats *")
        raise_for(lib.exitless_writer_stats(self._handle, raw), self.name)
        return _stats_dict(raw)

    def flush(self) -> None:
        """No-op beyond the closed check: full segments are written as soon as the next
        byte arrives; a partial segment is sealed only by ``close()``."""
        self._check_open()

    def close(self) -> None:
        """Seals the final segment and closes. Raises if that fails (the file is then
        incomplete). Safe while other threads are inside calls on this writer: theirs
        finish first, or fail with ``ValueError`` (closed)."""
        if self.closed:
            return
        try:
            raise_for(lib.exitless_writer_finish(self._handle), self.name)
        finally:
            self._close_native()

    def abort(self) -> None:
        """Closes without sealing the final segment: the file is left incomplete."""
        if self.closed:
            return
        self._close_native()

    def _close_native(self) -> None:
        # The handle itself stays allocated until this object is collected
        # (``__del__``), so a thread still inside a call never sees freed memory.
        status = lib.exitless_writer_close(self._handle)
        if status != lib.EXITLESS_ERR_WRONG_PROCESS:  # a forked child's calls keep failing
            raw = ffi.new("ExitlessStats *")
            if lib.exitless_writer_stats(self._handle, raw) == lib.EXITLESS_OK:
                self.final_stats = _stats_dict(raw)  # what it did in all, the close included
            super().close()
        raise_for(status, self.name)

    def __del__(self) -> None:
        if not hasattr(self, "_handle"):  # never opened, or freed already
            return
        if getattr(self, "_pid", None) == os.getpid() and not self.closed:
            warnings.warn(
                f"sealed writer {self.name} was never closed; aborted (file left incomplete)",
                ResourceWarning,
                stacklevel=2,
            )
        # In a forked child this releases only the child's copy of the handle: the
        # stream is the parent's.
        handle = self._handle
        del self._handle
        lib.exitless_writer_free(handle)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed sealed writer {self.name}")

    def __repr__(self) -> str:
        return f"<exitless.SealedWriter name={self.name!r} closed={self.closed}>"


class SealedReader(io.RawIOBase):
    """A read-only, seekable sealed stream. Opening checks the header and the final
    segment, so truncation is reported before any plaintext; each segment is
    authenticated before a byte of it is returned."""

    _handle: ExitlessReaderPtr  # set once the stream is open; ``__del__`` frees it

    @_keyword_options(_READER_KEYS)
    def __init__(
        self, path: PathLike, key: KeyLike, context: bytes | str = b"", **options: Unpack[ReaderOptions]
    ) -> None:
        super().__init__()
        key = as_key(key)
        self.name = os.fsdecode(path)
        self.mode = "rb"
        ctx = _context_bytes(context)
        opts = _native_options({**_DEFAULTS, **options})
        out = ffi.new("ExitlessReader **")
        secret = key._buffer()
        keep = _attach_faults(opts, options.get("faults"))
        raise_for(
            lib.exitless_reader_open(
                _path_bytes(path), ffi.from_buffer(secret), len(secret), ctx, len(ctx), opts, out
            ),
            self.name,
        )
        del keep
        self._handle = out[0]
        self._pid = os.getpid()
        size = ffi.new("uint64_t *")
        raise_for(lib.exitless_reader_size(self._handle, size), self.name)
        self._size = int(size[0])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        raise io.UnsupportedOperation(f"{self.name}: sealed reader is read-only")

    @property
    def size(self) -> int:
        """Plaintext length of the stream."""
        return self._size

    def stats(self) -> dict[str, object]:
        """What this stream did so far (same counters as :meth:`SealedWriter.stats`);
        after ``close()``, what it did in all, the close included."""
        raw = ffi.new("ExitlessStats *")
        raise_for(lib.exitless_reader_stats(self._handle, raw), self.name)
        return _stats_dict(raw)

    def readinto(self, b: WriteableBuffer) -> int:
        """Reads into a writable buffer; returns the bytes read (0 at end of stream)."""
        self._check_open()
        view = memoryview(b).cast("B")
        out = ffi.new("size_t *")
        raise_for(
            lib.exitless_reader_read(
                self._handle, ffi.from_buffer(view, require_writable=True), view.nbytes, out
            ),
            self.name,
        )
        return int(out[0])

    def readall(self) -> bytes:
        """Reads to the end in one native call. Raises, returning nothing, if any segment fails."""
        self._check_open()
        buf = bytearray(max(self._size - self.tell(), 0))
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return super().read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise TypeError(f"seek offset must be an int, not {type(offset).__name__}")
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence {whence!r} (use 0, 1 or 2)")
        if not -(1 << 63) <= offset < 1 << 63:
            raise ValueError(f"{self.name}: seek offset {offset} out of range")
        out = ffi.new("uint64_t *")
        raise_for(lib.exitless_reader_seek(self._handle, offset, whence, out), self.name)
        return int(out[0])

    def tell(self) -> int:
        self._check_open()
        out = ffi.new("uint64_t *")
        raise_for(lib.exitless_reader_tell(self._handle, out), self.name)
        return int(out[0])

    def close(self) -> None:
        """Closes the reader. Safe while other threads are inside calls on it: theirs
        finish first, or fail with ``ValueError`` (closed)."""
        if self.closed:
            return
        status = lib.exitless_reader_close(self._handle)
        if status != lib.EXITLESS_ERR_WRONG_PROCESS:  # a forked child's calls keep failing
            super().close()
        raise_for(status, self.name)

    def __del__(self) -> None:
        if not hasattr(self, "_handle"):  # never opened, or freed already
            return
        # Frees the handle (closing the stream if still open); in a forked child,
        # only the child's copy of the handle.
        handle = self._handle
        del self._handle
        lib.exitless_reader_free(handle)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed sealed reader {self.name}")

    def __repr__(self) -> str:
        return f"<exitless.SealedReader name={self.name!r} size={self._size} closed={self.closed}>"


class SealedSpillFile(io.RawIOBase):
    """Mode ``"w+b"``: a spill file written (possibly by several ``dump_stream``
    calls) and then read back. The first ``seek`` or ``read`` completes the
    stream; from then on the file is read-only (writing raises
    :class:`io.UnsupportedOperation`)."""

    def __init__(
        self, path: PathLike, key: KeyLike, context: bytes | str = b"", **options: Unpack[WriterOptions]
    ) -> None:
        super().__init__()
        self._writer: SealedWriter | None = None
        self._reader: SealedReader | None = None
        self._key = as_key(key)
        self._context = context
        self.name = os.fsdecode(path)
        self.mode = "w+b"
        self._read_options = _reader_part(options)
        self._writer = SealedWriter(path, self._key, context, **options)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._writer is not None

    def seekable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        if self._writer is None:
            self._check_open()
            raise io.UnsupportedOperation(
                f"{self.name}: a sealed spill file is read-only once it has been read back"
            )
        return self._writer.write(b)

    def _to_reading(self) -> SealedReader:
        self._check_open()
        if self._reader is None:
            writer, self._writer = self._writer, None
            assert writer is not None
            writer.close()
            self._reader = SealedReader(self.name, self._key, self._context, **self._read_options)
        return self._reader

    def readinto(self, b: WriteableBuffer) -> int:
        return self._to_reading().readinto(b)

    def readall(self) -> bytes:
        return self._to_reading().readall()

    def read(self, size: int | None = -1) -> bytes:
        return self._to_reading().read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._to_reading().seek(offset, whence)

    def tell(self) -> int:
        self._check_open()
        return self._phase().tell()

    def flush(self) -> None:
        self._check_open()

    def stats(self) -> dict[str, object]:
        """Counters of the current phase (writing, then reading); after ``close()``,
        of the last phase in all."""
        return self._phase().stats()

    def _phase(self) -> SealedWriter | SealedReader:
        """The stream of the current phase: the writer, then (from the first read or
        seek on) the reader."""
        if self._reader is not None:
            return self._reader
        assert self._writer is not None, "the writer is let go of only when the reader opens"
        return self._writer

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._writer is not None:
                self._writer.close()
            if self._reader is not None:
                self._reader.close()
        finally:
            super().close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self._writer is not None:
            self._writer.abort()
        self.close()

    def __del__(self) -> None:
        # Like SealedWriter: a spill file dropped while still being written is
        # aborted (left incomplete), never sealed as a shorter complete stream.
        writer = getattr(self, "_writer", None)
        # (In a forked child the writer is the parent's: its own __del__ lets go of it.)
        if writer is not None and not writer.closed and getattr(writer, "_pid", None) == os.getpid():
            warnings.warn(
                f"sealed spill file {self.name} was never closed; aborted (file left incomplete)",
                ResourceWarning,
                stacklevel=2,
            )
            writer.abort()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed sealed spill file {self.name}")


@overload
def open_spill(
    path: PathLike,
    mode: Literal["wb"],
    key: KeyLike,
    context: bytes | str = ...,
    **options: Unpack[WriterOptions],
) -> SealedWriter: ...
@overload
def open_spill(
    path: PathLike,
    mode: Literal["rb"],
    key: KeyLike,
    context: bytes | str = ...,
    **options: Unpack[WriterOptions],
) -> SealedReader: ...
@overload
def open_spill(
    path: PathLike,
    mode: Literal["w+b"],
    key: KeyLike,
    context: bytes | str = ...,
    **options: Unpack[WriterOptions],
) -> SealedSpillFile: ...
@overload
def open_spill(
    path: PathLike, mode: str, key: KeyLike, context: bytes | str = ..., **options: Unpack[WriterOptions]
) -> SealedWriter | SealedReader | SealedSpillFile: ...


@_keyword_options(_WRITER_KEYS)
def open_spill(
    path: PathLike, mode: str, key: KeyLike, context: bytes | str = b"", **options: Unpack[WriterOptions]
) -> SealedWriter | SealedReader | SealedSpillFile:
    """Open a sealed spill file.

    - ``mode``: ``"wb"`` (create or truncate, write), ``"rb"`` (read, seek) or
      ``"w+b"`` (write, then read back).
    - ``key``: an :class:`exitless.Key` or 32 raw bytes.
    - ``context``: bytes (or str, UTF-8) binding the file to its role; a reader must
      pass the same context.
    - ``segment_size``, ``algorithm``, ``key_id``, ``sync``: writer options (for
      ``"rb"`` the header says). ``key_id`` defaults to the key's fingerprint; ``sync``
      fsyncs on close.
    - ``backend``: ``"auto"`` (io_uring if it works here, else ``"sync"`` with a
      warning), ``"uring"`` (raises :class:`BackendUnavailableError` if it does not
      work here), ``"ocall"``, ``"switchless"`` or ``"sync"``; see :func:`backends`.
    - ``queue_depth``: segments in flight per stream (memory: depth × segment size).
    - ``direct``: ``True`` opens the file with O_DIRECT (segment sizes of whole 4 KiB
      blocks); ``None`` or ``False``: the page cache, the default (measured faster
      on this project's machines for every backend: docs/BENCHMARKS.md).
    - ``ocall_cycles``: modeled cycles per enclave exit for ``"ocall"`` and
      ``"switchless"`` (default ``$EXITLESS_OCALL_CYCLES`` or 8200).
    - ``uring_spin_us``: how long an io_uring stream spins for a completion before
      it blocks in the kernel (an exit in an enclave); default
      ``$EXITLESS_URING_SPIN_US`` or 100. With cores to spare, 10000 keeps even
      disk-bound streams exit-less.
    - ``uring_sqpoll``: give io_uring rings an SQPOLL kernel thread, so submitting
      makes no system call (no exit), at the cost of a core the thread keeps busy
      while streams run (and ``$EXITLESS_URING_SQ_IDLE_MS`` after); ``None``:
      ``$EXITLESS_URING_SQPOLL`` (0 or 1), else on where 4 or more CPUs are
      available. Without it every ``io_uring_enter`` is an exit (reads and writes
      batched into the waiting ones) and no call returns with its IO in flight (the
      kernel would cancel it with the thread); on two cores it is the faster path
      (docs/BENCHMARKS.md, "SQPOLL on two cores").
    - ``parallel``: seal writes of two or more segments on the calling thread and
      the process-wide runtime's vCPUs together (``$EXITLESS_VCPUS``, default one
      per core; the runtime starts on first use). A stream whose IO is the
      bottleneck seals on the calling thread alone. ``False`` keeps everything on
      the calling thread.
    - ``envelope``: writers: the key envelope (the KMS's wrapped data key, 1 to 1024
      bytes) to carry in the header, which makes the file format version 2
      (docs/FORMAT.md section 9); pass ``key_id`` = the id of the KMS key that wrapped
      it. ``None``: version 1. Readers take it from the header
      (:func:`exitless.inspect`); :func:`exitless.kms.open_sealed` does both for you.
    - ``faults``: tests only: a fault-injection spec such as ``"enospc@segment=7"`` or
      ``"short@write=*"``: the stream's backend makes that read, write or fsync fail
      (ENOSPC, EIO), be interrupted (EINTR) or move only part of its bytes, where it
      meets the kernel (docs/HARDENING.md, "Fault injection"). Not with ``"null"``.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    normalized = "".join(sorted(mode))
    if normalized == "bw":
        return SealedWriter(path, key, context, **options)
    if normalized == "br":
        return SealedReader(path, key, context, **_reader_part(options))
    if normalized == "+bw":
        return SealedSpillFile(path, key, context, **options)
    raise ValueError(f"unsupported mode {mode!r}: use 'wb', 'rb' or 'w+b' (sealed files are binary)")
