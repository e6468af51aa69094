"""What the Spark JVM writes, sealed by exitless's block codec (jvm/, native/jni).

Each application runs as its own process (tests/spark_jvm_job.py: a driver JVM's
classpath is fixed when it starts, and PySpark keeps one per Python process) while a
poller here reads every file under its ``spark.local.dir``:

- with ``exitless.spark.configure``: the results equal Spark's own (lz4, no exitless);
  the canary carried in every row is never readable in any file, while the jobs run
  or at rest; every block file (shuffle outputs, partition by partition; sort and
  shuffle spills; cached blocks) starts with the sealed magic; the sort did spill;
  the key never went through SparkConf (no ``spark.plugins.internal.conf.*``);
- positive control: without exitless and with compression off, the poller finds the
  canary in shuffle outputs and cached blocks;
- tamper: a byte flipped in each map output between two runs of one aggregation makes
  the reduce side fail with SealIntegrityException; Spark recomputes (or fails) and
  the result is never wrong;
- one format: the JVM opens what the Python package sealed and the other way round,
  and rejects truncation at a segment boundary, a flipped bit and a wrong context.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import exitless
from exitless.spark import blocks
from spark_support import CanaryPoller

JOB = Path(__file__).with_name("spark_jvm_job.py")
MAGIC = b"EXLS"
#: Files holding block data (the .index and .checksum files hold offsets and checksums).
BLOCK_PREFIXES = ("rdd_", "broadcast_", "temp_local_", "temp_shuffle_")


def is_block_file(name: str) -> bool:
    return name.startswith(BLOCK_PREFIXES) or (name.startswith("shuffle_") and name.endswith(".data"))


def run_job(
    root: Path, mode: str, *args: str, rows: int = 200_000, poll: Path | None = None, name: str | None = None
) -> tuple[dict[str, Any], CanaryPoller, str]:
    """Runs tests/spark_jvm_job.py in ``mode`` under a poller of its local directory (or
    of ``poll``: a cluster's executors' directories)."""
    local = root / f"local-{name or mode}"
    local.mkdir(parents=True)
    out = root / f"{name or mode}.json"
    cmd = [
        sys.executable,
        str(JOB),
        str(out),
        "--mode",
        mode,
        "--local-dir",
        str(local),
        "--rows",
        str(rows),
        *args,
    ]
    with CanaryPoller(poll or local, interval=0.01) as poller:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{mode} job failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
    return json.loads(out.read_text()), poller, proc.stderr


@pytest.fixture(scope="module")
def local_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[dict[str, Any], CanaryPoller, str]]:
    root = tmp_path_factory.mktemp("spark-jvm")
    return {mode: run_job(root, mode) for mode in ("exitless", "stock", "plain")}


@pytest.mark.java
@pytest.mark.slow
class TestLocalBlocks:
    def test_results_equal_sparks_own(self, local_runs: dict[str, Any]) -> None:
        sealed, _, _ = local_runs["exitless"]
        assert sealed["digests"] == local_runs["stock"][0]["digests"] == local_runs["plain"][0]["digests"]
        assert sealed["broadcast_in_plan"], "the broadcast join was planned as another join"
        assert sealed["conf"]["spark.io.compression.codec"] == blocks.CODEC_CLASS
        assert blocks.PLUGIN_CLASS in sealed["conf"]["spark.plugins"]

    def test_no_canary_in_any_file(self, local_runs: dict[str, Any]) -> None:
        _, poller, _ = local_runs["exitless"]
        assert not poller.hits, f"canary readable in {sorted(poller.hits)[:5]}"
        names = {Path(p).name for p in poller.seen}
        kinds = {
            prefix
            for prefix in ("shuffle_", "rdd_", "temp_local_", "temp_shuffle_")
            if any(n.startswith(prefix) for n in names)
        }
        # shuffle outputs, cached blocks and spills were all there to be read
        assert {"shuffle_", "rdd_"} <= kinds, sorted(names)[:20]
        assert kinds & {"temp_local_", "temp_shuffle_"}, f"no spill file seen: {sorted(names)[:20]}"

    def test_every_block_file_is_sealed(self, local_runs: dict[str, Any]) -> None:
        report, poller, _ = local_runs["exitless"]
        seen = {p: h for p, h in poller.heads.items() if is_block_file(Path(p).name) and h}
        assert len(seen) >= 10
        unsealed = {p: h for p, h in seen.items() if h != MAGIC}
        assert not unsealed, f"block files without the sealed magic: {list(unsealed.items())[:5]}"
        at_rest = [f for f in report["files"] if is_block_file(f["name"]) and f["size"]]
        assert any(f["name"].startswith("rdd_") for f in at_rest)
        for f in at_rest:
            assert f["head"] == MAGIC.hex(), f
            for head in f.get("partition_heads", []):
                assert head == MAGIC.hex(), f"{f['name']}: a partition does not start with the magic"
        assert sum(len(f.get("partition_heads", [])) for f in at_rest) >= 16

    def test_key_not_in_conf(self, local_runs: dict[str, Any]) -> None:
        _, _, stderr = local_runs["exitless"]
        assert "spark.plugins.internal" not in stderr
        assert "SealIntegrityException" not in stderr

    def test_positive_control_finds_the_canary(self, local_runs: dict[str, Any]) -> None:
        _, poller, _ = local_runs["plain"]
        names = {Path(p).name for p in poller.hits}
        assert any(n.startswith("shuffle_") and n.endswith(".data") for n in names), sorted(names)[:10]
        assert any(n.startswith("rdd_") for n in names), sorted(names)[:10]


@pytest.mark.java
@pytest.mark.slow
def test_tampered_map_output_never_yields_a_wrong_result(tmp_path: Path) -> None:
    report, poller, stderr = run_job(tmp_path, "exitless", "--tamper", rows=50_000)
    tamper = report["tamper"]
    assert tamper["map_outputs_flipped"] >= 2
    assert "SealIntegrityException" in stderr, "the reduce side did not report the flipped bytes"
    assert "FetchFailedException" in stderr and "is corrupted" in stderr  # Spark names the block
    # Spark recomputed the map outputs (equal result) or failed the job: never a wrong result.
    assert tamper["equal"] is True or (tamper["equal"] is None and tamper["error"]), tamper
    assert not poller.hits


# --- one format, two languages ---------------------------------------------------------


def jvm_sealing(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    jar = blocks.jar_path()
    return subprocess.run(
        ["java", "-cp", jar, "io.exitless.spark.Sealing", *args], input=stdin, capture_output=True, timeout=60
    )


@pytest.mark.java
@pytest.mark.parametrize("size", [0, 1, 187, 188, 189, 5000, 70_000])
def test_jvm_and_python_read_each_others_streams(size: int) -> None:
    key = exitless.generate_key()
    line = key.secret_bytes().hex().encode() + b"\n"
    data = bytes((i * 31 + size) % 251 for i in range(size))
    # 256-byte segments: segment 0 holds 256 - 68 - 16 = 172 bytes, the others 240
    py_sealed = exitless.seal_bytes(data, key, b"ctx", segment_size=256)
    opened = jvm_sealing("open", "ctx", stdin=line + py_sealed)
    assert opened.returncode == 0, opened.stderr.decode()
    assert opened.stdout == data
    jvm_sealed = jvm_sealing("seal", "ctx", "256", stdin=line + data)
    assert jvm_sealed.returncode == 0, jvm_sealed.stderr.decode()
    assert len(jvm_sealed.stdout) == len(py_sealed)
    assert exitless.open_bytes(jvm_sealed.stdout, key, b"ctx") == data


@pytest.mark.java
def test_jvm_rejects_truncation_tampering_and_a_wrong_context() -> None:
    key = exitless.generate_key()
    line = key.secret_bytes().hex().encode() + b"\n"
    data = bytes(range(256)) * 4  # 1024 bytes: segments 0..4 of 256
    sealed = exitless.seal_bytes(data, key, b"ctx", segment_size=256)
    cases = {
        "cut at a segment boundary": sealed[:512],
        "cut inside a segment": sealed[:600],
        "header only": sealed[:68],
        "flipped bit": sealed[:300] + bytes([sealed[300] ^ 1]) + sealed[301:],
        "segments swapped": sealed[:256] + sealed[512:768] + sealed[256:512] + sealed[768:],
        "trailing byte": sealed + b"\0",
    }
    for what, bad in cases.items():
        r = jvm_sealing("open", "ctx", stdin=line + bad)
        assert r.returncode == 3, f"{what}: exit {r.returncode}, {r.stderr.decode()}"
        assert any(w in r.stderr for w in (b"authentication failed", b"truncated", b"wrong length")), (
            what,
            r.stderr,
        )
        assert not r.stdout, f"{what}: plaintext came out"
    wrong = jvm_sealing("open", "other", stdin=line + sealed)
    assert wrong.returncode == 3 and not wrong.stdout
    junk = jvm_sealing("open", "ctx", stdin=line + b"not a sealed stream at all" * 4)
    assert junk.returncode == 4 and b"bad magic" in junk.stderr


# --- standalone cluster: the key reaches executors over Spark's RPC ------------------


@pytest.mark.java
@pytest.mark.slow
def test_standalone_cluster_executors_seal_with_the_drivers_key(
    tmp_path: Path, local_runs: dict[str, Any]
) -> None:
    """Two applications on one cluster: the executors get the block key from the driver
    over Spark's (authenticated, encrypted) RPC, then unwrap it through a KMS themselves."""
    from exitless.kms import LocalKms
    from test_spark_e2e import StandaloneCluster

    (tmp_path / "cluster").mkdir()
    cluster = StandaloneCluster(tmp_path / "cluster")
    ring = LocalKms.init(tmp_path / "ring.json").uri
    cluster.start()
    runs = {}
    try:
        for name, extra in (("rpc", []), ("kms", ["--block-key-kms", ring])):
            runs[name] = run_job(
                tmp_path,
                "exitless",
                "--master",
                cluster.url,
                "--conf",
                f"spark.authenticate.secret={cluster.secret}",
                "--conf",
                "spark.executor.memory=512m",
                "--conf",
                "spark.executor.cores=1",
                "--conf",
                "spark.cores.max=2",
                "--hold",
                "2",
                *extra,
                poll=cluster.local_dirs,
                name=name,
            )
    finally:
        cluster.stop()
    for name, (report, poller, stderr) in runs.items():
        # the same results as Spark's own codec on local[2]
        assert report["digests"] == local_runs["stock"][0]["digests"], name
        assert not poller.hits, f"{name}: canary readable in {sorted(poller.hits)[:5]}"
        blocks_seen = {p: h for p, h in poller.heads.items() if is_block_file(Path(p).name) and h}
        unsealed = {p: h for p, h in blocks_seen.items() if h != MAGIC}
        assert not unsealed, (name, list(unsealed.items())[:5])
        executors = {part for p in blocks_seen for part in Path(p).parts if part.startswith("executor-")}
        assert len(executors) >= 2, f"{name}: block files came from executors {executors}"
        assert any(Path(p).name.startswith("rdd_") for p in blocks_seen), name
        assert "SealIntegrityException" not in stderr, name
    kms_report = runs["kms"][0]
    assert kms_report["conf"].get("spark.exitless.blockKey.kms") == ring
    # what travels in the KMS way is the wrapped key alone, in the plugin's extra conf
    assert "spark.plugins.internal" not in runs["rpc"][2]
