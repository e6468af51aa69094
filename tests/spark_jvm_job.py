"""A DataFrame application that makes the Spark JVM write every kind of block: run as
its own process (``python tests/spark_jvm_job.py OUT.json --mode ...``) by
tests/test_spark_jvm.py, which polls ``--local-dir`` for the canary while it runs.

The jobs: a wide shuffle (groupBy/agg), a sort that spills
(``spark.shuffle.spill.numElementsForceSpillThreshold``), a broadcast join, and a
``DISK_ONLY`` cache, every row carrying the canary. Before stopping it records each
file under the local directory (name, size, first bytes, and for shuffle data files
the first bytes of every non-empty partition, found through the index file) and a
digest of every result, so runs with and without exitless compare.

Modes: ``exitless`` (``exitless.spark.configure``), ``stock`` (Spark's defaults: lz4),
``ioenc`` (Spark's own IO encryption), ``plain`` (no exitless, compression off: the
positive control).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

CANARY = "EXITLESS-CANARY-5f1d2c9e"


def builder_for(
    mode: str, master: str, local_dir: str, extra: list[str], block_key_kms: str | None = None
) -> Any:
    from pyspark.sql import SparkSession

    b = (
        SparkSession.builder.appName(f"exitless-jvm-{mode}")
        .master(master)
        .config("spark.local.dir", local_dir)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.adaptive.enabled", "false")  # the plan stays as written: a sort, a broadcast join
        .config("spark.shuffle.spill.numElementsForceSpillThreshold", "2000")
        .config("spark.sql.autoBroadcastJoinThreshold", str(32 << 20))
        .config("spark.driver.memory", "1g")
    )
    for item in extra:
        k, _, v = item.partition("=")
        b = b.config(k, v)
    if mode == "exitless":
        import exitless.spark

        exitless.spark.configure(b, python_executable=sys.executable, block_key_kms=block_key_kms)
    elif mode == "ioenc":
        b = b.config("spark.io.encryption.enabled", "true")
    elif mode == "plain":
        for key in ("spark.shuffle.compress", "spark.shuffle.spill.compress", "spark.broadcast.compress"):
            b = b.config(key, "false")
        b = b.config("spark.rdd.compress", "false")
    elif mode != "stock":
        raise SystemExit(f"unknown mode {mode!r}")
    return b


def digest(rows: list[Any]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(repr(tuple(r)).encode())
    return h.hexdigest()


def inventory(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root``: size, first 4 bytes, and for a shuffle data file the
    first 4 bytes of each non-empty partition (offsets from its .index file)."""
    out = []
    files = sorted(p for p in root.rglob("*") if p.is_file())
    by_name = {p.name: p for p in files}
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        entry: dict[str, Any] = {
            "path": str(path),
            "name": path.name,
            "size": len(data),
            "head": data[:4].hex(),
        }
        if path.name.startswith("shuffle_") and path.name.endswith(".data"):
            index = by_name.get(path.name[: -len(".data")] + ".index")
            if index is not None:
                raw = index.read_bytes()
                offsets = [int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8)]
                entry["partition_heads"] = [
                    data[a : a + 4].hex() for a, b in itertools.pairwise(offsets) if b > a
                ]
        out.append(entry)
    return out


def tamper(spark: Any, rows: Any, local_dir: Path) -> dict[str, Any]:
    """Runs an aggregation, flips one byte inside every map output it wrote, and runs
    it again (the same plan: Spark reuses the map outputs, so the reduce side reads the
    flipped bytes). Returns whether the second result equals the first, or its error."""
    from pyspark.sql import functions as F

    agg = rows.groupBy("k").agg(F.count("*").alias("n"), F.max("payload").alias("top"))
    before = {p for p in local_dir.rglob("shuffle_*.data")}
    first = sorted(agg.collect())
    outputs = sorted(
        p for p in local_dir.rglob("shuffle_*.data") if p not in before and p.stat().st_size > 200
    )
    for path in outputs:
        with open(path, "r+b") as f:
            f.seek(150)  # inside segment 0's ciphertext (the header is 68 bytes)
            b = f.read(1)
            f.seek(150)
            f.write(bytes([b[0] ^ 0x01]))
    result: dict[str, Any] = {"map_outputs_flipped": len(outputs)}
    try:
        second = sorted(agg.collect())
        result["equal"] = second == first
        result["error"] = None
    except Exception as e:  # the job may fail instead of recomputing: never a wrong result
        result["equal"] = None
        result["error"] = str(e)[:4000]
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = builder_for(args.mode, args.master, args.local_dir, args.conf, args.block_key_kms).getOrCreate()
    report: dict[str, Any] = {"mode": args.mode, "spark": spark.version, "timings": {}, "digests": {}}
    try:
        n = args.rows
        rows = spark.range(n, numPartitions=4).select(
            F.col("id"),
            (F.col("id") % 1000).alias("k"),
            F.concat(
                F.lit(CANARY), F.col("id").cast("string"), F.sha2(F.col("id").cast("string"), 256)
            ).alias("payload"),
        )

        def timed(name: str, action: Any) -> Any:
            started = time.perf_counter()
            result = action()
            report["timings"][name] = time.perf_counter() - started
            return result

        grouped = timed(
            "shuffle",
            lambda: (
                rows.groupBy("k")
                .agg(
                    F.count("*").alias("n"),
                    F.max("payload").alias("top"),
                    F.sum(F.length("payload")).alias("len"),
                )
                .orderBy("k")
                .collect()
            ),
        )
        report["digests"]["shuffle"] = digest(grouped)
        ordered = timed(
            "sort",
            lambda: (
                rows.orderBy(F.col("payload").desc()).select("id", "payload").limit(50).collect()
                + rows.orderBy("payload").agg(F.sum(F.length("payload"))).collect()
                + rows.repartition(4, "payload")
                .sortWithinPartitions("payload")
                .select(F.sum(F.crc32("payload")))
                .collect()
            ),
        )
        report["digests"]["sort"] = digest(ordered)
        small = spark.range(1000).select(
            F.col("id").alias("k"),
            F.concat(F.lit(CANARY), F.lit("-dim-"), F.col("id").cast("string")).alias("dim"),
        )
        joined = timed(
            "broadcast_join",
            lambda: (
                rows.join(F.broadcast(small), "k")
                .groupBy("dim")
                .agg(F.count("*").alias("n"), F.max("payload").alias("top"))
                .orderBy("dim")
                .collect()
            ),
        )
        report["digests"]["broadcast_join"] = digest(joined)
        cached = rows.persist(StorageLevel.DISK_ONLY)
        counted = timed("cache", lambda: (cached.count(), cached.agg(F.max("payload")).collect()))
        report["digests"]["cache"] = digest([(counted[0],), *counted[1]])
        if args.hold:
            time.sleep(args.hold)  # let the poller read the cached blocks at rest
        report["files"] = inventory(Path(args.local_dir))
        plan = rows.join(F.broadcast(small), "k")._jdf.queryExecution().executedPlan().toString()
        report["broadcast_in_plan"] = "BroadcastHashJoin" in plan
        conf = spark.sparkContext.getConf()
        report["conf"] = {
            k: v for k, v in conf.getAll() if k.startswith(("spark.io.", "spark.exitless", "spark.plugins"))
        }
        cached.unpersist()
        if args.tamper:
            report["tamper"] = tamper(spark, rows, Path(args.local_dir))
    finally:
        spark.stop()
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="where the JSON report goes")
    p.add_argument("--mode", default="exitless", choices=["exitless", "stock", "ioenc", "plain"])
    p.add_argument("--master", default="local[2]")
    p.add_argument("--local-dir", required=True)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--hold", type=float, default=1.0, help="seconds to keep the cache before the inventory")
    p.add_argument("--block-key-kms", help="exitless: the KMS that wraps the block key (executors unwrap it)")
    p.add_argument("--tamper", action="store_true", help="then flip a byte in map outputs and rerun")
    p.add_argument("--conf", action="append", default=[], help="extra key=value settings")
    args = p.parse_args()
    os.makedirs(args.local_dir, exist_ok=True)
    report = run(args)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
