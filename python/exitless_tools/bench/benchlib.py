"""``libexitless_bench.so`` (the Rust crate ``native/bench``): the benchmark drivers,
a sealed stream and its plaintext twin written with data made natively, so Python
is not in the write loop. It is no part of the product or the wheel: ``make``
builds it (``make bench-lib``; ``make setup`` does too), and it is found at
``$EXITLESS_BENCH_LIB``, else in the checkout's ``target/release`` (or
``$CARGO_TARGET_DIR/release``).

Loaded with cffi in ABI mode: the options and the stats travel as ``void *``,
allocated with the product's cffi types (``exitless._native``), whose layout the
library shares as it is built from the same tree (``make`` rebuilds both when a
Rust source changes). The library links its own copy of the C ABI's state: a bench
call's error is read from this library's last error, and the backends its streams
pooled are released with its ``exitless_release_backends``.
"""

from __future__ import annotations

import errno as _errno
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import cffi

from exitless._errors import error_for
from exitless._native import lib as native_lib

if TYPE_CHECKING:
    from exitless._native import CData, ExitlessOptionsPtr, ExitlessStatsPtr

#: The make target that builds the library.
MAKE_TARGET = "make bench-lib"
LIB_NAME = "libexitless_bench.so"
SOURCE_ROOT = Path(__file__).resolve().parents[3]

_CDEF = """
int32_t exitless_bench_write(const char *path, const void *options, uint64_t total, size_t chunk,
                             uint8_t seal, void *out);
int32_t exitless_bench_read(const char *path, const void *options, size_t chunk, void *out);
const char *exitless_last_error_message(void);
int32_t exitless_last_error_errno(void);
void exitless_release_backends(void);
"""


class _Lib(Protocol):
    """The functions of :data:`_CDEF`, as cffi's ABI mode calls them: ``void *``
    takes the product's ``ExitlessOptions *`` and ``ExitlessStats *`` as they are."""

    def exitless_bench_write(
        self,
        path: bytes,
        options: ExitlessOptionsPtr,
        total: int,
        chunk: int,
        seal: int,
        out: ExitlessStatsPtr,
        /,
    ) -> int: ...
    def exitless_bench_read(
        self, path: bytes, options: ExitlessOptionsPtr, chunk: int, out: ExitlessStatsPtr, /
    ) -> int: ...
    def exitless_last_error_message(self) -> CData: ...
    def exitless_last_error_errno(self) -> int: ...
    def exitless_release_backends(self) -> None: ...


def library_path() -> Path:
    """Where the library is looked for: ``$EXITLESS_BENCH_LIB``, else the build's."""
    named = os.environ.get("EXITLESS_BENCH_LIB")
    if named:
        return Path(named)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or SOURCE_ROOT / "target")
    if not target.is_absolute():
        target = SOURCE_ROOT / target
    return target / "release" / LIB_NAME


class BenchLibrary:
    """The loaded library: its two drivers, and its own last error and pool."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        # cffi types what dlopen returns loosely; _Lib is what _CDEF declares.
        self.lib = cast(_Lib, self.ffi.dlopen(str(path)))

    def _check(self, status: int, path: str) -> None:
        """Raises what the product raises for ``status``, with this library's last error."""
        if status == native_lib.EXITLESS_OK:
            return
        raw = self.ffi.string(self.lib.exitless_last_error_message())
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise error_for(status, message, self.lib.exitless_last_error_errno(), path)

    def write(
        self,
        path: str,
        options: ExitlessOptionsPtr,
        total: int,
        chunk: int,
        sealed: bool,
        stats: ExitlessStatsPtr,
    ) -> None:
        """Writes ``total`` bytes to ``path``: a sealed stream in ``chunk``-byte writes, or
        (``sealed`` false) plaintext with the same IOs. ``options``: an ``ExitlessOptions *``
        of ``exitless._native``; ``stats`` an ``ExitlessStats *`` that gets the counters."""
        status = self.lib.exitless_bench_write(
            os.fsencode(path), options, total, chunk, 1 if sealed else 0, stats
        )
        self._check(status, path)

    def read(self, path: str, options: ExitlessOptionsPtr, chunk: int, stats: ExitlessStatsPtr) -> None:
        """Reads a sealed stream written by :meth:`write` to the end in ``chunk``-byte reads."""
        status = self.lib.exitless_bench_read(os.fsencode(path), options, chunk, stats)
        self._check(status, path)

    def release_backends(self) -> None:
        """Releases the backends this library's streams pooled (not the product's)."""
        self.lib.exitless_release_backends()


@cache
def load() -> BenchLibrary:
    """The library, loaded once; a clear error naming the make target if it is missing."""
    path = library_path()
    if not path.is_file():
        how = "EXITLESS_BENCH_LIB names" if os.environ.get("EXITLESS_BENCH_LIB") else "looked for"
        raise FileNotFoundError(
            _errno.ENOENT,
            f"the benchmark library ({how} {path}) is missing: build it with `{MAKE_TARGET}` "
            "(cargo build --release -p exitless-bench), or set EXITLESS_BENCH_LIB to its path",
            str(path),
        )
    return BenchLibrary(path)
