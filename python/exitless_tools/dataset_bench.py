"""Sealed datasets against plaintext ones, in one run (a benchmark, not a test).

``python -m exitless_tools dataset-bench [--rows N] [--reps R] [--out DIR]``: on
``local[2]``, writes the same DataFrame as plaintext CSV (``df.write.csv``), as a
sealed dataset (:class:`exitless.spark.SealedIO`, a LocalKms keyring) and as sealed
CSV through the sealed file codec (``df.write.option("compression", ...)``, read by
plain ``spark.read.csv``), then reads each back and counts the rows, alternating,
``R`` times; medians and the ratios go to ``DIR/dataset-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from exitless import __version__


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m exitless_tools dataset-bench", description=__doc__.splitlines()[0]
    )
    p.add_argument("--rows", type=int, default=2_000_000, help="rows (default 2,000,000)")
    p.add_argument("--parts", type=int, default=4, help="partitions (default 4)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each mode (default 3)")
    p.add_argument("--out", default="bench-results", help="directory for the JSON (default bench-results)")
    a = p.parse_args(argv)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    import exitless.spark
    from exitless.kms import LocalKms
    from exitless.spark.sealed_io import SealedIO

    scratch = Path(tempfile.mkdtemp(prefix="exitless-dataset-bench-"))
    kms = LocalKms.init(scratch / "ring.json")
    builder = (
        SparkSession.builder.appName("exitless-dataset-bench")
        .master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", str(scratch / "local"))
    )
    # the JVM library on the class path and the sealed file codec with the keyring; the
    # job's own blocks stay Spark's (this measures the datasets alone)
    exitless.spark.configure(builder, kms=kms.uri, seal_blocks=False)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    times: dict[str, list[float]] = {
        k: []
        for k in ("plain_write", "sealed_write", "codec_write", "plain_read", "sealed_read", "codec_read")
    }
    try:
        df = (
            spark.range(a.rows, numPartitions=a.parts)
            .select(
                F.col("id"),
                (F.col("id") % 1000).alias("g"),
                F.sha2(F.col("id").cast("string"), 256).alias("note"),
            )
            .cache()
        )
        df.count()
        schema = "id long, g long, note string"
        sio = SealedIO(spark, kms)
        codec = exitless.spark.HADOOP_CODEC_CLASS
        for rep in range(a.reps + 1):  # the first round warms up and is dropped
            for mode in ("plain", "sealed", "codec"):
                target = scratch / f"{mode}-{rep}"
                t = time.perf_counter()
                if mode == "plain":
                    df.write.csv(str(target), header=True)
                elif mode == "codec":
                    df.write.option("compression", codec).csv(str(target), header=True)
                else:
                    sio.write(df, target, format="csv")
                w = time.perf_counter() - t
                t = time.perf_counter()
                if mode in ("plain", "codec"):
                    n = spark.read.csv(str(target), schema=schema, header=True).count()
                else:
                    n = sio.read(target, schema=schema).count()
                r = time.perf_counter() - t
                assert n == a.rows, (mode, n)
                if rep > 0:
                    times[f"{mode}_write"].append(w)
                    times[f"{mode}_read"].append(r)
                print(f"rep {rep} {mode:6} write {w:6.2f} s  read+count {r:6.2f} s", flush=True)
                shutil.rmtree(target)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratios = {
            "write": med["sealed_write"] / med["plain_write"],
            "read": med["sealed_read"] / med["plain_read"],
            "codec_write": med["codec_write"] / med["plain_write"],
            "codec_read": med["codec_read"] / med["plain_read"],
        }
        result = {
            "benchmark": "exitless_tools.dataset_bench",
            "exitless": __version__,
            "config": {
                "master": "local[2]",
                "rows": a.rows,
                "partitions": a.parts,
                "reps": a.reps,
                "format": "csv",
            },
            "seconds": times,
            "median_seconds": med,
            "sealed_over_plain": ratios,
        }
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"dataset-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"SealedIO / plain: write {ratios['write']:.2f}x, read+count {ratios['read']:.2f}x; "
        f"codec / plain: write {ratios['codec_write']:.2f}x, read+count {ratios['codec_read']:.2f}x; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
