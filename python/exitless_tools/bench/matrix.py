"""The IO matrix: one natively driven stream per point (backend × segment size),
interleaved repetitions, medians, with the stream's exact exit counts and the CPU
time it cost. Python is not in the write loop: the streams are written by
``libexitless_bench.so`` (:mod:`.benchlib`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from exitless._native import ffi
from exitless.streams import _stats_dict, make_options

from .benchlib import load
from .cpu import ThreadCpu, modeled_exit_seconds, settle_sqpoll
from .machine import ocall_model
from .units import as_float, as_int, as_record

GiB = 1 << 30


@dataclass(frozen=True)
class Point:
    """One column of the matrix: how the stream is set up."""

    label: str
    backend: str
    #: O_DIRECT: True, False, or None for the backend's default.
    direct: bool | None = None
    #: Modeled cycles per exit (ocall, switchless fallbacks); None: the default.
    ocall_cycles: int | None = None
    #: False: the same IO pattern without sealing (the plaintext baseline).
    sealed: bool = True
    #: Spin this long for completions before blocking (io_uring), None: the default.
    spin_us: int | None = None
    #: io_uring's SQPOLL thread: True, False, or None for the default (on).
    sqpoll: bool | None = None
    #: One line for reports.
    about: str = ""


#: The points ``bench`` knows, in report order; DEFAULT_POINTS are the default.
POINTS: dict[str, Point] = {
    p.label: p
    for p in (
        Point(
            "uring",
            "uring",
            about="io_uring SQPOLL, registered untrusted buffers, the stream defaults (what users get): page cache, "
            "1 MiB IOs past the first MiB",
        ),
        Point(
            "uring-direct",
            "uring",
            direct=True,
            about="io_uring with O_DIRECT from the first byte: the equal-terms twin of ocall-8200-direct",
        ),
        Point(
            "uring-sqpoll",
            "uring",
            sqpoll=True,
            about="io_uring with an SQPOLL thread (the default with 4 or more CPUs): submitting makes no exit",
        ),
        Point(
            "uring-nosqpoll",
            "uring",
            sqpoll=False,
            about="io_uring without an SQPOLL thread (the default below 4 CPUs): reads and writes batched into the "
            "enters that wait, each enter an exit (charged as the OCALL path's)",
        ),
        Point(
            "switchless", "switchless", ocall_cycles=8200, about="host worker thread, exit only on fallback"
        ),
        Point(
            "ocall-8200",
            "ocall",
            ocall_cycles=8200,
            about="one modeled OCALL per pwrite, 8,200 cycles (Occlum hostfs today)",
        ),
        Point("ocall-17000", "ocall", ocall_cycles=17000, about="the same at 17,000 cycles per exit"),
        Point("sync", "sync", about="plain pwrite, no exit model (the stream outside an enclave)"),
        Point("plaintext", "sync", sealed=False, about="the same writes without sealing (the floor)"),
        Point(
            "uring-spin",
            "uring",
            direct=True,
            spin_us=10_000,
            about="io_uring, O_DIRECT, 10 ms spin (strictly exit-less)",
        ),
        Point("uring-buffered", "uring", direct=False, about="io_uring through the page cache"),
        Point(
            "switchless-direct", "switchless", direct=True, ocall_cycles=8200, about="switchless, O_DIRECT"
        ),
        Point(
            "ocall-8200-direct",
            "ocall",
            direct=True,
            ocall_cycles=8200,
            about="modeled OCALLs at 8,200 cycles, O_DIRECT: the OCALL path on uring's terms (same disk path)",
        ),
        Point("sync-direct", "sync", direct=True, about="plain pwrite, O_DIRECT"),
        Point("uring-plaintext", "uring", sealed=False, about="io_uring writes without sealing"),
    )
}
DEFAULT_POINTS = (
    "uring",
    "uring-direct",
    "uring-sqpoll",
    "uring-nosqpoll",
    "switchless",
    "ocall-8200",
    "ocall-17000",
    "ocall-8200-direct",
    "sync",
    "plaintext",
)


@dataclass(frozen=True)
class ExitModel:
    """The OCALL model's price of one exit: the default cycles (``EXITLESS_OCALL_CYCLES``)
    and the measured TSC rate (``machine.ocall_model``)."""

    cycles_per_exit: int
    tsc_ticks_per_ns: float

    @classmethod
    def current(cls) -> ExitModel:
        m = ocall_model()
        return cls(as_int(m, "cycles_per_exit"), as_float(m, "tsc_ticks_per_ns"))

    def cycles_for(self, point_cycles: int | None) -> int:
        """A point's own cycles per exit where it sets them, else the model's."""
        return self.cycles_per_exit if point_cycles is None else point_cycles


def run_point(
    path: str,
    point: Point,
    segment_size: int,
    total: int,
    *,
    queue_depth: int = 8,
    write_size: int = 1 << 20,
    parallel: bool = False,
    model: ExitModel | None = None,
) -> dict[str, object]:
    """Writes one stream of ``total`` bytes and measures it (one repetition): wall
    time, the stream's counters, and CPU by thread class (:mod:`.cpu`)."""
    model = model or ExitModel.current()
    opts = make_options(
        segment_size,
        backend=point.backend,
        direct=point.direct,
        ocall_cycles=point.ocall_cycles,
        queue_depth=queue_depth,
        uring_spin_us=point.spin_us,
        uring_sqpoll=point.sqpoll,
        parallel=parallel,
    )
    raw = ffi.new("ExitlessStats *")
    bench = load()
    with ThreadCpu() as cpu:
        t0 = time.perf_counter()
        bench.write(path, opts, total, write_size, point.sealed, raw)
        wall = time.perf_counter() - t0
    st = _stats_dict(raw)
    u = cpu.usage
    modeled = modeled_exit_seconds(
        st, point.backend, model.cycles_for(point.ocall_cycles), model.tsc_ticks_per_ns
    )
    return {
        "seconds": wall,
        "cpu_s": u.process_s,
        "enclave_thread_cpu_s": u.enclave_s,
        "modeled_exit_cpu_s": modeled,
        "sqpoll_cpu_s": u.sqpoll_s,
        "iowq_cpu_s": u.iowq_s,
        "host_worker_cpu_s": u.host_s,
        "iou_wrk_threads": u.iou_wrk_seen,
        "iou_wrk_active": u.iou_wrk_active,
        "stats": st,
    }


def _median_row(
    point: Point, segment_size: int, total: int, runs: list[dict[str, object]]
) -> dict[str, object]:
    by_rate = sorted(runs, key=lambda r: as_float(r, "seconds"))
    mid = by_rate[len(by_rate) // 2]
    st = as_record(mid, "stats")
    wall, gib = as_float(mid, "seconds"), total / GiB
    exits = as_int(st, "total_exits")
    segments = as_int(st, "segments")

    def per_gib(key: str) -> float:
        return round(as_float(mid, key) / gib, 3)

    enclave = as_float(mid, "enclave_thread_cpu_s") + as_float(mid, "modeled_exit_cpu_s")
    kernel = as_float(mid, "sqpoll_cpu_s") + as_float(mid, "iowq_cpu_s")
    return {
        "point": point.label,
        "backend": point.backend,
        "sealed": point.sealed,
        "direct": bool(st["direct"]),
        "ocall_cycles": point.ocall_cycles if point.backend in ("ocall", "switchless") else None,
        "segment_size": segment_size,
        "bytes": total,
        "seconds": round(wall, 4),
        "wall_s_per_gib": round(wall / gib, 3),
        "gb_per_s": round(total / wall / 1e9, 4),
        "segments": segments,
        "segments_per_s": round(segments / wall, 1),
        "exits": exits,
        "exits_per_gib": round(exits / gib, 1),
        "cpu_s_per_gib": per_gib("cpu_s"),
        "enclave_cpu_s_per_gib": round(enclave / gib, 3),
        "enclave_thread_cpu_s_per_gib": per_gib("enclave_thread_cpu_s"),
        "modeled_exit_cpu_s_per_gib": per_gib("modeled_exit_cpu_s"),
        "kernel_cpu_s_per_gib": round(kernel / gib, 3),
        "sqpoll_cpu_s_per_gib": per_gib("sqpoll_cpu_s"),
        "iowq_cpu_s_per_gib": per_gib("iowq_cpu_s"),
        "host_worker_cpu_s_per_gib": per_gib("host_worker_cpu_s"),
        "iou_wrk_threads": as_int(mid, "iou_wrk_threads"),
        "iou_wrk_active": as_int(mid, "iou_wrk_active"),
        "sqpoll_tail_cpu_s": None
        if mid.get("sqpoll_tail_cpu_s") is None
        else round(as_float(mid, "sqpoll_tail_cpu_s"), 3),
        "reps_gb_per_s": [round(total / as_float(r, "seconds") / 1e9, 4) for r in runs],
        "stats": st,
    }


def run_matrix(
    directory: str,
    points: Iterable[Point],
    segment_sizes: Iterable[int],
    total: int,
    reps: int,
    *,
    queue_depth: int = 8,
    write_size: int = 1 << 20,
    parallel: bool = False,
    step: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """Every point at every segment size, ``reps`` rounds; a round runs every cell once
    (so drift on a shared machine hits all cells alike). One row per cell, the median
    repetition by time. ``step`` is called after each stream (progress)."""
    points, segment_sizes = list(points), list(segment_sizes)
    path = os.path.join(directory, f"exitless-bench-{os.getpid()}")
    runs: dict[tuple[int, str], list[dict[str, object]]] = {
        (s, p.label): [] for s in segment_sizes for p in points
    }
    cells = [(seg, p) for _ in range(reps) for seg in segment_sizes for p in points]
    model = ExitModel.current()
    settle_sqpoll()  # an earlier uring stream's SQPOLL thread may still spin
    try:
        for i, (seg, p) in enumerate(cells):
            run = run_point(
                path,
                p,
                seg,
                total,
                queue_depth=queue_depth,
                write_size=write_size,
                parallel=parallel,
                model=model,
            )
            runs[(seg, p.label)].append(run)
            os.unlink(path)
            # Pooled backends outlive a stream: switchless workers poll. Released
            # here (the bench library's pool: its streams' backends), so they never
            # take the CPU from the next cell (each stream sets up its own).
            load().release_backends()
            # The process-wide SQPOLL thread is never released: it spins for its idle
            # second after the last submission. Before a cell of another backend,
            # wait for it to sleep, and keep what that tail cost with the uring cell.
            nxt = cells[i + 1][1] if i + 1 < len(cells) else None
            if p.backend == "uring" and (nxt is None or nxt.backend != "uring"):
                run["sqpoll_tail_cpu_s"] = settle_sqpoll()
            if step:
                step(f"{p.label} {seg // 1024} KiB")
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return [_median_row(p, seg, total, runs[(seg, p.label)]) for seg in segment_sizes for p in points]
