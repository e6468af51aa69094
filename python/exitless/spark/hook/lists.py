"""``ExternalList`` / ``ExternalListOfList`` whose spill stays sealed: subclasses of the
stock classes, made by :func:`_make_list_classes` when the hook is installed. Their
pickled state is the plaintext serializer stream, as the stock classes', so a
receiver reads it whether it is hooked or not.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

from .io import _open_sealed
from .state import BUFFER_SIZE, forget_generation

_PROC_FD = "/proc/self/fd"
_chunk_sequence = itertools.count()


class _Chunk:
    """One complete sealed stream holding part of a list's spill. Where /proc/self/fd
    exists the file is unlinked at once (like the stock ExternalList) and read again
    through a kept descriptor; elsewhere it is removed when the list goes away."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    def reader(self) -> io.IOBase:
        where = self.path if self.fd is None else f"{_PROC_FD}/{self.fd}"
        return _open_sealed(where, "rb", BUFFER_SIZE, context_path=self.path)

    def read_all(self) -> bytes:
        with self.reader() as f:
            return f.read()  # type: ignore[no-any-return]

    def release(self) -> None:
        forget_generation(self.path)
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _make_list_classes(
    stock_list: type, stock_list_of_list: type, shuffle: types.ModuleType
) -> tuple[type, type]:
    """Subclasses of the stock classes (so ``isinstance`` still holds), named like them
    so that pickles name ``pyspark.shuffle.ExternalList[OfList]``: a receiver
    resolves whatever that is in its process, sealed or stock."""

    serializers = sys.modules["pyspark.serializers"]

    class SealedExternalList(stock_list):  # type: ignore[misc]
        """ExternalList whose spill is a series of sealed streams ("chunks"): the
        current one is written by ``_spill`` (PySpark's own), and sealed and closed
        when the list is read or pickled; a later spill starts a new chunk.
        ``__getstate__`` yields the *plaintext* serializer stream, exactly what the
        stock class pickles, so a receiver reads it either way (and reseals it if it
        is hooked)."""

        _exitless_sealed = True
        _chunks: list[_Chunk]
        _file: Any
        _ser: Any

        def __init__(self, values: list[Any]) -> None:
            # Not super(): in SealedExternalListOfList that would be the stock
            # ExternalListOfList.__init__, which calls the (patched) global ExternalList.
            stock_list.__init__(self, values)  # type: ignore[misc]
            self._chunks = []

        def _chunk_list(self) -> list[_Chunk]:
            chunks = self.__dict__.get("_chunks")
            if chunks is None:
                chunks = self._chunks = []
            return chunks

        def _open_file(self) -> None:
            dirs = shuffle._get_local_dirs("objects")
            d = dirs[id(self) % len(dirs)]
            os.makedirs(d, exist_ok=True)
            chunks = self._chunk_list()
            # A process-wide sequence number, so no two chunks ever share a path (and
            # so a context): an old chunk cannot be replayed in place of a newer one.
            path = os.path.abspath(os.path.join(d, f"{id(self)}.{next(_chunk_sequence)}"))
            self._file = _open_sealed(path, "wb", BUFFER_SIZE)
            fd: int | None = None
            if os.path.isdir(_PROC_FD):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                os.unlink(path)
            chunks.append(_Chunk(path, fd))
            self._ser = serializers.BatchedSerializer(
                serializers.CompressedSerializer(serializers.CPickleSerializer()), 1024
            )

        def _finish_chunk(self) -> None:
            """Seal and close the chunk being written, if any."""
            if self._file is not None:
                f, self._file = self._file, None
                f.close()

        def __getstate__(self) -> tuple[list[Any], int, bytes]:
            self._finish_chunk()
            serialized = b"".join(chunk.read_all() for chunk in self._chunk_list())
            return self.values, self.count, serialized

        def __setstate__(self, item: tuple[list[Any], int, bytes]) -> None:
            self.values, self.count, serialized = item
            self._chunks = []
            self._file = None
            self._ser = None
            if serialized:
                self._open_file()
                self._file.write(serialized)

        def __iter__(self) -> Iterator[Any]:
            if self._file is not None or self._chunk_list():
                self._finish_chunk()
                for chunk in list(self._chunk_list()):
                    with chunk.reader() as f:
                        yield from self._ser.load_stream(f)
            yield from self.values

        def __del__(self) -> None:
            f = self.__dict__.get("_file")
            if f is not None:
                self._file = None
                f.abort()  # never read again: no final segment needed
            for chunk in self.__dict__.get("_chunks") or ():
                chunk.release()

    class SealedExternalListOfList(SealedExternalList, stock_list_of_list):  # type: ignore[misc]
        """ExternalListOfList over :class:`SealedExternalList`: ``len`` counts the inner items."""

        def __init__(self, values: list[Any]) -> None:
            SealedExternalList.__init__(self, values)
            self.count = sum(len(i) for i in values)

        def append(self, value: Any) -> None:
            SealedExternalList.append(self, value)
            # already counted 1 in ExternalList.append
            self.count += len(value) - 1

        def __iter__(self) -> Iterator[Any]:
            for values in SealedExternalList.__iter__(self):
                yield from values

    for cls, stock in ((SealedExternalList, stock_list), (SealedExternalListOfList, stock_list_of_list)):
        cls.__module__ = stock.__module__
        cls.__name__ = stock.__name__
        cls.__qualname__ = stock.__qualname__
    return SealedExternalList, SealedExternalListOfList
