"""Counters of sealed spill files, kept per process: recorded as each file is written
or read, published as one JSON record per process into ``$EXITLESS_SPARK_STATS_DIR``,
logged per task (:func:`wrap_worker_main`) and per process, and read back
(:func:`iter_stats_files`).

The stats directory must be a directory (not a symbolic link), owned by the worker's
user or root and not writable by everyone unless sticky; a symbolic link planted at
a stats file's name is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import types
from collections.abc import Iterable
from typing import Any

from ...streams import SealedReader, SealedWriter
from . import state as hook_state
from .state import (
    _LOG_PREFIX,
    DEFAULT_BACKEND,
    STATS_DIR_ENV,
    TASK_LOG_ENV,
    HookError,
    SpillStats,
    _builtin_open,
    _Config,
    _current,
    _log,
    _ProcessState,
)


def stats() -> dict[str, object]:
    """This process's counters (zeros if it has not spilled since the last fork)."""
    state = hook_state._state
    if state is None or state.pid != os.getpid():
        config = hook_state._config
        backend = config.backend if config is not None else DEFAULT_BACKEND
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
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
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
    config = hook_state._config
    if config is None or not config.stats_dir:
        return
    path = os.path.join(config.stats_dir, f"exitless-spark-{state.pid}.json")
    record = json.dumps(
        {**state.stats.as_dict(), "pyspark": config.pyspark_version, "updated": time.time()}
    ).encode()
    try:
        if state.stats_fd is None:
            state.stats_fd = _create_stats_file(config, state.pid, record)
        else:
            os.pwrite(state.stats_fd, record.ljust(_STATS_RECORD), 0)
    except (OSError, HookError) as e:
        _log(f"pid {state.pid}: cannot write counters to {path}: {e}")


def publish_stats() -> None:
    """Write this process's counters to the stats directory now (if it spilled)."""
    state = hook_state._state
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
            yield _read_record(entry.path)


def _read_record(path: str) -> Any:
    """One counters record; a record being rewritten right now is read again."""
    for _attempt in range(49):
        data = _read_small(path)
        try:
            return json.loads(data)
        except ValueError:
            time.sleep(0.01)
    data = _read_small(path)
    try:
        return json.loads(data)
    except ValueError:
        raise ValueError(f"{path}: not a counters record ({len(data)} bytes of other data)") from None


def _read_small(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with _builtin_open(fd, "rb") as f:
        return f.read(1 << 20)
