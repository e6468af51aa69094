"""The small-file row: a spill file's whole life, many times over. Each of N files of
5,000 bytes (the size PySpark's Python workers spill, DESIGN.md) is written in one
call through the exitless writer, read back whole, compared and unlinked, for the
``uring``, ``ocall`` and ``sync`` backends and for ``plaintext`` (plain Python
``open``/``write``/``read``/``os.unlink``). The backends take turns in one process,
a round running every backend's batch once; the median round is reported. Per file:
wall time, enclave exits (the writer's and reader's counters, the streams' own
syscalls and close included, plus the unlink), and enclave-side CPU (:mod:`.cpu`)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any, TypedDict

import exitless
from exitless import generate_key, open_spill
from exitless.keys import Key
from exitless.streams import uring_unavailable_reason

from .cpu import ThreadCpu, modeled_exit_seconds, settle_sqpoll
from .matrix import ExitModel
from .units import as_int

#: The backends of the row, in report order (``plaintext``: plain Python files).
BACKENDS = ("uring", "uring-sqpoll", "uring-nosqpoll", "ocall", "sync", "plaintext")
FILE_SIZE = 5000
#: Files per backend written, unreported, before the rounds.
WARMUP_FILES = 20
CONTEXT = b"exitless-bench/small-files"
#: Counters summed over a batch (``stats()`` field names, :data:`exitless.streams._STAT_FIELDS`).
_SUMMED = ("exits", "stream_syscalls", "total_exits", "syscalls", "uring_enters")


class Variant(TypedDict, total=False):
    """A row's stream options: what both :func:`exitless.open_spill` and
    :func:`exitless.unlink` take."""

    backend: str
    uring_sqpoll: bool | None


#: How each row opens its streams: the backend and its options.
VARIANTS: dict[str, Variant] = {
    "uring": {"backend": "uring"},
    "uring-sqpoll": {"backend": "uring", "uring_sqpoll": True},
    "uring-nosqpoll": {"backend": "uring", "uring_sqpoll": False},
    "ocall": {"backend": "ocall"},
    "sync": {"backend": "sync"},
}


def _unlink(path: str, backend: str) -> dict[str, int]:
    """Removes ``path`` the way the row's ``backend`` would; returns its counters
    (``total_exits``, ``exits``, ``syscalls``). ``plaintext`` is plain Python
    (``os.unlink``, nothing counted); the others go through :func:`exitless.unlink`,
    on the ring for io_uring."""
    if backend == "plaintext":
        os.unlink(path)
        return {"total_exits": 0, "exits": 0, "syscalls": 0}
    st = exitless.unlink(path, **VARIANTS[backend])
    return {name: as_int(st, name) for name in ("total_exits", "exits", "syscalls")}


def _plain_file(path: str, data: bytes) -> bytes:
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        return f.read()


def _sealed_file(path: str, data: bytes, key: Key, backend: str, counts: dict[str, int]) -> bytes:
    """Writes ``data`` to ``path`` in one call through a sealed writer, reads it back
    whole; adds both streams' counters (after close: the close included) to ``counts``."""
    with open_spill(path, "wb", key, CONTEXT, parallel=False, **VARIANTS[backend]) as w:
        w.write(data)
    with open_spill(path, "rb", key, CONTEXT, **VARIANTS[backend]) as r:
        back = r.read()
    for side, st in (("write", w.stats()), ("read", r.stats())):
        for name in _SUMMED:
            counts[name] += as_int(st, name)
        counts[f"{side}_exits"] += as_int(st, "total_exits")
    return back


def run_batch(
    directory: str, payloads: list[bytes], backend: str, key: Key, model: ExitModel
) -> dict[str, Any]:
    """One batch: every payload through its own file on ``backend``; the counts, the
    wall time and the CPU by thread class."""
    counts = dict.fromkeys((*_SUMMED, "write_exits", "read_exits", "unlink_exits"), 0)
    written = read = verified = 0
    paths = [os.path.join(directory, f"{backend}-{i}") for i in range(len(payloads))]
    with ThreadCpu() as cpu:
        t0 = time.perf_counter()
        for path, data in zip(paths, payloads, strict=True):
            if backend == "plaintext":
                back = _plain_file(path, data)
            else:
                back = _sealed_file(path, data, key, backend, counts)
            written += 1
            read += 1
            verified += back == data
            gone = _unlink(path, backend)
            counts["total_exits"] += gone["total_exits"]
            counts["exits"] += gone["exits"]
            counts["unlink_exits"] += gone["total_exits"]
            counts["syscalls"] += gone["syscalls"]
        wall = time.perf_counter() - t0
    u = cpu.usage
    exits_all = counts["total_exits"]
    # What no thread spun for: on the OCALL path the backend's own exits (the unlink's
    # too, through exitless.unlink) spun on the caller; see modeled_exit_seconds.
    kind = VARIANTS[backend]["backend"] if backend in VARIANTS else backend
    modeled = modeled_exit_seconds(counts, kind, model.cycles_per_exit, model.tsc_ticks_per_ns)
    return {
        "seconds": wall,
        "files_written": written,
        "files_read": read,
        "files_verified": verified,
        "files_left": sum(os.path.exists(p) for p in paths),
        "exits": None if backend == "plaintext" else exits_all,
        "counts": counts,
        "cpu_s": u.process_s,
        "enclave_thread_cpu_s": u.enclave_s,
        "modeled_exit_cpu_s": modeled,
        "sqpoll_cpu_s": u.sqpoll_s,
        "iowq_cpu_s": u.iowq_s,
        "iou_wrk_threads": u.iou_wrk_seen,
        "iou_wrk_active": u.iou_wrk_active,
    }


def _row(backend: str, files: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    mid = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    per = 1e6 / files
    c = mid["counts"]
    sealed = backend != "plaintext"
    return {
        "backend": backend,
        "files": files,
        "file_size": FILE_SIZE,
        "us_per_file": round(mid["seconds"] * per, 1),
        "reps_us_per_file": [round(r["seconds"] * per, 1) for r in runs],
        "exits_per_file": round(mid["exits"] / files, 2) if sealed else None,
        # System calls on the exitless path (io_uring: enters only): in an enclave,
        # sync's would each be an exit too (it has no exit model of its own).
        "syscalls_per_file": round(c["syscalls"] / files, 2) if sealed else None,
        "write_exits_per_file": round(c["write_exits"] / files, 2) if sealed else None,
        "read_exits_per_file": round(c["read_exits"] / files, 2) if sealed else None,
        "unlink_exits_per_file": round(c["unlink_exits"] / files, 2) if sealed else None,
        "enclave_cpu_us_per_file": round((mid["enclave_thread_cpu_s"] + mid["modeled_exit_cpu_s"]) * per, 1),
        "modeled_exit_cpu_us_per_file": round(mid["modeled_exit_cpu_s"] * per, 1),
        "kernel_cpu_us_per_file": round((mid["sqpoll_cpu_s"] + mid["iowq_cpu_s"]) * per, 1),
        "sqpoll_cpu_us_per_file": round(mid["sqpoll_cpu_s"] * per, 1),
        "iowq_cpu_us_per_file": round(mid["iowq_cpu_s"] * per, 1),
        "iou_wrk_threads": mid["iou_wrk_threads"],
        "iou_wrk_active": mid["iou_wrk_active"],
        "cpu_us_per_file": round(mid["cpu_s"] * per, 1),
        # Every round, not only the median: each file came back equal and was removed.
        "files_written": sum(r["files_written"] for r in runs),
        "files_read": sum(r["files_read"] for r in runs),
        "files_verified": sum(r["files_verified"] for r in runs),
        "files_left": sum(r["files_left"] for r in runs),
        "rounds": len(runs),
    }


def run_small_files(
    directory: str,
    files: int = 1000,
    reps: int = 3,
    backends: Iterable[str] = BACKENDS,
    step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The small-file row: ``files`` files per backend and round, ``reps`` rounds;
    ``{"files", "file_size", "reps", "unlink", "rows": [...], "skipped": {...}}``."""
    wanted = list(backends)
    skipped: dict[str, str] = {}
    reason = uring_unavailable_reason()
    if "uring" in wanted and reason is not None:
        wanted.remove("uring")
        skipped["uring"] = reason
    key, model = generate_key(), ExitModel.current()
    payloads = [os.urandom(FILE_SIZE) for _ in range(files)]
    runs: dict[str, list[dict[str, Any]]] = {b: [] for b in wanted}
    settle_sqpoll()
    with tempfile.TemporaryDirectory(prefix="exitless-small-", dir=directory) as tmp:
        for b in wanted:  # warm-up, not reported: first opens, first touch of buffers
            run_batch(tmp, payloads[:WARMUP_FILES], b, key, model)
        exitless.release_backends()
        settle_sqpoll()
        for _ in range(reps):
            for b in wanted:
                runs[b].append(run_batch(tmp, payloads, b, key, model))
                exitless.release_backends()
                if b.startswith("uring"):
                    settle_sqpoll()  # the SQPOLL thread's idle second, off the next batch
                if step:
                    step(b)
        leftovers = os.listdir(tmp)
    return {
        "files": files,
        "file_size": FILE_SIZE,
        "reps": reps,
        "unlink": "exitless.unlink",
        "leftover_files": len(leftovers),
        "rows": [_row(b, files, runs[b]) for b in wanted],
        "skipped": skipped,
    }
