"""Where a measurement's CPU goes: enclave-side threads (the caller, the runtime's
vCPUs, Python), the kernel's io_uring threads (the SQPOLL thread ``iou-sqp-*`` and
the io-wq workers ``iou-wrk-*``) and the switchless backend's host workers, read
per thread from ``/proc/self/task``; and the modeled cost of exits that no thread
spun for (:func:`modeled_exit_seconds`).

In an enclave, the kernel's io_uring threads and the switchless workers run on host
cores outside it: the enclave does not pay for them, the machine does. So they are
reported apart from the enclave side (DESIGN.md, "Machine facts").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .units import as_int

#: Thread classes, in report order.
ENCLAVE, SQPOLL, IOWQ, HOST = "enclave", "sqpoll", "iowq", "host"
CLASSES = (ENCLAVE, SQPOLL, IOWQ, HOST)

#: How often the sampler reads every thread while a measurement runs.
SAMPLE_SECONDS = 0.02

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def classify(comm: str) -> str:
    """The class of a thread by its name (``/proc/<pid>/task/<tid>/comm``, at most
    15 characters): ``sqpoll`` for an io_uring SQPOLL thread (``iou-sqp-<pid>``),
    ``iowq`` for an io-wq worker (``iou-wrk-<tid>``) and any other kernel io_uring
    thread (``iou-``: the kernel names only these two kinds today, and none of them
    runs enclave code), ``host`` for the switchless backend's host workers
    (``exitless-switchless-N``, shown as ``exitless-switch``: untrusted threads that
    make the syscalls, outside the enclave in SGX's switchless design), and
    ``enclave`` for every other thread (the caller, ``exitless-vcpu-N``, Python's)."""
    if comm.startswith("iou-sqp"):
        return SQPOLL
    if comm.startswith("iou-"):
        return IOWQ
    if comm.startswith("exitless-switch"):
        return HOST
    return ENCLAVE


def _thread_clock(tid: int) -> int:
    """The CPU-time clock id of thread ``tid`` of this process (the kernel's
    ``MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)``, what ``pthread_getcpuclockid``
    returns for a thread of ours)."""
    return (~tid << 3) | 2 | 4


def thread_cpu_ns(task: Path) -> int | None:
    """CPU time of one thread of this process in nanoseconds, or None if it has ended.

    The thread's CPU clock (``clock_gettime`` on the id :func:`_thread_clock` makes)
    is exact, the running slice included. ``schedstat``'s first field is the same
    ``sum_exec_runtime`` but as of the thread's last scheduler event (up to a tick
    behind for a running thread), and ``stat``'s utime + stime is that total in clock
    ticks (10 ms here), too coarse for a 50 ms stream: they are the fallbacks."""
    try:
        return time.clock_gettime_ns(_thread_clock(int(task.name)))
    except (OSError, ValueError, OverflowError):
        pass
    try:
        return int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * _TICK_NS
    except (OSError, ValueError, IndexError):
        return None


def read_threads(root: Path = Path("/proc/self/task")) -> dict[int, tuple[str, int]]:
    """``{tid: (comm, cpu_ns)}`` of every live thread under ``root``."""
    out: dict[int, tuple[str, int]] = {}
    try:
        entries = list(root.iterdir())
    except OSError:
        return out
    for task in entries:
        try:
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        cpu = thread_cpu_ns(task)
        if cpu is not None and task.name.isdigit():
            out[int(task.name)] = (comm, cpu)
    return out


def process_cpu_ns() -> int:
    """CPU time of the whole process in ns: every thread, live or ended (the kernel's
    io_uring threads belong to it)."""
    return time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)


@dataclass
class CpuUsage:
    """CPU seconds one measurement cost, by thread class."""

    process_s: float = 0.0
    enclave_s: float = 0.0
    sqpoll_s: float = 0.0
    iowq_s: float = 0.0
    host_s: float = 0.0
    #: Distinct io-wq worker threads alive at some sample, and of those, the ones
    #: that ran during the measurement.
    iou_wrk_seen: int = 0
    iou_wrk_active: int = 0
    #: Process CPU no live thread accounts for (threads that ended between two
    #: samples); included in ``iowq_s``.
    unaccounted_s: float = 0.0
    #: Thread ids by class (for tests and debugging; not reported).
    tids: dict[str, set[int]] = field(default_factory=dict)

    @property
    def kernel_s(self) -> float:
        return self.sqpoll_s + self.iowq_s


def account(
    before: Mapping[int, tuple[str, int]],
    seen: Mapping[int, tuple[str, int]],
    process_ns: int,
    exclude: frozenset[int] = frozenset(),
) -> CpuUsage:
    """Splits a measurement's CPU by thread class.

    ``before``: the threads at the start; ``seen``: every thread seen since then with
    its name and the most CPU seen for it (the last sample, the end included);
    ``process_ns``: the process CPU clock's advance over the measurement;
    ``exclude``: threads of the measurement itself (the sampler), counted nowhere.

    io-wq workers come and go while a point runs (the kernel starts them when it
    punts work and lets idle ones go), so a thread's CPU is its last sample minus its
    CPU at the start (0 for a thread born since), and the process clock, which keeps
    the CPU of ended threads, gives what the samples missed: the CPU of threads that
    ended after their last sample. In these measurements the only threads that
    start and end within one are io-wq workers, so that remainder is added to them.
    Sampling alone would lose the end of each worker's life; the process total
    alone cannot tell the classes apart; so both."""
    by_class = dict.fromkeys(CLASSES, 0)
    tids: dict[str, set[int]] = {c: set() for c in CLASSES}
    wrk_active = 0
    excluded_ns = 0
    for tid, (comm, cpu) in seen.items():
        start = before.get(tid, (comm, 0))[1]
        delta = max(cpu - start, 0)
        if tid in exclude:
            excluded_ns += delta
            continue
        cls = classify(comm)
        by_class[cls] += delta
        tids[cls].add(tid)
        if cls == IOWQ and comm.startswith("iou-wrk") and delta > 0:
            wrk_active += 1
    accounted = sum(by_class.values()) + excluded_ns
    rest = max(process_ns - accounted, 0)
    by_class[IOWQ] += rest
    s = 1e-9
    return CpuUsage(
        process_s=(process_ns - excluded_ns) * s,
        enclave_s=by_class[ENCLAVE] * s,
        sqpoll_s=by_class[SQPOLL] * s,
        iowq_s=by_class[IOWQ] * s,
        host_s=by_class[HOST] * s,
        iou_wrk_seen=sum(1 for tid in tids[IOWQ] if seen[tid][0].startswith("iou-wrk")),
        iou_wrk_active=wrk_active,
        unaccounted_s=rest * s,
        tids=tids,
    )


class ThreadCpu:
    """Measures the CPU of a block by thread class::

        with ThreadCpu() as cpu:
            ...                    # the measured work, on any threads
        cpu.usage.enclave_s, cpu.usage.iowq_s, cpu.usage.iou_wrk_seen

    A sampler thread reads every thread's CPU each :data:`SAMPLE_SECONDS` and keeps
    the most seen per thread (see :func:`account` for why). The sampler's own CPU is
    counted nowhere. It holds the GIL only while it reads /proc (tens of µs)."""

    def __init__(
        self,
        interval: float = SAMPLE_SECONDS,
        read: Callable[[], dict[int, tuple[str, int]]] = read_threads,
        clock: Callable[[], int] = process_cpu_ns,
    ) -> None:
        self.interval = interval
        self._read, self._clock = read, clock
        self._seen: dict[int, tuple[str, int]] = {}
        self._before: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler_tid: int | None = None
        self._p0 = 0
        self.usage = CpuUsage()

    def _merge(self, now: Mapping[int, tuple[str, int]]) -> None:
        for tid, (comm, cpu) in now.items():
            old = self._seen.get(tid)
            self._seen[tid] = (comm, max(cpu, old[1]) if old else cpu)

    def _sample(self) -> None:
        tid = self._sampler_tid = threading.get_native_id()
        while not self._stop.wait(self.interval):
            self._merge(self._read())
        # Its own CPU to the end (what it spends exiting is a few µs), so none of it
        # is left in the process clock for the io-wq remainder.
        self._seen[tid] = ("sampler", time.clock_gettime_ns(time.CLOCK_THREAD_CPUTIME_ID))

    def __enter__(self) -> ThreadCpu:
        # Threads first, then the process clock; at the end the clock first: any
        # skew makes the threads' sum exceed the clock (the remainder is then 0)
        # rather than invent io-wq CPU.
        self._before = self._read()
        self._p0 = self._clock()
        self._seen = dict(self._before)
        self._thread = threading.Thread(target=self._sample, name="exitless-bench-cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        process_ns = self._clock() - self._p0
        self._merge(self._read())
        exclude = frozenset({self._sampler_tid} if self._sampler_tid is not None else ())
        self.usage = account(self._before, self._seen, process_ns, exclude)


def modeled_exit_seconds(
    stats: Mapping[str, object], backend: str, cycles: int, ticks_per_ns: float, extra_exits: int = 0
) -> float:
    """CPU seconds of the modeled enclave exits no thread spun for.

    ``stats``: a stream's counters (``_stats_dict``); ``extra_exits``: exits counted
    outside them (an unlink). Each such exit costs ``cycles`` TSC ticks, the OCALL
    model's price (``EXITLESS_OCALL_CYCLES``, or the point's own), at the measured
    TSC rate.

    - ``ocall``, ``switchless`` and ``uring``: the backend's exits (``stats["exits"]``:
      modeled OCALLs, and every ``io_uring_enter``, to wake the SQPOLL thread, to
      submit or to block) already spun the model's cycles on the thread that made
      them, so they are inside the enclave-side CPU; only the stream's own syscalls
      (``stream_syscalls``: fcntl, lseek) and ``extra_exits`` are charged here.
    - ``sync`` (and ``plaintext``, which is ``sync`` unsealed): no exit model, the
      stream outside an enclave; nothing is charged (its syscalls are counted, not
      timed, as in the matrix).
    """
    if backend in ("sync", "null", "plaintext"):
        return 0.0
    exits = as_int(stats, "total_exits", 0) + extra_exits
    if backend in ("ocall", "switchless", "uring"):
        exits -= as_int(stats, "exits", 0)
    return max(exits, 0) * cycles / (ticks_per_ns * 1e9)


def _state(tid: int) -> str:
    """The scheduler state letter of thread ``tid`` of this process ("R" running or
    runnable, "S" sleeping, ...), or "" if it has ended."""
    try:
        return Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def settle_sqpoll(timeout: float = 3.0, quiet: float = 0.03) -> float:
    """Waits until every SQPOLL thread of this process sleeps, at most ``timeout``
    seconds; returns the CPU seconds they used meanwhile.

    Every io_uring backend attaches to one process-wide SQPOLL thread that is never
    closed, and that thread spins for a second (its idle time) after the last
    submission before it sleeps. Released backends do not stop it, so without this
    wait it takes a core from the cells that follow a uring cell and shows up as
    their SQ thread CPU. Asleep means not runnable (a spinning thread stays "R" even
    while another thread has its core) and no CPU used over ``quiet`` seconds."""

    def sq() -> dict[int, int]:
        return {tid: cpu for tid, (comm, cpu) in read_threads().items() if classify(comm) == SQPOLL}

    start = sq()
    if not start:
        return 0.0
    deadline = time.monotonic() + timeout
    prev = start
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sq()
        idle = all(now.get(t, 0) - prev.get(t, 0) < quiet * 1e9 / 10 for t in now)
        prev = now
        if idle and all(_state(t) != "R" for t in now):
            break
    return sum(max(prev.get(t, 0) - c, 0) for t, c in start.items()) / 1e9
