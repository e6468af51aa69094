"""What ``open`` means inside ``pyspark.shuffle`` once the hook is installed:
:func:`sealing_open`, and the sealed, buffered file objects it returns for ``"wb"``,
``"rb"`` and ``"w+b"`` (each bound to its path and the write that made it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, cast

from ..._closing import AbortOnError
from ...streams import SealedReader, SealedSpillFile, SealedWriter
from . import state as hook_state
from .counters import _record_read, _record_written
from .state import (
    _LOG_PREFIX,
    BUFFER_SIZE,
    QUEUE_DEPTH,
    HookError,
    _builtin_open,
    _current,
    _generation,
    _new_generation,
    spill_context,
)


def _io_options() -> dict[str, Any]:
    config = hook_state._config
    assert config is not None
    return {"backend": config.backend, "queue_depth": QUEUE_DEPTH}


def _writer_options() -> dict[str, Any]:
    # parallel=False: an executor already runs one Python worker per core, each busy
    # with its task; vCPU threads per worker would only oversubscribe the cores (and
    # most spill files are a single segment, which is never sealed in parallel).
    return {**_io_options(), "parallel": False}


class _SealedBufferedWriter(AbortOnError, io.BufferedWriter):
    """A buffered sealed writer. ``close()`` seals the final segment only if every
    buffered byte reached the stream; otherwise (and on an exception in a ``with``
    block, or garbage collection while open) the stream is aborted and can never
    read back as a complete stream."""

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        except BaseException:
            self.abort()
            raise
        super().close()
        _record_written(cast(SealedWriter, self.raw))

    def abort(self) -> None:
        """Closes without sealing the final segment (the file stays incomplete)."""
        raw = cast(SealedWriter, self.raw)
        if not raw.closed:
            raw.abort()

    def __del__(self) -> None:
        try:
            raw = self.raw
        except (AttributeError, ValueError):  # never initialized, or detached
            return
        if not raw.closed:
            self.abort()


class _SealedBufferedReader(io.BufferedReader):
    """A buffered sealed reader (each segment authenticated before use)."""


class _CountingSpillFile(SealedSpillFile):
    """``"w+b"``: a :class:`~exitless.SealedSpillFile` whose phases are counted."""

    def _to_reading(self) -> SealedReader:
        writer = self._writer
        reader = super()._to_reading()
        if writer is not None:
            _record_written(writer)
            _record_read(reader)
        return reader

    def close(self) -> None:
        writer = self._writer
        super().close()
        if writer is not None and getattr(writer, "final_stats", None) is not None:
            _record_written(writer)


class _SealedBufferedRandom(io.BufferedRandom):
    """``"w+b"``: write (several ``dump_stream`` calls), then ``seek`` and read back.
    The first seek or read seals the stream; from then on it is read-only."""

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        writer = cast(_CountingSpillFile, self.raw)._writer
        if exc_type is not None and writer is not None:
            writer.abort()
        self.close()

    def __del__(self) -> None:
        try:
            raw = cast(_CountingSpillFile, self.raw)
        except (AttributeError, ValueError):  # never initialized, or detached
            return
        if not raw.closed:
            if raw._writer is not None:
                raw._writer.abort()
            raw.close()


def _buffer_size(buffering: int) -> int:
    if not isinstance(buffering, int) or isinstance(buffering, bool):
        raise TypeError(f"buffering must be an int, not {type(buffering).__name__}")
    return BUFFER_SIZE if buffering in (-1, 1) else buffering


def _open_sealed(path: str, mode: str, buffering: int = -1, context_path: str | None = None) -> io.IOBase:
    """Open the sealed stream at ``path`` ("wb", "rb" or "w+b"); the context names
    ``context_path`` (default: ``path``)."""
    state = _current()
    name = os.path.abspath(path if context_path is None else context_path)
    generation = _generation(state, name) if mode == "rb" else _new_generation(state, name)
    context = spill_context(name, generation)
    size = _buffer_size(buffering)
    if mode == "wb":
        if size == 0:
            raise HookError(f"{_LOG_PREFIX}: unbuffered sealed writes are not supported ({path!r})")
        writer = SealedWriter(path, state.key, context, **_writer_options())
        return _SealedBufferedWriter(cast(Any, writer), size)
    if mode == "rb":
        reader = SealedReader(path, state.key, context, **_io_options())
        _record_read(reader)
        return reader if size == 0 else _SealedBufferedReader(cast(Any, reader), size)
    if mode == "w+b":
        spill = _CountingSpillFile(path, state.key, context, **_writer_options())
        return _SealedBufferedRandom(cast(Any, spill), size or BUFFER_SIZE)
    raise HookError(f"{_LOG_PREFIX}: no sealed mode {mode!r} for {path!r}")


_SEALED_MODES = {"bw": "wb", "br": "rb", "+bw": "w+b"}


def sealing_open(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[str, int], int] | None = None,
) -> Any:
    """What ``open`` means inside ``pyspark.shuffle`` once the hook is installed.

    Binary ``"wb"`` / ``"rb"`` / ``"w+b"`` opens of a path are sealed streams bound to
    that path (buffered, ``tell()``, appends by several ``dump_stream`` calls).
    Read-only text opens pass through to the built-in ``open`` (PySpark reads
    ``/proc/self/status`` to measure memory). Anything else raises
    :class:`HookError`: it would write something this hook does not seal.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    if "b" not in mode:
        if set(mode) <= {"r", "t"}:
            return _builtin_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
        raise HookError(
            f"{_LOG_PREFIX}: pyspark.shuffle opened {file!r} for writing in text mode {mode!r}; "
            "the hook seals binary spill files only and refuses to write plaintext"
        )
    sealed_mode = _SEALED_MODES.get("".join(sorted(mode)))
    if sealed_mode is None:
        raise HookError(
            f"{_LOG_PREFIX}: pyspark.shuffle opened {file!r} in mode {mode!r}; "
            "only 'wb', 'rb' and 'w+b' spill files can be sealed"
        )
    if isinstance(file, int) or not isinstance(file, (str, bytes, os.PathLike)):
        raise HookError(
            f"{_LOG_PREFIX}: cannot seal a spill opened by file descriptor or object ({file!r}); a sealed spill needs a path"
        )
    if encoding is not None or errors is not None or newline is not None:
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    if not closefd or opener is not None:
        raise HookError(f"{_LOG_PREFIX}: cannot seal {file!r} opened with closefd=False or a custom opener")
    return _open_sealed(os.fsdecode(file), sealed_mode, buffering)
