"""Types of ``exitless._native``, the cffi module ``maturin develop`` generates here.

The generated files beside this stub (``__init__.py``, ``ffi.py``, ``lib_native.so``)
are not tracked; this one is, so mypy checks every call into the C ABI of
native/ffi/include/exitless.h. It is written by hand: tests/test_native_stub.py
checks that it names exactly the header's functions (with their parameters, in
order, and types that follow from the C types) and constants (with their values),
and the structs' fields as the built module has them.

C types map to Python ones as follows:

- integer scalars (``uint8_t`` … ``size_t``, ``ExitlessStatus``): ``int``; ``double``: ``float``;
- ``const char *`` parameters (NUL-terminated paths): ``bytes``;
- ``const uint8_t *``: ``bytes | CData`` (a bytes object, or a pointer such as
  ``ffi.from_buffer``'s); ``uint8_t *`` (a buffer to fill): ``CData``;
- ``[const] T *`` and ``T **``: ``TPtr`` and ``TPtrPtr`` below, what ``ffi.new("T *")``
  and ``ffi.new("T **")`` return (``uint64_t *``: ``Uint64Ptr``, ``size_t *``: ``SizePtr``);
  ``| CData`` where the header allows null (``ffi.NULL``);
- returned ``const char *``: ``CData`` (read it with ``ffi.string``).
"""

from typing import Final, Generic, Literal, TypeAlias, TypeVar, final, overload

import _cffi_backend
from _typeshed import ReadableBuffer, WriteableBuffer

#: Any cdata object: a pointer from ``ffi.from_buffer`` or ``ffi.new("char[]", ...)``,
#: an array field of a struct, ``ffi.NULL``.
CData: TypeAlias = _cffi_backend.FFI.CData
#: A C type, as ``ffi.typeof`` returns it (``.fields``, ``.kind``).
CType: TypeAlias = _cffi_backend.FFI.CType

_T = TypeVar("_T")

class _Cell(Generic[_T]):
    """A cdata ``T *`` from ``ffi.new``: ``p[0]`` is the ``T`` it points at."""

    def __getitem__(self, index: int, /) -> _T: ...
    def __setitem__(self, index: int, value: _T, /) -> None: ...

@final
class Uint32Ptr(_Cell[int]):
    """``uint32_t *``"""

@final
class Uint64Ptr(_Cell[int]):
    """``uint64_t *``"""

@final
class SizePtr(_Cell[int]):
    """``size_t *``"""

@final
class ExitlessWriterPtr:
    """``ExitlessWriter *``: an open writer's handle (opaque)."""

@final
class ExitlessReaderPtr:
    """``ExitlessReader *``: an open reader's handle (opaque)."""

@final
class ExitlessWriterPtrPtr(_Cell[ExitlessWriterPtr]):
    """``ExitlessWriter **``: where ``exitless_writer_open`` puts the handle."""

@final
class ExitlessReaderPtrPtr(_Cell[ExitlessReaderPtr]):
    """``ExitlessReader **``: where ``exitless_reader_open`` puts the handle."""

@final
class ExitlessFileInfoPtr:
    """``ExitlessFileInfo *``: header facts of a sealed file, read without a key."""

    version: int
    algorithm: int
    key_id: CData
    segment_size: int
    file_len: int
    segments: int
    plaintext_len: int
    header_len: int
    envelope_len: int
    envelope: CData

@final
class ExitlessOptionsPtr:
    """``ExitlessOptions *``: options for opening a writer or reader."""

    segment_size: int
    algorithm: int
    has_key_id: int
    key_id: CData
    sync_on_finish: int
    backend: int
    direct: int
    queue_depth: int
    ocall_cycles: int
    uring_spin_us: int
    uring_sqpoll: int
    parallel: int
    insecure_fixed_randomness: int
    fixed_salt: CData
    fixed_nonce_prefix: CData
    envelope: CData
    envelope_len: int
    faults: CData

@final
class ExitlessOcallModelPtr:
    """``ExitlessOcallModel *``: the OCALL cost model in force for new streams."""

    cycles_per_exit: int
    triple_above_16k: int
    calibrated: int
    tsc_ticks_per_ns: float
    ns_per_exit: float

@final
class ExitlessResourcesPtr:
    """``ExitlessResources *``: what the process holds for its streams."""

    writers: int
    readers: int
    backends: int
    pooled_backends: int
    untrusted_regions: int
    untrusted_bytes: int
    trusted_pool_bytes: int

@final
class ExitlessCountersPtr:
    """``ExitlessCounters``: what a backend did (exitless-io's ``Counters``, their one
    definition; ``ExitlessStats.io``)."""

    exits: int
    syscalls: int
    uring_enters: int
    sqpoll_wakeups: int
    bytes: int
    ops: int
    completions_rejected: int
    resubmits: int
    fallbacks: int
    file_ops: int

@final
class ExitlessStatsPtr:
    """``ExitlessStats *``: what a stream did."""

    io: ExitlessCountersPtr
    stream_syscalls: int
    segments: int
    plaintext_bytes: int
    backend: int
    direct: int

@final
class _FFI:
    """The parts of cffi's ``FFI`` this package uses, ``new`` typed per declaration."""

    NULL: Final[CData]
    @overload
    def new(self, cdecl: Literal["uint32_t *"], /) -> Uint32Ptr: ...
    @overload
    def new(self, cdecl: Literal["uint64_t *"], /) -> Uint64Ptr: ...
    @overload
    def new(self, cdecl: Literal["size_t *"], /) -> SizePtr: ...
    @overload
    def new(self, cdecl: Literal["char[]"], init: bytes, /) -> CData: ...
    @overload
    def new(self, cdecl: Literal["ExitlessWriter **"], /) -> ExitlessWriterPtrPtr: ...
    @overload
    def new(self, cdecl: Literal["ExitlessReader **"], /) -> ExitlessReaderPtrPtr: ...
    @overload
    def new(self, cdecl: Literal["ExitlessFileInfo *"], /) -> ExitlessFileInfoPtr: ...
    @overload
    def new(self, cdecl: Literal["ExitlessOptions *"], /) -> ExitlessOptionsPtr: ...
    @overload
    def new(self, cdecl: Literal["ExitlessOcallModel *"], /) -> ExitlessOcallModelPtr: ...
    @overload
    def new(self, cdecl: Literal["ExitlessResources *"], /) -> ExitlessResourcesPtr: ...
    @overload
    def new(self, cdecl: Literal["ExitlessStats *"], /) -> ExitlessStatsPtr: ...
    @overload
    def from_buffer(
        self, python_buffer: ReadableBuffer, /, require_writable: Literal[False] = False
    ) -> CData: ...
    @overload
    def from_buffer(self, python_buffer: WriteableBuffer, /, require_writable: Literal[True]) -> CData: ...
    def buffer(self, cdata: CData, size: int = -1, /) -> _cffi_backend.buffer: ...
    def memmove(self, dest: CData | WriteableBuffer, src: CData | ReadableBuffer, n: int) -> None: ...
    def string(self, cdata: CData, maxlen: int = -1, /) -> bytes:
        """The bytes of a NUL-terminated ``char *`` (the header has no ``wchar_t``)."""
    def typeof(self, cdecl: Literal["ExitlessStats"], /) -> CType: ...

@final
class _Lib:
    """The C ABI: native/ffi/include/exitless.h."""

    EXITLESS_AES_256_GCM: Final = 1
    EXITLESS_CHACHA20_POLY1305: Final = 2
    EXITLESS_DEFAULT_SEGMENT_SIZE: Final = 65536
    EXITLESS_BACKEND_AUTO: Final = 0
    EXITLESS_BACKEND_URING: Final = 1
    EXITLESS_BACKEND_OCALL: Final = 2
    EXITLESS_BACKEND_SWITCHLESS: Final = 3
    EXITLESS_BACKEND_SYNC: Final = 4
    EXITLESS_MAX_ENVELOPE_LEN: Final = 1024
    EXITLESS_IO_SIZE: Final = 1048576
    EXITLESS_COALESCE_AFTER: Final = 1048576
    EXITLESS_MAX_OCALL_CYCLES: Final = 10000000
    EXITLESS_MAX_URING_SPIN_US: Final = 10000000
    EXITLESS_BACKEND_NULL: Final = 5
    EXITLESS_OK: Final = 0
    EXITLESS_ERR_INVALID_ARGUMENT: Final = 1
    EXITLESS_ERR_IO: Final = 2
    EXITLESS_ERR_FORMAT: Final = 3
    EXITLESS_ERR_INTEGRITY: Final = 4
    EXITLESS_ERR_CLOSED: Final = 5
    EXITLESS_ERR_PANIC: Final = 6
    EXITLESS_ERR_WRONG_PROCESS: Final = 7
    EXITLESS_ERR_REJECTED_COMPLETION: Final = 8

    def exitless_inspect(self, path: bytes, out: ExitlessFileInfoPtr, /) -> int: ...
    def exitless_sealed_len(self, plaintext_len: int, segment_size: int, out: Uint64Ptr, /) -> int: ...
    def exitless_sealed_len_envelope(
        self, plaintext_len: int, segment_size: int, envelope_len: int, out: Uint64Ptr, /
    ) -> int: ...
    def exitless_seal_buffer(
        self,
        key: bytes | CData,
        key_len: int,
        context: bytes | CData,
        context_len: int,
        options: ExitlessOptionsPtr | CData,
        plaintext: bytes | CData,
        plaintext_len: int,
        out: CData,
        out_cap: int,
        out_len: SizePtr,
        /,
    ) -> int: ...
    def exitless_open_buffer(
        self,
        key: bytes | CData,
        key_len: int,
        context: bytes | CData,
        context_len: int,
        sealed: bytes | CData,
        sealed_len: int,
        out: CData,
        out_cap: int,
        out_len: SizePtr,
        /,
    ) -> int: ...
    def exitless_uring_available(self) -> int: ...
    def exitless_uring_features(self, out: Uint32Ptr, /) -> int: ...
    def exitless_ocall_model(self, out: ExitlessOcallModelPtr, /) -> int: ...
    def exitless_release_backends(self) -> None: ...
    def exitless_resources(self, out: ExitlessResourcesPtr, /) -> int: ...
    def exitless_options_default(self, options: ExitlessOptionsPtr, /) -> int: ...
    def exitless_last_error_message(self) -> CData: ...
    def exitless_last_error_errno(self) -> int: ...
    def exitless_writer_open(
        self,
        path: bytes,
        key: bytes | CData,
        key_len: int,
        context: bytes | CData,
        context_len: int,
        options: ExitlessOptionsPtr | CData,
        out: ExitlessWriterPtrPtr,
        /,
    ) -> int: ...
    def exitless_writer_write(self, writer: ExitlessWriterPtr, data: bytes | CData, len: int, /) -> int: ...
    def exitless_writer_tell(self, writer: ExitlessWriterPtr, out: Uint64Ptr, /) -> int: ...
    def exitless_writer_finish(self, writer: ExitlessWriterPtr, /) -> int: ...
    def exitless_writer_close(self, writer: ExitlessWriterPtr, /) -> int: ...
    def exitless_writer_free(self, writer: ExitlessWriterPtr | CData, /) -> None: ...
    def exitless_reader_open(
        self,
        path: bytes,
        key: bytes | CData,
        key_len: int,
        context: bytes | CData,
        context_len: int,
        options: ExitlessOptionsPtr | CData,
        out: ExitlessReaderPtrPtr,
        /,
    ) -> int: ...
    def exitless_reader_read(
        self, reader: ExitlessReaderPtr, buf: CData, len: int, out_read: SizePtr, /
    ) -> int: ...
    def exitless_reader_seek(
        self, reader: ExitlessReaderPtr, offset: int, whence: int, out_pos: Uint64Ptr | CData, /
    ) -> int: ...
    def exitless_reader_tell(self, reader: ExitlessReaderPtr, out: Uint64Ptr, /) -> int: ...
    def exitless_reader_size(self, reader: ExitlessReaderPtr, out: Uint64Ptr, /) -> int: ...
    def exitless_reader_close(self, reader: ExitlessReaderPtr, /) -> int: ...
    def exitless_reader_free(self, reader: ExitlessReaderPtr | CData, /) -> None: ...
    def exitless_writer_stats(self, writer: ExitlessWriterPtr, out: ExitlessStatsPtr, /) -> int: ...
    def exitless_reader_stats(self, reader: ExitlessReaderPtr, out: ExitlessStatsPtr, /) -> int: ...
    def exitless_unlink(
        self, path: bytes, options: ExitlessOptionsPtr | CData, out: ExitlessStatsPtr | CData, /
    ) -> int: ...

ffi: _FFI
lib: _Lib
