"""Sealed datasets (``exitless.spark.SealedIO``) on real Spark: local[2] and a
standalone cluster started here. A job reads sealed CSV input, aggregates, writes
sealed output, and the output read back equals the plaintext computation; no
plaintext canary is in any written file; files sealed by the CLI are read by a job
and the other way round; missing, truncated, swapped parts and a foreign KMS fail,
and so do parts from another write of the dataset or from another dataset and a
manifest rolled back to another write (each part is bound to one dataset write).
Java is required: without it these tests are skipped, under ``make test`` (which
installs it) they fail (tests/conftest.py)."""

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
from exitless.spark import SealedIO, blocks
from test_spark_e2e import StandaloneCluster

pytestmark = [pytest.mark.java, pytest.mark.slow]

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


def fails_integrity(action, *names: str) -> None:  # type: ignore[no-untyped-def]
    """The action fails with an integrity error whose message names every one of
    ``names``: exitless.IntegrityError on the driver, or in a task (the parts are sealed
    and opened in the executors' JVMs) io.exitless.spark.SealIntegrityException, which
    Spark wraps and names in its message."""
    with pytest.raises(Exception) as ei:
        action()
    assert isinstance(ei.value, exitless.IntegrityError) or "io.exitless.spark.SealIntegrityException" in str(
        ei.value
    ), ei.value
    for name in names:
        assert name in str(ei.value), (name, str(ei.value)[-2000:])


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "exitless", *args],
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def local_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    root = tmp_path_factory.mktemp("sealed-io-local")
    # PySpark starts workers with $PYSPARK_PYTHON: this interpreter has exitless.
    mp = pytest.MonkeyPatch()
    mp.setenv("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.appName("exitless-sealed-io")
        .master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", str(root))
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.pyspark.python", sys.executable)
        # one driver JVM per process, its classpath fixed at start (tests/test_spark_e2e.py)
        .config("spark.driver.extraClassPath", blocks.jar_path())
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


def test_missing_truncated_swapped_parts_and_a_foreign_kms_fail(
    local_spark: SparkSession, tmp_path: Path
) -> None:
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


def test_cli_sealed_files_are_read_by_a_job_and_job_parts_by_the_cli(
    local_spark: SparkSession, tmp_path: Path
) -> None:
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
    write_id = SealedIO(local_spark, uri, context="report").manifest(out)["write"]
    proc = cli("open", str(part), str(opened), "--kms", uri, "-c", f"report/{write_id}/part-00000.csv.exls")
    assert proc.returncode == 0, proc.stderr
    lines = list(csv.reader(io.StringIO(opened.read_text())))
    assert lines[0] == ["g", "v", "note"] and len(lines) > 1
    assert all(row[2].startswith(CANARY) for row in lines[1:])
    assert assert_no_canary(out) >= 3


# --------------------------------------------------------------------------- one dataset write


def tagged_rows(tag: str) -> list[tuple[str, int]]:
    """Rows whose CSV lines have the same length for every 3-letter ``tag``."""
    return [(f"{tag}-{i:05d}", i) for i in range(ROWS)]


def write_tagged(spark: SparkSession, sio: SealedIO, path: Path, tag: str, mode: str = "error") -> list[dict]:
    """Three parts whose byte and line counts depend only on ROWS (parallelize slices
    a list deterministically), so two writes differ in content, not in counts."""
    df = spark.createDataFrame(spark.sparkContext.parallelize(tagged_rows(tag), 3), "t string, v long")
    return sio.write(df, path, format="csv", mode=mode)


def counts(parts: list[dict]) -> list[tuple[str, int, int]]:
    return [(p["name"], p["lines"], p["bytes"]) for p in parts]


def read_tags(sio: SealedIO, path: Path) -> set[str]:
    return {r["t"][:3] for r in sio.read(path, schema="t string, v long").collect()}


def test_an_older_part_at_the_same_path_fails(local_spark: SparkSession, tmp_path: Path) -> None:
    """Issue 14: a part of an older write of the same dataset, copied over the newer
    part at the same path with the same byte and line counts, used to be read."""
    sio = SealedIO(local_spark, LocalKms.init(tmp_path / "ring.json"), context="app-1")
    data = tmp_path / "data"
    old = write_tagged(local_spark, sio, data, "old")
    old_part = (data / "part-00001.csv.exls").read_bytes()
    new = write_tagged(local_spark, sio, data, "new", mode="overwrite")
    new_part = (data / "part-00001.csv.exls").read_bytes()
    assert counts(old) == counts(new) and len(new) == 3  # only the content differs
    assert read_tags(sio, data) == {"new"}
    (data / "part-00001.csv.exls").write_bytes(old_part)
    fails_integrity(lambda: read_tags(sio, data), "part-00001.csv.exls", "dataset write")
    # Without the manifest's header digest, the stream itself refuses the old part:
    # its context names the write that sealed it.
    from exitless.spark.sealed_io import _part_context, _read_lines

    write_id = sio.manifest(data)["write"]
    source = {
        "path": str(data / "part-00001.csv.exls"),
        "context": _part_context("app-1", write_id, "part-00001.csv.exls"),
    }
    with pytest.raises(
        exitless.IntegrityError, match=r"part-00001\.csv\.exls: segment 0: authentication failed"
    ):
        list(_read_lines(sio._kms_uri, True, source))
    (data / "part-00001.csv.exls").write_bytes(new_part)
    assert len(list(_read_lines(sio._kms_uri, True, source))) == new[1]["lines"]


def test_a_part_from_another_dataset_fails(local_spark: SparkSession, tmp_path: Path) -> None:
    """Two datasets under the same KMS and context (the default, empty one): a part
    of one copied into the other at the same path, with the same counts."""
    sio = SealedIO(local_spark, LocalKms.init(tmp_path / "ring.json"))
    other = write_tagged(local_spark, sio, tmp_path / "other", "oth")
    mine = write_tagged(local_spark, sio, tmp_path / "mine", "new")
    assert counts(other) == counts(mine)
    assert read_tags(sio, tmp_path / "mine") == {"new"} and read_tags(sio, tmp_path / "other") == {"oth"}
    (tmp_path / "mine" / "part-00000.csv.exls").write_bytes(
        (tmp_path / "other" / "part-00000.csv.exls").read_bytes()
    )
    fails_integrity(lambda: read_tags(sio, tmp_path / "mine"), "part-00000.csv.exls", "dataset write")


@pytest.mark.parametrize("rolled_back", ["manifest", "parts"])
def test_a_manifest_rolled_back_to_another_write_fails(
    local_spark: SparkSession, tmp_path: Path, rolled_back: str
) -> None:
    """The older write's manifest over the newer write's parts, or the newer
    manifest over the older write's parts: same names and counts, other write."""
    from exitless.spark.sealed_io import MANIFEST

    sio = SealedIO(local_spark, LocalKms.init(tmp_path / "ring.json"), context="app-1")
    data = tmp_path / "data"
    old = write_tagged(local_spark, sio, data, "old")
    saved = {p.name: p.read_bytes() for p in data.iterdir()}
    new = write_tagged(local_spark, sio, data, "new", mode="overwrite")
    assert counts(old) == counts(new)
    restore = [MANIFEST] if rolled_back == "manifest" else [n for n in saved if n != MANIFEST]
    assert len(restore) == (1 if rolled_back == "manifest" else 3)
    for name in restore:
        (data / name).write_bytes(saved[name])
    fails_integrity(lambda: read_tags(sio, data), "part-0000", "dataset write")
    # The whole older write, manifest and parts together, is still a valid dataset.
    (data / MANIFEST).write_bytes(saved[MANIFEST])
    for name in saved:
        (data / name).write_bytes(saved[name])
    assert read_tags(sio, data) == {"old"}


def test_old_and_unknown_manifest_versions_are_refused(local_spark: SparkSession, tmp_path: Path) -> None:
    """A version-1 manifest (no write id) is refused with FormatError, not read by
    the old rules; so are an unknown version and a malformed version-2 document."""
    import json

    from exitless.kms import open_sealed
    from exitless.spark.sealed_io import MANIFEST

    kms = LocalKms.init(tmp_path / "ring.json")
    sio = SealedIO(local_spark, kms, context="app-1")
    data = tmp_path / "data"
    parts = write_tagged(local_spark, sio, data, "new")
    doc = sio.manifest(data)
    assert doc["version"] == 2 and len(bytes.fromhex(doc["write"])) == 16
    assert [len(bytes.fromhex(p["sealed_header_sha256"])) for p in doc["parts"]] == [32, 32, 32]
    assert doc["parts"] == parts
    v1 = {
        "version": 1,
        "format": "csv",
        "header": True,
        "parts": [{"name": p["name"], "lines": p["lines"], "bytes": p["bytes"]} for p in parts],
    }
    cases = [
        (v1, "manifest version 1"),
        ({**doc, "version": 3}, "unknown manifest version 3"),
        ({**doc, "write": "00" * 15}, "'write'"),
        ({**doc, "parts": [{**parts[0], "name": "../x.csv.exls"}]}, r"parts\[0\]"),
        (
            {**doc, "parts": [{k: v for k, v in parts[0].items() if k != "sealed_header_sha256"}]},
            "sealed_header_sha256",
        ),
    ]
    for bad, message in cases:
        with open_sealed(data / MANIFEST, "wb", kms, f"app-1/{MANIFEST}") as f:
            f.write(json.dumps(bad).encode())
        with pytest.raises(exitless.FormatError, match=message) as ei:
            sio.read(data, schema="t string, v long")
        assert str(data / MANIFEST) in str(ei.value)


def test_on_a_standalone_cluster(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
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
            cluster.join(SparkSession.builder.appName("exitless-sealed-io-standalone"))
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.local.dir", str(root / "driver-local"))
            .config("spark.executor.memory", "512m")
            .config("spark.executor.cores", "1")
            .config("spark.cores.max", "2")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.pyspark.python", sys.executable)
            # the parts are sealed and opened in the executors' JVMs
            .config("spark.driver.extraClassPath", blocks.jar_path())
            .config("spark.executor.extraClassPath", blocks.jar_path())
            .getOrCreate()
        )
        try:
            sio = SealedIO(spark, LocalKms.init(root / "ring.json"), context="cluster")
            data = root / "data"
            sio.write(
                spark.createDataFrame(rows(), "g string, v long, note string").repartition(4), data / "in"
            )
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
