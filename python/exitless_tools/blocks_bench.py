"""The Spark JVM's blocks: Spark's lz4 alone, Spark's own IO encryption, and exitless's
sealing codec, in one run (a benchmark, not a test).

``python -m exitless_tools blocks-bench [--rows N] [--reps R] [--out DIR]``: a shuffle-
and spill-heavy DataFrame job (a full repartition of every row, a groupBy, a sort that
spills) on ``local[2]``, once per mode per repetition, the modes interleaved, each
application in its own process (a driver JVM keeps its first settings), timed inside
the process after a warm-up job. Medians, ratios against lz4 alone and against Spark's
IO encryption, and the bytes on disk at the job's end go to ``DIR/blocks-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exitless import __version__

MODES = ("lz4", "ioenc", "exitless")


def _builder(mode: str, local_dir: str, rows: int) -> Any:
    from pyspark.sql import SparkSession

    b = (
        SparkSession.builder.appName(f"exitless-blocks-bench-{mode}")
        .master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", local_dir)
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.shuffle.spill.numElementsForceSpillThreshold", str(max(rows // 16, 1000)))
    )
    if mode == "ioenc":
        b = b.config("spark.io.encryption.enabled", "true")
    elif mode == "exitless":
        import exitless.spark

        exitless.spark.configure(b, python_executable=sys.executable)
    return b


def _child(mode: str, rows: int, out: str) -> None:
    """One application: a warm-up, then the timed job; writes its figures to ``out``."""
    from pyspark.sql import functions as F

    local = tempfile.mkdtemp(prefix=f"exitless-blocks-{mode}-")
    spark = _builder(mode, local, rows).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    def job(n: int) -> list[Any]:
        df = spark.range(n, numPartitions=8).select(
            F.col("id"),
            (F.col("id") % 5000).alias("k"),
            F.sha2(F.col("id").cast("string"), 512).alias("payload"),
        )
        spread = df.repartition(8, "payload")  # every row crosses the shuffle
        agg = spread.groupBy("k").agg(F.count("*").alias("n"), F.max("payload").alias("top"))
        ordered = spread.orderBy("payload").select(F.sum(F.crc32("payload")).alias("h"))
        return [agg.agg(F.sum("n"), F.max("top")).collect(), ordered.collect()]

    try:
        job(max(rows // 20, 1000))  # JIT and class loading
        started = time.perf_counter()
        result = job(rows)
        seconds = time.perf_counter() - started
        # what the blocks take on disk at the end (shuffle outputs stay until the app ends)
        written = sum(f.stat().st_size for f in Path(local).rglob("*") if f.is_file())
    finally:
        spark.stop()
    Path(out).write_text(
        json.dumps({"mode": mode, "seconds": seconds, "disk_bytes": written, "result": repr(result)})
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m exitless_tools blocks-bench", description=__doc__.splitlines()[0]
    )
    p.add_argument("--rows", type=int, default=2_000_000, help="rows (default 2,000,000)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each mode (default 3)")
    p.add_argument("--out", default="bench-results", help="directory for the JSON (default bench-results)")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(a.child, a.rows, a.child_out)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="exitless-blocks-bench-"))
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for rep in range(a.reps):
        for mode in MODES:
            out = scratch / f"{mode}-{rep}.json"
            cmd = [sys.executable, "-m", "exitless_tools.blocks_bench", "--rows", str(a.rows)]
            cmd += ["--child", mode, "--child-out", str(out)]
            env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"blocks-bench: the {mode} run failed ({proc.returncode})")
            runs[mode].append(json.loads(out.read_text()))
            print(f"rep {rep} {mode}: {runs[mode][-1]['seconds']:.2f} s", file=sys.stderr)
    results = {runs[m][0]["result"] for m in MODES}
    if len(results) != 1:
        raise SystemExit("blocks-bench: the modes computed different results")
    median = {m: statistics.median(r["seconds"] for r in runs[m]) for m in MODES}
    report = {
        "benchmark": "spark-blocks",
        "exitless_version": __version__,
        "rows": a.rows,
        "reps": a.reps,
        "seconds": {m: [r["seconds"] for r in runs[m]] for m in MODES},
        "median_seconds": median,
        "disk_bytes_at_end": {m: runs[m][0]["disk_bytes"] for m in MODES},
        "ratio_exitless_vs_lz4": median["exitless"] / median["lz4"],
        "ratio_exitless_vs_ioenc": median["exitless"] / median["ioenc"],
        "ratio_ioenc_vs_lz4": median["ioenc"] / median["lz4"],
    }
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"blocks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "seconds"}, indent=1))
    print(f"blocks-bench: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
