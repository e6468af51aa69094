"""Spilling PySpark jobs with and without sealed spills (not a test).

``python -m exitless_tools spark-bench`` runs the same jobs (groupByKey, reduceByKey,
sortByKey) on ``local[2]`` with a small ``spark.python.worker.memory`` so the
Python workers spill, alternately in a plain application and in one set up with
:func:`exitless.spark.configure`, for several repetitions, all in one run (one
JVM). Each application first runs a small warm-up job so Python daemons and
workers are started before timing. It reports wall time per job and mode, the
median, the overhead ratio (exitless ÷ plain − 1), and the sealed spill files
and bytes that the workers counted, as JSON in ``bench-results/spark-<timestamp>.json``.

The machine is shared and noisy: only the ratios of one run mean anything, and
the order alternates (plain first on even repetitions, exitless first on odd).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exitless.spark import configure
from exitless.spark.hook import DEFAULT_BACKEND, iter_stats_files

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

JOBS = ("groupByKey", "reduceByKey", "sortByKey")


def _value(i: int) -> bytes:
    index = i.to_bytes(8, "big")
    return index + hashlib.blake2b(index, digest_size=48).digest()


def _index(v: bytes) -> int:
    return int.from_bytes(v[:8], "big")


def group_by_key(sc: SparkContext, n: int, keys: int, parts: int) -> int:
    rdd = sc.range(n, numSlices=parts).map(lambda i: (i % keys, _value(i)))
    return int(rdd.groupByKey(parts).map(lambda kv: sum(_index(v) for v in kv[1])).sum())


def reduce_by_key(sc: SparkContext, n: int, keys: int, parts: int) -> int:
    rdd = sc.range(n, numSlices=parts).map(lambda i: (i % keys, _value(i)))
    return int(rdd.reduceByKey(max, parts).map(lambda kv: _index(kv[1])).sum())


def sort_by_key(sc: SparkContext, n: int, keys: int, parts: int) -> int:
    rdd = sc.range(n, numSlices=parts).map(lambda i: (_value((i * 7919) % n), None))
    # pyspark's stubs want keys whose __lt__ takes any SupportsOrdering; bytes compare
    # with bytes only, which is what these keys are.
    firsts = (
        rdd.sortByKey(numPartitions=max(1, parts // 2))  # type: ignore[call-overload]
        .mapPartitions(lambda it: [_index(next(iter(it))[0])])
        .collect()
    )
    return int(min(firsts))


def expected(job: str, n: int, keys: int) -> int:
    if job == "groupByKey":
        return n * (n - 1) // 2
    if job == "reduceByKey":
        return sum(max(range(k, n, keys)) for k in range(min(keys, n)))
    return 0


_RUNNERS: dict[str, Callable[[SparkContext, int, int, int], int]] = {
    "groupByKey": group_by_key,
    "reduceByKey": reduce_by_key,
    "sortByKey": sort_by_key,
}


def per_file_costs(directory: Path, files: int = 1000, reps: int = 5) -> dict[str, dict[str, float]]:
    """Median µs per ~5 KB spill file, written in 250-byte writes through a 64 KiB
    buffer and read back, plain and sealed with each backend that works here
    (interleaved repetitions; the sealed streams use the hook's options)."""
    import io

    from exitless import backends, generate_key, open_spill
    from exitless.spark.hook import BUFFER_SIZE, QUEUE_DEPTH, spill_context

    key = generate_key()
    payload = os.urandom(5000)
    modes = ["plain"] + [b for b in ("sync", "ocall", "uring") if backends()[b]["available"]]
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for _ in range(reps):
        for mode in modes:
            d = directory / f"per-file-{mode}"
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            paths = [str(d / str(i)) for i in range(files)]
            t0 = time.perf_counter()
            for p in paths:
                if mode == "plain":
                    w = open(p, "wb")  # noqa: SIM115 (closed by the `with w` below)
                else:
                    raw = open_spill(
                        p, "wb", key, spill_context(p), backend=mode, queue_depth=QUEUE_DEPTH, parallel=False
                    )
                    w = io.BufferedWriter(raw, BUFFER_SIZE)
                with w:
                    for j in range(0, len(payload), 250):
                        w.write(payload[j : j + 250])
            t1 = time.perf_counter()
            for p in paths:
                if mode == "plain":
                    r = open(p, "rb")  # noqa: SIM115 (closed by the `with r` below)
                else:
                    r = io.BufferedReader(
                        open_spill(p, "rb", key, spill_context(p), backend=mode), BUFFER_SIZE
                    )
                with r:
                    while r.read(250):
                        pass
            t2 = time.perf_counter()
            samples[mode].append(((t1 - t0) / files * 1e6, (t2 - t1) / files * 1e6))
            shutil.rmtree(d, ignore_errors=True)
    return {
        m: {
            "write_us": round(statistics.median(s[0] for s in v), 1),
            "read_us": round(statistics.median(s[1] for s in v), 1),
        }
        for m, v in samples.items()
    }


def _builder(app: str, local_dir: Path, memory: str, parts: int) -> SparkSession.Builder:
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.python.worker.memory", memory)
        .config("spark.local.dir", str(local_dir))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.default.parallelism", str(parts))
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )


def _stats_totals(stats_dir: Path) -> dict[str, int]:
    out = {
        "files_written": 0,
        "bytes_written": 0,
        "sealed_bytes_written": 0,
        "files_read": 0,
        "files_written_uring": 0,
        "files_read_uring": 0,
    }
    if stats_dir.is_dir():
        for entry in iter_stats_files(stats_dir):
            for k in out:
                out[k] += int(entry.get(k, 0))
    return out


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the jobs as ``args`` says (the options of :func:`main`); ``log`` gets one
    line per timed job (progress)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # same interpreter in both modes
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    work = Path(tempfile.mkdtemp(prefix="exitless-spark-bench-", dir=args.dir))
    per_file = per_file_costs(work, args.per_file, 5) if args.per_file else {}
    if per_file:
        for mode, r in per_file.items():
            log(f"per file  {mode:6} write {r['write_us']:7.1f} µs  read {r['read_us']:7.1f} µs")
    times: dict[str, dict[str, list[float]]] = {
        mode: {job: [] for job in args.jobs} for mode in ("plain", "exitless")
    }
    sealed: dict[str, list[dict[str, int]]] = {job: [] for job in args.jobs}
    try:
        for rep in range(args.reps):
            order = ("plain", "exitless") if rep % 2 == 0 else ("exitless", "plain")
            for mode in order:
                local_dir = work / f"{mode}-{rep}"
                local_dir.mkdir()
                stats_dir = work / f"stats-{rep}"
                builder = _builder(f"exitless-spark-bench-{mode}", local_dir, args.memory, args.parts)
                if mode == "exitless":
                    # the Python workers' spills alone (blocks-bench measures the JVM's blocks)
                    configure(builder, backend=args.backend, stats_dir=stats_dir, seal_blocks=False)
                else:  # the JVM keeps the first application's settings as defaults: undo ours
                    builder.config("spark.python.daemon.module", "pyspark.daemon").config(
                        "spark.python.worker.module", "pyspark.worker"
                    )
                spark = builder.getOrCreate()
                try:
                    sc = spark.sparkContext
                    sc.setLogLevel("ERROR")
                    if mode == "exitless":
                        assert sc.getConf().get("spark.python.daemon.module") == "exitless.spark.daemon"
                    else:
                        assert sc.getConf().get("spark.python.daemon.module") == "pyspark.daemon"
                    group_by_key(sc, 20_000, 16, args.parts)  # warm-up: start the daemon and workers
                    for job in args.jobs:
                        before = _stats_totals(stats_dir)
                        t0 = time.perf_counter()
                        result = _RUNNERS[job](sc, args.n, args.keys, args.parts)
                        elapsed = time.perf_counter() - t0
                        if result != expected(job, args.n, args.keys):
                            raise AssertionError(
                                f"{job} ({mode}) returned {result}, expected {expected(job, args.n, args.keys)}"
                            )
                        times[mode][job].append(elapsed)
                        if mode == "exitless":
                            after = _stats_totals(stats_dir)
                            sealed[job].append({k: after[k] - before[k] for k in after})
                        log(f"rep {rep} {mode:8} {job:12} {elapsed:7.2f} s")
                finally:
                    spark.stop()
                    SparkSession._instantiatedSession = None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    jobs_out: dict[str, Any] = {}
    for job in args.jobs:
        plain, sealed_t = statistics.median(times["plain"][job]), statistics.median(times["exitless"][job])
        jobs_out[job] = {
            "plain_seconds": [round(t, 3) for t in times["plain"][job]],
            "exitless_seconds": [round(t, 3) for t in times["exitless"][job]],
            "plain_median": round(plain, 3),
            "exitless_median": round(sealed_t, 3),
            "overhead": round(sealed_t / plain - 1, 4),
            "sealed_per_run": sealed[job],
        }
    total_plain = sum(statistics.median(times["plain"][j]) for j in args.jobs)
    total_sealed = sum(statistics.median(times["exitless"][j]) for j in args.jobs)
    import pyspark

    from .bench.machine import machine

    return {
        "benchmark": "exitless_tools.spark_bench",
        "machine": machine(),
        "pyspark": pyspark.__version__,
        "config": {
            "master": "local[2]",
            "n": args.n,
            "keys": args.keys,
            "partitions": args.parts,
            "python_worker_memory": args.memory,
            "reps": args.reps,
            "backend": args.backend or DEFAULT_BACKEND,
        },
        "per_file_5kb": {
            "files": args.per_file,
            "directory": args.dir or tempfile.gettempdir(),
            "median_of": 5,
            **per_file,
        },
        "jobs": jobs_out,
        "total": {
            "plain_median_sum": round(total_plain, 3),
            "exitless_median_sum": round(total_sealed, 3),
            "overhead": round(total_sealed / total_plain - 1, 4),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exitless_tools spark-bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="records per job (default 1000000)")
    parser.add_argument(
        "--keys", type=int, default=2_000, help="distinct keys for groupByKey/reduceByKey (default 2000)"
    )
    parser.add_argument("--parts", type=int, default=4, help="partitions (default 4)")
    parser.add_argument(
        "--memory", default="32m", help="spark.python.worker.memory (default 32m: the workers spill)"
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each mode (default 5)")
    parser.add_argument(
        "--backend", default=None, help=f"exitless backend (default: the hook's, {DEFAULT_BACKEND})"
    )
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated subset of {','.join(JOBS)}")
    parser.add_argument(
        "--per-file",
        type=int,
        default=1000,
        help="files for the per-file cost measurement (0: skip; default 1000)",
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="scratch directory (spark.local.dir and per-file files; default: the temp dir)",
    )
    parser.add_argument(
        "--out", default="bench-results", help="directory for spark-<timestamp>.json (default bench-results)"
    )
    args = parser.parse_args(argv)
    args.jobs = [j for j in args.jobs.split(",") if j]
    unknown = set(args.jobs) - set(JOBS)
    if unknown:
        parser.error(f"unknown jobs {sorted(unknown)}; choose from {', '.join(JOBS)}")
    result = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"spark-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for job, r in result["jobs"].items():
        print(
            f"{job:12} plain {r['plain_median']:7.2f} s  exitless {r['exitless_median']:7.2f} s  overhead {r['overhead']:+.1%}"
        )
    print(
        f"{'total':12} plain {result['total']['plain_median_sum']:7.2f} s  exitless {result['total']['exitless_median_sum']:7.2f} s  overhead {result['total']['overhead']:+.1%}"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
