"""Stress: many concurrent sealed streams per backend, and one very long stream.

``python -m exitless_tools stress`` (``make stress``) runs, for each backend (uring,
ocall, switchless, sync), ``--streams`` concurrent streams (default 1,000) from
``--threads`` Python threads (default 16) for ``--seconds`` (default 60): each
stream writes a random-length slice of a random source, closes, reads it back and
checks its SHA-256, then starts over on a new file, all interleaved chunk by chunk
so every stream stays open at once. Then one ``--big-gib`` stream (default 16 GiB)
is written through ``--big-backend`` (a file on disk by default; ``null`` discards
it) and read back against a streaming hash, in constant memory.

Checked, per phase: every stream reads back exactly (no error, no mismatch);
progress never stalls for ``--stall`` seconds (a watchdog dumps every thread's
stack and fails the run: no deadlock); RSS stays under a bound computed from the
stream count and buffer sizes, and returns near its start; ``/proc/self/fd`` has
as many entries afterwards as before (no leaked descriptors); and the native
counters (:func:`exitless.resources`: handles, backends, untrusted buffers,
pooled trusted buffers) are back to zero after :func:`exitless.release_backends`.
The big stream's RSS must stay flat (its growth under ``--big-rss-mib``).

Results: ``bench-results/stress-<timestamp>.json``; the exit status is 0 only if
every check passed. ``--quick``: 5 s per backend, 100 streams, a 256 MiB big stream.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import hashlib
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exitless import open_spill, release_backends, resources
from exitless.keys import Key
from exitless.streams import BACKENDS, SealedReader, SealedWriter, WriterOptions, uring_unavailable_reason

if TYPE_CHECKING:
    from _hashlib import HASH

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20


def rss_bytes() -> int:
    """Resident set size of this process now (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def fd_count() -> int:
    """Open file descriptors of this process (entries of /proc/self/fd)."""
    return len(os.listdir("/proc/self/fd"))


def trim_heap() -> None:
    """Gives freed heap memory back to the OS (glibc's malloc_trim), so RSS after a
    phase shows what is still in use rather than what the allocator keeps cached."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class RssSampler:
    """Samples RSS every ``interval`` seconds on a thread; ``max`` is the peak seen."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.start = rss_bytes()
        self.max = self.start
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.max = max(self.max, rss_bytes())
            self.samples += 1

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        end = rss_bytes()
        self.max = max(self.max, end)
        return end


class Watchdog:
    """Fails the run if ``progress`` does not move for ``stall`` seconds: dumps every
    thread's stack to stderr and exits with status 3 (a deadlock or a hang)."""

    def __init__(self, stall: float, what: str) -> None:
        self.stall = stall
        self.what = what
        self.progress = 0
        self.max_stall = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last, since = self.progress, time.monotonic()
        while not self._stop.wait(0.5):
            now = time.monotonic()
            if self.progress != last:
                last, since = self.progress, now
                continue
            self.max_stall = max(self.max_stall, now - since)
            if now - since > self.stall:
                print(
                    f"stress: no progress in {self.what} for {self.stall:.0f} s: a deadlock? stacks:",
                    file=sys.stderr,
                    flush=True,
                )
                faulthandler.dump_traceback(all_threads=True)
                os._exit(3)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Stream:
    """One stream slot: writing a slice of the source, or reading it back."""

    path: str
    offset: int
    size: int
    digest: bytes
    writer: SealedWriter | None = None
    reader: SealedReader | None = None
    done: int = 0
    hasher: HASH | None = None


@dataclass
class PhaseTotals:
    streams_completed: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _worker(
    tid: int,
    slots: int,
    key: Key,
    source: memoryview,
    directory: str,
    deadline: float,
    options: WriterOptions,
    totals: PhaseTotals,
    dog: Watchdog,
    max_size: int,
    start_barrier: threading.Barrier,
) -> None:
    rng = random.Random(tid * 7919 + 1)
    buf = bytearray(64 << 10)
    counter = 0

    def fresh() -> Stream:
        nonlocal counter
        counter += 1
        size = rng.randint(1, max_size)
        offset = rng.randrange(0, len(source) - size)
        digest = hashlib.sha256(source[offset : offset + size]).digest()
        s = Stream(os.path.join(directory, f"t{tid}-{counter}"), offset, size, digest)
        s.writer = open_spill(s.path, "wb", key, s.path, **options)
        dog.progress += 1
        return s

    written = read = completed = 0
    streams: list[Stream] = []
    try:
        streams = [fresh() for _ in range(slots)]
        start_barrier.wait()  # every stream of every thread is open at once
        while time.monotonic() < deadline and not totals.errors:
            for i, s in enumerate(streams):
                n = rng.randint(1, 48 << 10)
                if s.writer is not None:
                    n = min(n, s.size - s.done)
                    s.writer.write(source[s.offset + s.done : s.offset + s.done + n])
                    s.done += n
                    written += n
                    if s.done == s.size:
                        s.writer.close()
                        s.writer = None
                        s.reader = open_spill(s.path, "rb", key, s.path, **_reading(options))
                        s.done, s.hasher = 0, hashlib.sha256()
                elif s.reader is not None and s.hasher is not None:
                    got = s.reader.readinto(memoryview(buf)[:n])
                    if got:
                        s.hasher.update(memoryview(buf)[:got])
                        s.done += got
                        read += got
                        continue
                    s.reader.close()
                    if s.done != s.size or s.hasher.digest() != s.digest:
                        raise AssertionError(
                            f"{s.path}: read back {s.done} of {s.size} bytes, or different bytes"
                        )
                    os.unlink(s.path)
                    completed += 1
                    streams[i] = fresh()
                dog.progress += 1
    except threading.BrokenBarrierError:
        pass
    except Exception as e:  # recorded and reported: the run fails
        with totals.lock:
            totals.errors.append(f"thread {tid}: {type(e).__name__}: {e}")
        start_barrier.abort()
    finally:
        for s in streams:
            for f in (s.writer, s.reader):
                if f is not None:
                    try:
                        f.close()
                    except Exception as e:
                        with totals.lock:
                            totals.errors.append(f"thread {tid}: closing {s.path}: {e}")
        with totals.lock:
            totals.streams_completed += completed
            totals.bytes_written += written
            totals.bytes_read += read


def _native_zero() -> dict[str, int]:
    gc.collect()
    release_backends()
    return resources()


def _reading(options: WriterOptions) -> WriterOptions:
    """What of a writer's ``options`` its reader takes (the header says the rest)."""
    reading: WriterOptions = {}
    if "backend" in options:
        reading["backend"] = options["backend"]
    if "queue_depth" in options:
        reading["queue_depth"] = options["queue_depth"]
    return reading


def run_phase(
    backend: str, args: argparse.Namespace, key: Key, source: memoryview, root: str
) -> dict[str, Any]:
    """``args.streams`` concurrent streams on ``backend`` for ``args.seconds``."""
    options: WriterOptions = {
        "backend": backend,
        "segment_size": args.segment_size,
        "queue_depth": args.queue_depth,
    }
    directory = tempfile.mkdtemp(prefix=f"stress-{backend}-", dir=root)
    # Warm-up: the process-wide pieces (the runtime's vCPUs, io_uring's SQPOLL anchor
    # ring) start on first use and stay: count descriptors after they exist.
    warm = os.path.join(directory, "warm")
    with open_spill(warm, "wb", key, **options) as f:
        f.write(source[:300_000])
    with open_spill(warm, "rb", key, backend=backend) as f:
        assert f.read() == source[:300_000]
    os.unlink(warm)
    native_before = _native_zero()
    gc.collect()
    trim_heap()
    fds_before = fd_count()
    sampler = RssSampler()
    dog = Watchdog(args.stall, f"the {backend} phase")
    totals = PhaseTotals()
    per_thread = [
        args.streams // args.threads + (1 if t < args.streams % args.threads else 0)
        for t in range(args.threads)
    ]
    barrier = threading.Barrier(args.threads)
    started = time.monotonic()
    deadline = started + args.seconds
    threads = [
        threading.Thread(
            target=_worker,
            name=f"stress-{t}",
            args=(
                t,
                per_thread[t],
                key,
                source,
                directory,
                deadline,
                options,
                totals,
                dog,
                args.max_stream_kib << 10,
                barrier,
            ),
        )
        for t in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    dog.stop()
    native_after = _native_zero()
    gc.collect()
    trim_heap()
    rss_end = sampler.stop()
    fds_after = fd_count()
    shutil.rmtree(directory, ignore_errors=True)
    per_stream = args.queue_depth * args.segment_size + 2 * args.segment_size + (64 << 10)
    rss_bound = args.streams * per_stream * 2 + args.rss_slack_mib * MiB
    checks = {
        "no_errors": not totals.errors,
        "streams_completed": totals.streams_completed > 0,
        "rss_max_bounded": sampler.max - sampler.start <= rss_bound,
        "rss_end_near_start": rss_end - sampler.start <= args.rss_slack_mib * MiB,
        "no_leaked_fds": fds_after == fds_before,
        "native_counters_zero": all(v == 0 for v in native_after.values()),
        "no_stall": dog.max_stall < args.stall,
    }
    return {
        "backend": backend,
        "seconds": round(elapsed, 2),
        "streams_concurrent": args.streams,
        "threads": args.threads,
        "streams_completed": totals.streams_completed,
        "bytes_written": totals.bytes_written,
        "bytes_read": totals.bytes_read,
        "write_mib_s": round(totals.bytes_written / elapsed / MiB, 1),
        "read_mib_s": round(totals.bytes_read / elapsed / MiB, 1),
        "rss_start_mib": round(sampler.start / MiB, 1),
        "rss_max_mib": round(sampler.max / MiB, 1),
        "rss_end_mib": round(rss_end / MiB, 1),
        "rss_bound_mib": round((sampler.start + rss_bound) / MiB, 1),
        "fds_before": fds_before,
        "fds_after": fds_after,
        "native_before": native_before,
        "native_after": native_after,
        "max_stall_s": round(dog.max_stall, 2),
        "errors": totals.errors[:10],
        "checks": checks,
        "ok": all(checks.values()),
    }


def run_big(args: argparse.Namespace, key: Key, root: str) -> dict[str, Any]:
    """One ``args.big_bytes`` stream, written and (unless discarded) read back
    against a streaming SHA-256, with RSS sampled throughout."""
    chunk = bytearray(os.urandom(4 * MiB))
    total = args.big_bytes
    backend = args.big_backend
    path = (
        os.devnull
        if backend == "null"
        else os.path.join(tempfile.mkdtemp(prefix="stress-big-", dir=root), "big")
    )
    gc.collect()
    trim_heap()
    sampler = RssSampler(interval=0.25)
    dog = Watchdog(args.stall, "the big stream")
    wrote = hashlib.sha256()
    started = time.monotonic()
    options: WriterOptions = {"backend": backend, "segment_size": 1 << 20}
    if backend != "null":
        options["queue_depth"] = 8
    with open_spill(path, "wb", key, b"big", **options) as f:
        done = 0
        while done < total:
            n = min(len(chunk), total - done)
            chunk[:8] = done.to_bytes(8, "little")  # every chunk differs
            view = memoryview(chunk)[:n]
            f.write(view)
            wrote.update(view)
            done += n
            dog.progress += 1
        stats = f.stats()
        closing = time.monotonic()
        f.close()  # the final segment, waiting for every write, trimming the reservation
        close_s = time.monotonic() - closing
    write_s = time.monotonic() - started
    rss_after_write = rss_bytes()
    read_s = open_s = None
    matches = None
    if backend != "null":
        started = time.monotonic()
        back = hashlib.sha256()
        buf = bytearray(4 * MiB)
        got_total = 0
        with open_spill(path, "rb", key, b"big", backend=backend) as f:
            open_s = time.monotonic() - started
            while True:
                got = f.readinto(buf)
                if not got:
                    break
                back.update(memoryview(buf)[:got])
                got_total += got
                dog.progress += 1
        read_s = time.monotonic() - started
        matches = got_total == total and back.digest() == wrote.digest()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    dog.stop()
    rss_end = sampler.stop()
    growth = sampler.max - sampler.start
    checks = {"rss_flat": growth <= args.big_rss_mib * MiB, "no_stall": dog.max_stall < args.stall}
    if matches is not None:
        checks["read_back_matches"] = matches
    return {
        "backend": backend,
        "bytes": total,
        "segment_size": options["segment_size"],
        "write_seconds": round(write_s, 2),
        "write_mib_s": round(total / write_s / MiB, 1),
        "close_seconds": round(close_s, 2),
        "open_seconds": None if open_s is None else round(open_s, 2),
        "read_seconds": None if read_s is None else round(read_s, 2),
        "read_mib_s": None if read_s is None else round(total / read_s / MiB, 1),
        "segments": stats["segments"],
        "direct": stats["direct"],
        "rss_start_mib": round(sampler.start / MiB, 1),
        "rss_max_mib": round(sampler.max / MiB, 1),
        "rss_after_write_mib": round(rss_after_write / MiB, 1),
        "rss_end_mib": round(rss_end / MiB, 1),
        "rss_growth_mib": round(growth / MiB, 1),
        "rss_samples": sampler.samples,
        "max_stall_s": round(dog.max_stall, 2),
        "checks": checks,
        "ok": all(checks.values()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m exitless_tools stress", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="per backend (default 60)")
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams per backend (default 1000)")
    p.add_argument("--threads", type=int, default=16, help="Python threads driving them (default 16)")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: %(default)s)")
    p.add_argument(
        "--segment-size", type=int, default=16384, help="of the concurrent streams (default 16384)"
    )
    p.add_argument("--queue-depth", type=int, default=4, help="of the concurrent streams (default 4)")
    p.add_argument(
        "--max-stream-kib", type=int, default=512, help="largest concurrent stream (default 512 KiB)"
    )
    p.add_argument(
        "--big-gib", type=float, default=16.0, help="the long stream's size in GiB; 0 skips it (default 16)"
    )
    p.add_argument(
        "--big-backend", default="uring", help="uring, sync, ... (a file on disk) or null (default uring)"
    )
    p.add_argument(
        "--big-rss-mib", type=int, default=128, help="allowed RSS growth during the long stream (default 128)"
    )
    p.add_argument(
        "--rss-slack-mib", type=int, default=96, help="allowed RSS growth after a phase (default 96)"
    )
    p.add_argument(
        "--stall", type=float, default=60.0, help="seconds without progress that count as a hang (default 60)"
    )
    p.add_argument(
        "--dir",
        default=None,
        help="where stream files go (default: a temporary directory under bench-results)",
    )
    p.add_argument("--out", default="bench-results", help="directory for stress-<timestamp>.json")
    p.add_argument("--quick", action="store_true", help="5 s per backend, 100 streams, a 256 MiB long stream")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.streams, args.big_gib = 5.0, 100, 0.25
        args.stall = min(args.stall, 30.0)
    args.big_bytes = int(args.big_gib * (1 << 30))
    args.threads = max(1, min(args.threads, args.streams))
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase; returns the results (also written as JSON)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.streams + 256))
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    root = args.dir or tempfile.mkdtemp(prefix="stress-", dir=args.out)
    own_root = args.dir is None
    key = Key(os.urandom(32))
    source = memoryview(os.urandom(args.max_stream_kib * 1024 * 4))
    backends = [b for b in args.backends.split(",") if b]
    if "uring" in backends and uring_unavailable_reason() is not None:
        backends.remove("uring")
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "config": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "cpus": os.cpu_count(),
        "phases": [],
        "big": None,
    }
    rss_process_start = rss_bytes()
    try:
        for backend in backends:
            print(
                f"stress: {backend}: {args.streams} streams from {args.threads} threads for {args.seconds:g} s ...",
                flush=True,
            )
            phase = run_phase(backend, args, key, source, root)
            results["phases"].append(phase)
            print(
                f"  {phase['streams_completed']} streams verified, {phase['write_mib_s']} MiB/s written, "
                f"RSS {phase['rss_start_mib']} -> max {phase['rss_max_mib']} -> {phase['rss_end_mib']} MiB, "
                f"fds {phase['fds_before']} -> {phase['fds_after']}, native after {phase['native_after']}, "
                f"{'ok' if phase['ok'] else 'FAILED ' + str({k: v for k, v in phase['checks'].items() if not v})}",
                flush=True,
            )
        if args.big_bytes:
            print(
                f"stress: one {args.big_bytes / (1 << 30):g} GiB stream through {args.big_backend} ...",
                flush=True,
            )
            big = run_big(args, key, root)
            results["big"] = big
            print(
                f"  write {big['write_mib_s']} MiB/s, read {big['read_mib_s']} MiB/s, RSS {big['rss_start_mib']} -> "
                f"max {big['rss_max_mib']} MiB (growth {big['rss_growth_mib']} MiB), "
                f"{'ok' if big['ok'] else 'FAILED ' + str(big['checks'])}",
                flush=True,
            )
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    results["rss_process_start_mib"] = round(rss_process_start / MiB, 1)
    results["rss_process_end_mib"] = round(rss_bytes() / MiB, 1)
    results["ok"] = all(p["ok"] for p in results["phases"]) and (
        results["big"] is None or results["big"]["ok"]
    )
    out = Path(args.out) / f"stress-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    results["path"] = str(out)
    print(f"stress: {'all checks passed' if results['ok'] else 'FAILED'}; results in {out}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse_args(argv))["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
