"""Seal every file PySpark's Python workers spill.

PySpark's Python workers spill to local disk in ``pyspark/shuffle.py``
(ExternalMerger, ExternalSorter, ExternalGroupBy, ExternalList and
ExternalListOfList), in plaintext whatever ``spark.io.encryption.enabled`` says.
:func:`install` changes that inside one worker process:

- ``pyspark.shuffle.open`` becomes :func:`sealing_open`. The spill code looks
  ``open`` up in the module's globals at call time, so every ``"wb"``, ``"rb"``
  and ``"w+b"`` spill file is an exitless sealed stream (buffered, with
  ``tell()``, and several ``dump_stream`` calls may append to one file).
  Read-only text opens (``get_used_memory`` reads ``/proc/self/status``) pass
  through; any other mode is refused.
- ``pyspark.shuffle.ExternalList`` / ``ExternalListOfList`` become
  :class:`SealedExternalList` / :class:`SealedExternalListOfList`. The stock
  classes reopen their (unlinked) spill file through ``os.fdopen(os.dup(fd))``
  and pickle its raw bytes; these keep it sealed and pickle the *plaintext*
  serializer stream, so a receiver (hooked or not) reads the same state as
  from a stock list.

The data key is ephemeral: one random key per worker process, made on the first
spill and made again whenever ``os.getpid()`` changes (``pyspark.daemon`` forks
its workers). It is never written anywhere: a spill file outlives neither its
task nor its process. Each stream's context binds it to its absolute path, so
spill files cannot be swapped for one another.

:func:`install` refuses loudly (:class:`HookError`) on a PySpark version it was
not verified against, or when the internals it patches look different. It never
lets a worker fall back to plaintext spills.

Counters (files and bytes sealed, files read) are kept per process; see
:func:`stats`. With ``$EXITLESS_SPARK_STATS_DIR`` set, each process (over)writes
``exitless-spark-<pid>.json`` there after every spill file it closes. That directory
must be a directory (not a symbolic link), owned by the worker's user or root and not
writable by everyone unless sticky; a symbolic link planted at a stats file's name is
replaced, never followed.
"""

from __future__ import annotations

import builtins
import dis
import io
import itertools
import json
import os
import stat
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from .. import backends as _exitless_backends
from .._errors import IntegrityError
from ..keys import Key
from ..streams import BACKENDS, SealedReader, SealedSpillFile, SealedWriter

__all__ = [
    "BACKEND_ENV",
    "DEFAULT_BACKEND",
    "MAX_GENERATIONS",
    "STATS_DIR_ENV",
    "SUPPORTED_PYSPARK",
    "HookError",
    "SealedExternalList",
    "SealedExternalListOfList",
    "SpillStats",
    "forget_generation",
    "install",
    "installed",
    "iter_stats_files",
    "publish_stats",
    "sealing_open",
    "spill_context",
    "stats",
    "uninstall",
    "wrap_worker_main",
]

#: PySpark releases whose ``pyspark/shuffle.py`` this hook was checked against
#: (major.minor; 3.5.6, 3.5.9 and 4.0.1, 4.0.5 read line by line).
SUPPORTED_PYSPARK = ("3.5", "4.0")
#: Environment variable naming the IO backend for spill files (see :data:`DEFAULT_BACKEND`).
BACKEND_ENV = "EXITLESS_SPARK_BACKEND"
#: Environment variable naming a directory for per-process JSON counters.
STATS_DIR_ENV = "EXITLESS_SPARK_STATS_DIR"
#: Environment variable: "0" drops the one-line-per-task counters from the executor log
#: (the process lines stay; the JSON counters of :data:`STATS_DIR_ENV` are unaffected).
TASK_LOG_ENV = "EXITLESS_SPARK_TASK_LOG"

# Spill files are many and small: a groupByKey of 2M pairs with 32 MiB of worker
# memory writes ~3,600 files of ~5 KB (shared/DESIGN.md, "Machine facts"), and
# ExternalMerger opens 59 of them at once. What matters is the cost per file, not
# streaming throughput. A spill file's whole life (open, write, close, open, read,
# close, unlink) goes through the io_uring ring too, and the `make run` Spark jobs
# (local[2], spark.python.worker.memory=8m, 2 vCPUs) cost the same with every spill
# file through io_uring as with "sync" (overhead -0.8% vs -1.7%; docs/BENCHMARKS.md),
# where "sync" in an enclave is an exit per call. So the default is "auto" (io_uring
# where it works, else "sync"); EXITLESS_SPARK_BACKEND=sync (or "ocall", to model
# enclave exits) overrides it.
DEFAULT_BACKEND = "auto"
# Segments in flight per stream: spill files are one or a few 64 KiB segments.
QUEUE_DEPTH = 2
# Buffer between pickle's many small writes and the native stream (one segment).
BUFFER_SIZE = 65536
# Stream context: a label, then the file's absolute path.
_CONTEXT_LABEL = b"exitless.spark.spill.v1\x00"
_LOG_PREFIX = "exitless.spark"


class HookError(RuntimeError):
    """The hook cannot seal PySpark's spill files here (unknown PySpark version,
    changed internals, bad configuration, or a file mode it does not seal). Raised
    at worker start rather than letting a worker spill plaintext."""


# ---------------------------------------------------------------------------
# per-process state: key, backend, counters


@dataclass
class SpillStats:
    """Per-process counters of sealed spill files (plaintext and on-disk bytes)."""

    pid: int
    backend: str
    files_written: int = 0
    bytes_written: int = 0
    sealed_bytes_written: int = 0
    files_read: int = 0
    bytes_read: int = 0
    #: Of those, the files written and read through io_uring (the stream's own counters say).
    files_written_uring: int = 0
    files_read_uring: int = 0
    started: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Config:
    backend: str
    stats_dir: str | None
    pyspark_version: str
    #: (st_dev, st_ino) of ``stats_dir`` once :func:`_check_stats_dir` accepted it.
    stats_dir_id: tuple[int, int] | None = None


class _ProcessState:
    """The key and counters of one process; replaced when ``os.getpid()`` changes."""

    __slots__ = ("generations", "key", "pid", "stats", "stats_fd")

    def __init__(self, backend: str) -> None:
        self.pid = os.getpid()
        self.key = Key.generate()
        self.stats = SpillStats(pid=self.pid, backend=backend)
        self.stats_fd: int | None = None
        # Absolute path -> random tag of the spill file this process last wrote there.
        # The tag enters the stream context, so an older file put back at a reused
        # path (ExternalMerger's directories are named after id(), which Python
        # reuses) no longer authenticates.
        self.generations: dict[str, bytes] = {}


_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
_state: _ProcessState | None = None
_config: _Config | None = None
_originals: dict[str, Any] = {}
_builtin_open = builtins.open


def _log(message: str) -> None:
    """One line on stderr (an executor's log); never raises."""
    try:
        sys.stderr.write(f"{_LOG_PREFIX}: {message}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must not fail a spill
        pass


def _current() -> _ProcessState:
    """This process's state: a fresh key (and zeroed counters) after a fork."""
    global _state
    state = _state
    pid = os.getpid()
    if state is not None and state.pid == pid:
        return state
    if _config is None:
        raise HookError(
            f"{_LOG_PREFIX}: the spill hook is not installed in process {pid}; call exitless.spark.hook.install() first"
        )
    with _lock:
        if _state is None or _state.pid != pid:
            old = _state
            _state = _ProcessState(_config.backend)
            if old is not None:
                old.key.wipe()  # the parent's key: this process has no business with it
                if old.stats_fd is not None:
                    try:
                        os.close(old.stats_fd)  # the parent's counters file, not ours
                    except OSError:
                        pass
            _log(
                f"pid {pid}: sealing PySpark spill files with a new ephemeral key (never stored), backend {_config.backend}"
            )
        return _state


def spill_context(path: str | os.PathLike[str], generation: bytes = b"") -> bytes:
    """The stream context of the spill file at ``path``: a label, its absolute path,
    and the random tag of the write that made it (see :data:`MAX_GENERATIONS`)."""
    return _CONTEXT_LABEL + os.fsencode(os.path.abspath(os.fsdecode(path))) + b"\x00" + generation


#: Spill paths whose latest write tag a process remembers; the oldest is forgotten
#: first (reading a forgotten file fails loudly). PySpark deletes a task's spill
#: files when the task ends, so only a process's recent writes are ever read.
MAX_GENERATIONS = 1 << 16


def _new_generation(state: _ProcessState, path: str) -> bytes:
    tag = os.urandom(16)
    gens = state.generations
    gens.pop(path, None)
    gens[path] = tag
    while len(gens) > MAX_GENERATIONS:
        del gens[next(iter(gens))]
    return tag


def _generation(state: _ProcessState, path: str) -> bytes:
    tag = state.generations.get(path)
    if tag is None:
        raise IntegrityError(
            f"{path}: this worker process wrote no spill file there that it still remembers "
            "(a file put back or planted by someone else, or an old one): refusing to read it"
        )
    return tag


def forget_generation(path: str | os.PathLike[str]) -> None:
    """Drops the write tag of a spill file that is gone for good."""
    state = _state
    if state is not None and state.pid == os.getpid():
        state.generations.pop(os.path.abspath(os.fsdecode(path)), None)


def stats() -> dict[str, object]:
    """This process's counters (zeros if it has not spilled since the last fork)."""
    state = _state
    if state is None or state.pid != os.getpid():
        backend = _config.backend if _config is not None else DEFAULT_BACKEND
        return SpillStats(pid=os.getpid(), backend=backend).as_dict()
    return state.stats.as_dict()


_STATS_RECORD = 1024  # bytes: one fixed-size JSON record, padded with spaces


def _check_stats_dir(path: str) -> tuple[int, int]:
    """Checks the stats directory (once per configuration) and returns its
    ``(st_dev, st_ino)``: a directory itself, not a symbolic link to one, owned by
    this user or root, and not writable by everyone unless sticky (as ``/tmp`` is),
    so that nobody else can swap the files in it. Raises :class:`HookError`."""
    where = f"{_LOG_PREFIX}: {STATS_DIR_ENV}={path!r}"
    try:
        st = os.lstat(path)
    except OSError as e:
        raise HookError(f"{where} cannot be used: {e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise HookError(f"{where} is a symbolic link; name the directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise HookError(f"{where} is not a directory")
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        raise HookError(f"{where} is owned by uid {st.st_uid}, not by this user (uid {euid}) or root")
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise HookError(
            f"{where} is writable by everyone without the sticky bit (mode {stat.S_IMODE(st.st_mode):o}); chmod o-w or +t it"
        )
    return st.st_dev, st.st_ino


def _create_stats_file(config: _Config, pid: int, record: bytes) -> int:
    """Creates ``exitless-spark-<pid>.json`` holding ``record`` and returns a descriptor
    open on it for later in-place updates.

    The file is made under a temporary name with ``O_CREAT | O_EXCL | O_NOFOLLOW``
    and renamed over the final name, both relative to a descriptor of the checked
    stats directory: whatever was planted at the final name (a symbolic link, another
    process's file) is replaced, never written through."""
    assert config.stats_dir is not None
    if config.stats_dir_id is None:
        config.stats_dir_id = _check_stats_dir(config.stats_dir)
    dir_fd = os.open(config.stats_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(dir_fd)
        if (st.st_dev, st.st_ino) != config.stats_dir_id:
            raise HookError(
                f"{STATS_DIR_ENV}={config.stats_dir!r} was replaced after it was checked; not writing there"
            )
        name = f"exitless-spark-{pid}.json"
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
        )
        try:
            os.pwrite(fd, record.ljust(_STATS_RECORD), 0)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        return fd
    finally:
        os.close(dir_fd)


def _publish(state: _ProcessState) -> None:
    """(Over)write ``exitless-spark-<pid>.json`` in the stats directory, if one is set.

    Workers forked by pyspark.daemon end with ``os._exit``, so this runs after every
    spill file written and at the end of every task rather than at exit. The first
    record of a process makes the file (:func:`_create_stats_file`: a temporary file
    renamed into place, so a planted symbolic link is never followed). Later ones
    rewrite it in place, one ``pwrite`` of a fixed size at offset 0, through the
    descriptor kept per process: a write-and-rename costs ~2 ms on ext4 here (it
    flushes the data on rename), as much as sealing the spill file itself.
    """
    if _config is None or not _config.stats_dir:
        return
    path = os.path.join(_config.stats_dir, f"exitless-spark-{state.pid}.json")
    record = json.dumps(
        {**state.stats.as_dict(), "pyspark": _config.pyspark_version, "updated": time.time()}
    ).encode()
    try:
        if state.stats_fd is None:
            state.stats_fd = _create_stats_file(_config, state.pid, record)
        else:
            os.pwrite(state.stats_fd, record.ljust(_STATS_RECORD), 0)
    except (OSError, HookError) as e:
        _log(f"pid {state.pid}: cannot write counters to {path}: {e}")


def publish_stats() -> None:
    """Write this process's counters to the stats directory now (if it spilled)."""
    state = _state
    if state is not None and state.pid == os.getpid():
        _publish(state)


def _record_written(writer: SealedWriter) -> None:
    final = getattr(writer, "final_stats", None)
    state = _current()
    state.stats.files_written += 1
    if final is not None:
        state.stats.bytes_written += int(final["plaintext_bytes"])
        state.stats.sealed_bytes_written += int(final["bytes"])
        state.stats.files_written_uring += final["backend"] == "uring"
    _publish(state)


def _record_read(reader: SealedReader) -> None:
    state = _current()
    state.stats.files_read += 1
    state.stats.bytes_read += reader.size
    state.stats.files_read_uring += reader.stats()["backend"] == "uring"


# ---------------------------------------------------------------------------
# sealed file objects


def _io_options() -> dict[str, Any]:
    assert _config is not None
    return {"backend": _config.backend, "queue_depth": QUEUE_DEPTH}


def _writer_options() -> dict[str, Any]:
    # parallel=False: an executor already runs one Python worker per core, each busy
    # with its task; vCPU threads per worker would only oversubscribe the cores (and
    # most spill files are a single segment, which is never sealed in parallel).
    return {**_io_options(), "parallel": False}


class _SealedBufferedWriter(io.BufferedWriter):
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

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

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


# ---------------------------------------------------------------------------
# ExternalList / ExternalListOfList

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
            try:
                os.close(fd)
            except OSError:
                pass
        else:
            try:
                os.unlink(self.path)
            except OSError:
                pass


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


# Set by install(); these names stay importable for tests and isinstance checks.
SealedExternalList: type | None = None
SealedExternalListOfList: type | None = None


# ---------------------------------------------------------------------------
# checks


# Functions that must still spill through the module-global ``open`` (and so
# through sealing_open). ``get_used_memory`` reads /proc/self/status as text when
# psutil is missing; it is allowed, not required.
_EXPECTED_OPEN_SITES = {
    "ExternalMerger._spill",
    "ExternalMerger._merged_items",
    "ExternalMerger._recursive_merged_items",
    "ExternalSorter.sorted",
    "ExternalList._open_file",
    "ExternalGroupBy._spill",
    "ExternalGroupBy._merged_items",
    "ExternalGroupBy._merge_sorted_items.load_partition",
}
_ALLOWED_OPEN_SITES = _EXPECTED_OPEN_SITES | {"get_used_memory"}
# Attribute names that open or copy files around ``open`` (os.open, io.open,
# os.fdopen, tempfile.*, shutil.copy*, Path.write_bytes, mmap...).
_RISKY_ATTRS = {
    "open",
    "fdopen",
    "dup",
    "dup2",
    "FileIO",
    "open_code",
    "mkstemp",
    "NamedTemporaryFile",
    "TemporaryFile",
    "SpooledTemporaryFile",
    "write_bytes",
    "write_text",
    "copyfile",
    "copyfileobj",
    "copy",
    "copy2",
    "copytree",
    "move",
    "mmap",
    "pwrite",
    "pwritev",
    "sendfile",
}
_RISKY_GLOBALS = {"io", "tempfile", "mmap", "pathlib", "Path", "gzip", "bz2", "lzma", "fdopen"}
# The stock methods that use them, all replaced by SealedExternalList.
_RISKY_ALLOWED = {"ExternalList.__getstate__", "ExternalList.__iter__"}
_LIST_METHODS = (
    "__init__",
    "__getstate__",
    "__setstate__",
    "__iter__",
    "__len__",
    "append",
    "_open_file",
    "__del__",
    "_spill",
)
_LIST_OF_LIST_METHODS = ("__init__", "append", "__iter__")
_CLASSES = (
    "ExternalMerger",
    "ExternalSorter",
    "ExternalGroupBy",
    "ExternalList",
    "ExternalListOfList",
    "GroupByKey",
)


def _functions(module: types.ModuleType) -> Iterator[tuple[str, types.CodeType]]:
    """(qualified name, code) of every function and method defined in ``module``,
    nested functions included."""

    def walk(name: str, code: types.CodeType) -> Iterator[tuple[str, types.CodeType]]:
        yield name, code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                # Comprehensions count as their function (Python 3.12 inlines them anyway).
                inner = name if const.co_name.startswith("<") else f"{name}.{const.co_name}"
                yield from walk(inner, const)

    for name, obj in vars(module).items():
        if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
            yield from walk(name, obj.__code__)
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            for attr, member in vars(obj).items():
                func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if isinstance(func, types.FunctionType):
                    yield from walk(f"{name}.{attr}", func.__code__)


def _names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """Names ``code`` loads as globals, and attribute names it loads."""
    globals_, attrs = set(), set()
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
            globals_.add(ins.argval)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR") and isinstance(ins.argval, str):
            attrs.add(ins.argval)
    return globals_, attrs


def check_pyspark(pyspark: types.ModuleType, shuffle: types.ModuleType) -> str:
    """Raises :class:`HookError` unless this PySpark is a verified version whose
    ``pyspark.shuffle`` looks as the hook expects; returns the version."""
    where = os.path.dirname(getattr(pyspark, "__file__", "") or "?")
    version = str(getattr(pyspark, "__version__", "unknown"))
    if ".".join(version.split(".")[:2]) not in SUPPORTED_PYSPARK:
        raise HookError(
            f"{_LOG_PREFIX}: refusing to start: pyspark {version} (at {where}) is not a version this hook was "
            f"verified against ({', '.join(v + '.x' for v in SUPPORTED_PYSPARK)}); its Python spill files would be "
            "written in plaintext. Use a supported pyspark or an exitless release that supports this one."
        )
    problems: list[str] = []
    for name in _CLASSES:
        if not isinstance(getattr(shuffle, name, None), type):
            problems.append(f"class {name} is missing")
    for name in ("_get_local_dirs", "get_used_memory"):
        if not callable(getattr(shuffle, name, None)):
            problems.append(f"function {name} is missing")
    if "open" in vars(shuffle) and vars(shuffle)["open"] is not sealing_open:
        problems.append("the module defines its own 'open'")
    if not problems:
        stock_list, stock_lol = shuffle.ExternalList, shuffle.ExternalListOfList
        for m in _LIST_METHODS:
            if not isinstance(vars(stock_list).get(m), types.FunctionType):
                problems.append(f"ExternalList.{m} is missing")
        if not isinstance(getattr(stock_list, "LIMIT", None), int):
            problems.append("ExternalList.LIMIT is missing")
        if not issubclass(stock_lol, stock_list):
            problems.append("ExternalListOfList is no longer an ExternalList")
        extra = {k for k, v in vars(stock_lol).items() if isinstance(v, types.FunctionType)} - set(
            _LIST_OF_LIST_METHODS
        )
        if extra:
            problems.append(f"ExternalListOfList has methods the hook does not know: {sorted(extra)}")
        if "_spill" in vars(stock_list):
            _, attrs = _names(stock_list._spill.__code__)
            if not {"_open_file", "dump_stream", "_file", "tell"} <= attrs:
                problems.append("ExternalList._spill no longer writes through _open_file/_file")
        if "__iter__" in vars(shuffle.GroupByKey):
            globals_, _ = _names(shuffle.GroupByKey.__iter__.__code__)
            if "ExternalListOfList" not in globals_:
                problems.append("GroupByKey no longer builds ExternalListOfList")
        open_sites = set()
        for name, code in _functions(shuffle):
            globals_, attrs = _names(code)
            if "open" in globals_:
                open_sites.add(name)
            risky = (attrs & _RISKY_ATTRS) | (globals_ & _RISKY_GLOBALS)
            if risky and name not in _RISKY_ALLOWED:
                problems.append(f"{name} uses {sorted(risky)}, which would bypass the sealing open")
        for name in sorted(_EXPECTED_OPEN_SITES - open_sites):
            problems.append(f"{name} no longer spills through open()")
        for name in sorted(open_sites - _ALLOWED_OPEN_SITES):
            problems.append(f"{name} opens files the hook was not checked against")
        for modname, mod in list(sys.modules.items()):
            if modname.startswith("pyspark") and mod is not shuffle and mod is not None:
                for attr in ("ExternalList", "ExternalListOfList"):
                    if vars(mod).get(attr) in (stock_list, stock_lol):
                        problems.append(f"{modname}.{attr} holds its own reference to the stock class")
    if problems:
        raise HookError(
            f"{_LOG_PREFIX}: refusing to start: pyspark {version} (at {where}) does not look as the hook expects, "
            "so its Python spill files might be written in plaintext: " + "; ".join(problems)
        )
    return version


def _resolve_backend() -> str:
    """The concrete backend spill files use: ``auto`` becomes ``uring`` where io_uring
    works, else ``sync`` (said once in the executor log)."""
    backend = os.environ.get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND
    allowed = ("auto", *BACKENDS)
    if backend not in allowed:
        raise HookError(
            f"{_LOG_PREFIX}: {BACKEND_ENV}={backend!r} is not an exitless backend; choose one of {', '.join(allowed)}"
        )
    if backend in ("uring", "auto"):  # only io_uring can be missing; probing it sets up a ring, so only then
        info = _exitless_backends()["uring"]
        if not info["available"]:
            if backend == "uring":
                raise HookError(f"{_LOG_PREFIX}: {BACKEND_ENV}='uring' does not work here: {info['reason']}")
            _log(f"io_uring does not work here ({info['reason']}); spill files use the sync backend")
            return "sync"
        return "uring"
    return backend


# ---------------------------------------------------------------------------
# install / uninstall


def installed() -> bool:
    """Whether the hook is installed in this interpreter."""
    return _config is not None


def install() -> None:
    """Seal PySpark's Python spill files in this process (and in processes it forks).

    Idempotent. Reads ``$EXITLESS_SPARK_BACKEND`` (default :data:`DEFAULT_BACKEND`)
    and ``$EXITLESS_SPARK_STATS_DIR``. Raises :class:`HookError` if the PySpark
    version or its internals are not what the hook was verified against, or the
    configuration is invalid; nothing is patched then.
    """
    global _config, SealedExternalList, SealedExternalListOfList
    with _lock:
        if _config is not None:
            return
        try:
            import pyspark
            import pyspark.serializers
            import pyspark.shuffle as shuffle
        except ImportError as e:
            raise HookError(
                f"{_LOG_PREFIX}: cannot import pyspark ({e}); the spill hook needs pyspark {' or '.join(SUPPORTED_PYSPARK)}"
            ) from e
        version = check_pyspark(pyspark, shuffle)
        backend = _resolve_backend()
        stats_dir = os.environ.get(STATS_DIR_ENV, "").strip() or None
        stats_dir_id = None
        if stats_dir is not None:
            stats_dir = os.path.abspath(stats_dir)
            try:
                os.makedirs(stats_dir, exist_ok=True)
            except OSError as e:
                raise HookError(f"{_LOG_PREFIX}: {STATS_DIR_ENV}={stats_dir!r} cannot be created: {e}") from e
            stats_dir_id = _check_stats_dir(stats_dir)
        sealed_list, sealed_lol = _make_list_classes(
            shuffle.ExternalList, shuffle.ExternalListOfList, shuffle
        )
        _originals.update(
            module=shuffle,
            ExternalList=shuffle.ExternalList,
            ExternalListOfList=shuffle.ExternalListOfList,
            had_open="open" in vars(shuffle),
        )
        setattr(shuffle, "open", sealing_open)  # noqa: B010  (looked up at call time by the spill code)
        setattr(shuffle, "ExternalList", sealed_list)  # noqa: B010
        setattr(shuffle, "ExternalListOfList", sealed_lol)  # noqa: B010
        SealedExternalList, SealedExternalListOfList = sealed_list, sealed_lol
        _config = _Config(
            backend=backend, stats_dir=stats_dir, pyspark_version=version, stats_dir_id=stats_dir_id
        )
    _log(
        f"pid {os.getpid()}: PySpark {version} spill files are sealed (backend {backend}{', counters in ' + stats_dir if stats_dir else ''})"
    )


def uninstall() -> None:
    """Undo :func:`install` in this process (for tests): stock ``open`` and list classes."""
    global _config, _state, SealedExternalList, SealedExternalListOfList
    with _lock:
        if _config is None:
            return
        shuffle = _originals["module"]
        if not _originals["had_open"]:
            vars(shuffle).pop("open", None)
        setattr(shuffle, "ExternalList", _originals["ExternalList"])  # noqa: B010
        setattr(shuffle, "ExternalListOfList", _originals["ExternalListOfList"])  # noqa: B010
        if _state is not None:
            _state.key.wipe()
        _config, _state = None, None
        SealedExternalList = SealedExternalListOfList = None
        _originals.clear()


def wrap_worker_main(worker_module: types.ModuleType) -> None:
    """Wrap ``worker_module.main`` (``pyspark.worker.main``) so that each task that
    sealed spill files logs one line of counters to stderr (the executor log)."""
    main = worker_module.main
    if getattr(main, "_exitless_wrapped", False):
        return

    def exitless_worker_main(infile: Any, outfile: Any) -> Any:
        before = stats()
        try:
            return main(infile, outfile)
        finally:
            _report_task(before)

    exitless_worker_main._exitless_wrapped = True  # type: ignore[attr-defined]
    exitless_worker_main.__wrapped__ = main  # type: ignore[attr-defined]
    setattr(worker_module, "main", exitless_worker_main)  # noqa: B010


def _report_task(before: dict[str, object]) -> None:
    publish_stats()  # reads since the last spill file written, too
    now = stats()
    if now["pid"] != before["pid"]:
        before = {k: 0 for k in now}
    written = int(now["files_written"]) - int(before["files_written"])  # type: ignore[call-overload]
    read = int(now["files_read"]) - int(before["files_read"])  # type: ignore[call-overload]
    if (written or read) and os.environ.get(TASK_LOG_ENV, "1").strip() != "0":
        _log(
            f"pid {now['pid']}: task sealed {written} spill files "
            f"({int(now['bytes_written']) - int(before['bytes_written'])} bytes), read {read}; "  # type: ignore[call-overload]
            f"process total {now['files_written']} files, {now['bytes_written']} bytes "
            f"({now['sealed_bytes_written']} on disk), {now['files_read']} read"
        )


def report_process() -> None:
    """Publish and log this process's totals (at exit of a non-daemon worker)."""
    publish_stats()
    now = stats()
    if now["files_written"] or now["files_read"]:
        _log(
            f"pid {now['pid']}: sealed {now['files_written']} spill files, {now['bytes_written']} bytes "
            f"({now['sealed_bytes_written']} on disk), read {now['files_read']}"
        )


def iter_stats_files(stats_dir: str | os.PathLike[str]) -> Iterable[dict[str, Any]]:
    """The JSON counters found in ``stats_dir`` (one per worker process). Symlinks
    and other non-regular entries are skipped, never followed."""
    for entry in sorted(os.scandir(stats_dir), key=lambda e: e.name):
        if (
            entry.name.startswith("exitless-spark-")
            and entry.name.endswith(".json")
            and entry.is_file(follow_symlinks=False)
        ):
            for attempt in range(50):  # a record being rewritten right now: read again
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with _builtin_open(fd, "rb") as f:
                    data = f.read(1 << 20)
                try:
                    record = json.loads(data)
                    break
                except ValueError:
                    if attempt == 49:
                        raise ValueError(
                            f"{entry.path}: not a counters record ({len(data)} bytes of other data)"
                        ) from None
                    time.sleep(0.01)
            yield record
