"""The ground floor of the hook: its configuration, its state in this process, and what
every other module of it uses (:class:`HookError`, the environment variables, the log
line, the stream context of a spill file).

``_config`` is set by :func:`~exitless.spark.hook.install`; ``_state`` (this process's
ephemeral key, counters and write tags) is made on the first spill and made again
whenever ``os.getpid()`` changes; ``_lock`` is made again in a forked child. Each
exists once, here: other modules read and set them as attributes of this module
(``hook_state._config``), never through a copy taken by ``from .state import _config``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from ..._errors import IntegrityError
from ...keys import Key

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
# The built-in open, taken before anything is patched (text reads pass through to it).
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
                    with contextlib.suppress(OSError):
                        os.close(old.stats_fd)  # the parent's counters file, not ours
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
