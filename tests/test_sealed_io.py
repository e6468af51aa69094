"""Sealed datasets (``exitless.spark.SealedIO``) on real Spark: local[2] and a
standalone cluster started here. A job reads sealed CSV input, aggregates, writes
sealed output, and the output read back equals the plaintext computation; no
plaintext canary is in any written file; files sealed by the CLI are read by a job
and the other way round; missing, truncated, swapped parts and a foreign KMS fail.
Java is required (``make test`` installs it)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import exitless
from exitless.kms import LocalKms
from exitless.spark import SealedIO
from test_spark_e2e import StandaloneCluster, java_or_fail

CANARY = "SEALED-IO-CANARY-7f3a"
ROWS = 3000
GROUPS = 17


def rows() -> list[tuple[str, int, str]]:
    return [(f"g{i % GROUPS}", i, f"{CANARY}-{i}") for i in range(ROWS)]


def expected_sums() -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for g, v, _ in rows():
        sums[g] += v
    return dict(sums)


def assert_no_canary(root: Path) -> int:
    seen = 0
    for p in root.rglob("*"):
        if p.is_file():
            seen += 1
            assert CANARY.encode() not in p.read_bytes(), f"plaintext canary in {p}"
    return seen


def fails_integrity(action) -> None:  # type: ignore[no-untyped-def]
    """The action fails with exitless.IntegrityError, raised on the driver or in a
    task (then Spark wraps it and names it in its message)."""
    with pytest.raises(Exception) as ei:
        action()
    assert isinstance(ei.value, exitless.IntegrityError) or "exitless._errors.IntegrityError" in str(ei.value), ei.value


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "exitless", *args], capture_output=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def local_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    java_or_fail()
    root = tmp_path_factory.mktemp("sealed-io-local")
    # PySpark starts workers with $PYSPARK_PYTHON: this interpreter has exitless.
    mp = pytest.MonkeyPatch()
    mp.setenv("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.appName("exitless-sealed-io").master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", str(root))
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    try:
        yield spark
    finally:
        spark.stop()
        mp.undo()


def aggregate_job(spark: SparkSession, sio: SealedIO, src: Path, dst: Path) -> None:
    """The job: sealed CSV in, group sums, sealed JSON lines out."""
    df = sio.read(src, schema="g string, v long, note string")
    out = df.groupBy("g").agg(F.sum("v").alias("total"))
    sio.write(out, dst, format="json")


def test_sealed_csv_in_aggregate_sealed_json_out(local_spark: SparkSession, tmp_path: Path) -> None:
    kms = LocalKms.init(tmp_path / "ring.json")
    sio = SealedIO(local_spark, kms, context="app-1")
    data = tmp_path / "data"
    df = local_spark.createDataFrame(rows(), "g string, v long, note string").repartition(4)
    parts = sio.write(df, data / "in", format="csv")
    assert len(parts) == 4 and sum(p["lines"] for p in parts) == ROWS
    aggregate_job(local_spark, sio, data / "in", data / "out")
    got = {r["g"]: r["total"] for r in sio.read(data / "out", format="json").collect()}
    assert got == expected_sums()
    # Every part and manifest is a version-2 sealed file whose header carries its key.
    for f in (data / "in").iterdir():
        info = exitless.inspect(f)
        assert info.version == 2 and info.envelope, f
    assert assert_no_canary(tmp_path) >= 7  # 4 input parts, output parts, 2 manifests, the keyring
    # Text round trip, and the manifest's counts.
    notes = df.select("note")
    sio.write(notes, data / "text", format="text")
    assert sorted(r[0] for r in sio.read(data / "text").collect()) == sorted(n for _, _, n in rows())
    assert sum(p["lines"] for p in sio.manifest(data / "text")["parts"]) == ROWS


def test_missing_truncated_swapped_parts_and_a_foreign_kms_fail(local_spark: SparkSession, tmp_path: Path) -> None:
    kms = LocalKms.init(tmp_path / "ring.json")
    sio = SealedIO(local_spark, kms)
    df = local_spark.createDataFrame(rows(), "g string, v long, note string").repartition(3)
    for name in ("a", "b", "c", "d"):
        sio.write(df, tmp_path / name, format="csv")
    with pytest.raises(FileExistsError):
        sio.write(df, tmp_path / "a", format="csv")
    # A missing part fails on the driver.
    (tmp_path / "a" / "part-00001.csv.exls").unlink()
    with pytest.raises(exitless.IntegrityError, match="missing"):
        sio.read(tmp_path / "a").collect()
    # A truncated part fails the job (never a shorter result).
    p = tmp_path / "b" / "part-00002.csv.exls"
    p.write_bytes(p.read_bytes()[:-100])
    fails_integrity(lambda: sio.read(tmp_path / "b").collect())
    # Swapped parts fail: each part's context names it.
    x, y = tmp_path / "c" / "part-00000.csv.exls", tmp_path / "c" / "part-00001.csv.exls"
    xb, yb = x.read_bytes(), y.read_bytes()
    x.write_bytes(yb)
    y.write_bytes(xb)
    fails_integrity(lambda: sio.read(tmp_path / "c").collect())
    # Another KMS cannot open the dataset at all.
    other = SealedIO(local_spark, LocalKms.init(tmp_path / "other.json"))
    with pytest.raises(Exception, match="cannot unwrap"):
        other.read(tmp_path / "d").collect()


def test_cli_sealed_files_are_read_by_a_job_and_job_parts_by_the_cli(local_spark: SparkSession, tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    uri = f"local:{ring}"
    assert cli("kms", "init", "--kms", uri).returncode == 0
    plain = tmp_path / "in.csv"
    with open(plain, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["g", "v", "note"])
        w.writerows(rows())
    sealed = tmp_path / "in.csv.exls"
    proc = cli("seal", str(plain), str(sealed), "--kms", uri, "-c", "ingest")
    assert proc.returncode == 0, proc.stderr
    plain.unlink()
    sio = SealedIO(local_spark, uri, context="ingest")
    df = sio.read(sealed, format="csv", schema="g string, v long, note string")
    assert df.count() == ROWS
    assert {r["g"]: r["s"] for r in df.groupBy("g").agg(F.sum("v").alias("s")).collect()} == expected_sums()
    # The other way round: a part the job wrote opens with the CLI.
    out = tmp_path / "out"
    SealedIO(local_spark, uri, context="report").write(df.repartition(2), out, format="csv")
    part = out / "part-00000.csv.exls"
    opened = tmp_path / "part0.csv"
    proc = cli("open", str(part), str(opened), "--kms", uri, "-c", "report/part-00000.csv.exls")
    assert proc.returncode == 0, proc.stderr
    lines = list(csv.reader(io.StringIO(opened.read_text())))
    assert lines[0] == ["g", "v", "note"] and len(lines) > 1
    assert all(row[2].startswith(CANARY) for row in lines[1:])
    assert assert_no_canary(out) >= 3


def test_on_a_standalone_cluster(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    java_or_fail()
    active = SparkSession.getActiveSession()
    if active is not None:  # the local[2] session of the tests above: one SparkContext per process
        active.stop()
    root = tmp_path_factory.mktemp("sealed-io-standalone")
    cluster = StandaloneCluster(root)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    try:
        cluster.start()
        (root / "driver-local").mkdir()
        spark = (
            SparkSession.builder.appName("exitless-sealed-io-standalone").master(cluster.url)
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.local.dir", str(root / "driver-local"))
            .config("spark.executor.memory", "512m").config("spark.executor.cores", "1").config("spark.cores.max", "2")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.pyspark.python", sys.executable)
            .getOrCreate()
        )
        try:
            sio = SealedIO(spark, LocalKms.init(root / "ring.json"), context="cluster")
            data = root / "data"
            sio.write(spark.createDataFrame(rows(), "g string, v long, note string").repartition(4), data / "in")
            aggregate_job(spark, sio, data / "in", data / "out")
            got = {r["g"]: r["total"] for r in sio.read(data / "out").collect()}
            assert got == expected_sums()
            # The driver's block manager plus the two workers' executors.
            assert spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() >= 3  # type: ignore[union-attr]
        finally:
            spark.stop()
        assert assert_no_canary(data) >= 5
    finally:
        cluster.stop()
