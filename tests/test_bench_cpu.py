"""The bench's CPU split (exitless_tools.bench.cpu): thread classes by name, the
accounting of sampled per-thread CPU against the process clock, the modeled exit
charge. Fake data only, plus facts of a real measurement that do not depend on
time (which thread lands in which class). No time is asserted."""

from __future__ import annotations

import threading

import pytest

from exitless_tools.bench import cpu
from exitless_tools.bench.cpu import (
    ENCLAVE,
    HOST,
    IOWQ,
    SQPOLL,
    ThreadCpu,
    account,
    classify,
    modeled_exit_seconds,
)

MS = 1_000_000


@pytest.mark.parametrize(
    ("comm", "cls"),
    [
        ("iou-sqp-4242", SQPOLL),
        ("iou-sqp-1234567", SQPOLL),  # comm is cut at 15 characters
        ("iou-wrk-4243", IOWQ),
        ("iou-wrk-12345678", IOWQ),
        ("iou-anything", IOWQ),  # a kernel io_uring thread is never enclave-side
        ("exitless-switch", HOST),  # exitless-switchless-N as the kernel shows it
        ("python", ENCLAVE),
        ("python3.12", ENCLAVE),
        ("exitless-vcpu-0", ENCLAVE),
        ("bench-vcpu-1", ENCLAVE),
        ("iou", ENCLAVE),  # no "iou-" prefix
        ("io_uring-sq", ENCLAVE),
        ("", ENCLAVE),
    ],
)
def test_thread_names_are_classified(comm: str, cls: str) -> None:
    assert classify(comm) == cls


def test_account_splits_by_class_and_gives_the_remainder_to_io_wq() -> None:
    before = {
        1: ("python", 100 * MS),
        2: ("iou-sqp-1", 50 * MS),
        3: ("iou-wrk-2", 7 * MS),
        4: ("exitless-vcpu-0", 0),
    }
    seen = {
        1: ("python", 130 * MS),  # +30 enclave
        2: ("iou-sqp-1", 90 * MS),  # +40 SQ
        3: ("iou-wrk-2", 7 * MS),  # idle worker: seen, not active
        4: ("exitless-vcpu-0", 5 * MS),  # +5 enclave
        5: ("iou-wrk-2", 4 * MS),  # born during the point: +4 io-wq, active
        6: ("exitless-switch", 2 * MS),  # +2 host
        9: ("sampler", 3 * MS),  # the measurement itself
    }
    # The process clock also holds 6 ms of a worker that ended between two samples.
    process = (30 + 40 + 5 + 4 + 2 + 3 + 6) * MS
    u = account(before, seen, process, exclude=frozenset({9}))
    assert u.enclave_s == pytest.approx(0.035)
    assert u.sqpoll_s == pytest.approx(0.040)
    assert u.iowq_s == pytest.approx(0.010) and u.unaccounted_s == pytest.approx(0.006)
    assert u.host_s == pytest.approx(0.002)
    assert u.kernel_s == pytest.approx(0.050)
    assert u.process_s == pytest.approx(0.087), "the sampler's CPU is counted nowhere"
    assert (u.iou_wrk_seen, u.iou_wrk_active) == (2, 1)
    assert u.tids[ENCLAVE] == {1, 4} and u.tids[IOWQ] == {3, 5} and all(9 not in t for t in u.tids.values())


def test_account_never_invents_cpu_when_threads_outrun_the_clock() -> None:
    u = account({1: ("python", 0)}, {1: ("python", 10 * MS), 2: ("iou-sqp-1", 5 * MS)}, 14 * MS)
    assert u.unaccounted_s == 0 and u.iowq_s == 0
    assert u.enclave_s == pytest.approx(0.010) and u.sqpoll_s == pytest.approx(0.005)


def test_thread_cpu_combines_start_samples_and_end() -> None:
    """ThreadCpu with a scripted /proc and clock: the first read is the start, every
    later one the end state; the sampler thread itself is left out."""
    start = {1: ("python", 10 * MS), 2: ("iou-sqp-1", 0)}
    end = {1: ("python", 20 * MS), 2: ("iou-sqp-1", 30 * MS), 3: ("iou-wrk-2", 1 * MS)}
    reads = []

    def read() -> dict[int, tuple[str, int]]:
        reads.append(1)
        return dict(start if len(reads) == 1 else end)

    clock = iter([0, 41 * MS])
    with ThreadCpu(interval=0.001, read=read, clock=lambda: next(clock)) as m:
        threading.Event().wait(0.01)
    u = m.usage
    assert u.enclave_s == pytest.approx(0.010) and u.sqpoll_s == pytest.approx(0.030)
    assert u.iowq_s == pytest.approx(0.001) and u.unaccounted_s == 0
    assert (u.iou_wrk_seen, u.iou_wrk_active) == (1, 1)


def test_a_real_measurement_puts_the_caller_on_the_enclave_side() -> None:
    with ThreadCpu() as m:
        sum(range(100_000))
    assert threading.get_native_id() in m.usage.tids[ENCLAVE]
    snapshot = cpu.read_threads()
    assert threading.get_native_id() in snapshot and snapshot[threading.get_native_id()][1] > 0


def test_modeled_exits_are_charged_only_where_no_thread_spun_for_them() -> None:
    ticks_per_ns, cycles = 2.0, 8000  # 4 µs per exit
    stats = {"exits": 10, "stream_syscalls": 3, "total_exits": 13}
    # uring: its enters spin the model's cost like the OCALL path's exits; the stream's own syscalls did not.
    assert modeled_exit_seconds(stats, "uring", cycles, ticks_per_ns) == pytest.approx(3 * 4e-6)
    # ocall / switchless: the backend's exits already spun on the caller; the stream's own syscalls did not.
    assert modeled_exit_seconds(stats, "ocall", cycles, ticks_per_ns) == pytest.approx(3 * 4e-6)
    assert modeled_exit_seconds(stats, "switchless", cycles, ticks_per_ns) == pytest.approx(3 * 4e-6)
    assert modeled_exit_seconds(stats, "ocall", cycles, ticks_per_ns, extra_exits=1) == pytest.approx(
        4 * 4e-6
    )
    # sync and plaintext: no exit model (the stream outside an enclave).
    assert modeled_exit_seconds(stats, "sync", cycles, ticks_per_ns, extra_exits=1) == 0
    assert modeled_exit_seconds(stats, "plaintext", cycles, ticks_per_ns) == 0
    assert modeled_exit_seconds(stats, "uring", 0, ticks_per_ns) == 0, (
        "cycles 0: a real enclave, nothing modeled"
    )
