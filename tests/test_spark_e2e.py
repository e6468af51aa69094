"""Sealed PySpark spills in real Spark: local[2], then a standalone cluster (a
master and two workers started here, as separate processes, with pyspark's own
spark-class).

Each application is set up only through configuration
(``exitless.spark.configure``) and runs unchanged job code: groupByKey,
combineByKey, reduceByKey and sortByKey over values that all carry a canary,
with ``spark.python.worker.memory=2m`` so the Python workers spill. Checked:

- results equal plain Python's;
- the workers' counters (``EXITLESS_SPARK_STATS_DIR``) show sealed spill files
  written and read back;
- a background thread reading every file under the local directories while the
  jobs run sees Python spill files and never a readable canary. The JVM's own
  shuffle files are Spark's to protect (``spark.io.encryption.enabled``, set
  here), Python's are exitless's;
- the poller itself finds the canary in stock PySpark spill files, on disk and in a
  real local[2] application without exitless (positive controls);
- with ``spark.python.use.daemon=false`` the worker module seals the spills;
- on the standalone cluster, both executors spilled sealed files.

Java is required: without it the tests that run Spark are skipped, with the reason, and
under `make test` (which installs it through scripts/system-deps.sh) they fail
(EXITLESS_REQUIRE_JAVA=1, tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyspark  # installed by `make setup`: missing pyspark is a failure, not a skip
import pytest
from pyspark.sql import SparkSession

import exitless.spark
import spark_support as jobs
from exitless.spark import blocks, hook
from spark_support import CANARY, CanaryPoller

WORKER_MEMORY = "2m"  # far below a worker's RSS: every memory check spills
N = 120_000
KEYS_FEW = 64
KEYS_MANY = 30_000
PARTS = 4
SPARK_HOME = os.path.dirname(pyspark.__file__)


def base_builder(app: str, local_dir: Path) -> SparkSession.Builder:
    """Settings shared by both applications, the same as a job without exitless would use."""
    return (
        SparkSession.builder.appName(app)
        .config("spark.python.worker.memory", WORKER_MEMORY)
        .config("spark.local.dir", str(local_dir))
        .config("spark.io.encryption.enabled", "true")  # the JVM's own shuffle files: Spark's job
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.default.parallelism", str(PARTS))
        .config("spark.sql.shuffle.partitions", str(PARTS))
        .config("spark.python.worker.reuse", "true")
        # PySpark keeps one driver JVM per process and its classpath is fixed at start:
        # the stock applications carry exitless's jar too, so later ones can use it
        .config("spark.driver.extraClassPath", blocks.jar_path())
    )


def totals(stats_dir: Path) -> dict[str, int]:
    out = {"processes": 0, "files_written": 0, "bytes_written": 0, "sealed_bytes_written": 0, "files_read": 0}
    if stats_dir.exists():
        for entry in hook.iter_stats_files(stats_dir):
            out["processes"] += 1
            for k in ("files_written", "bytes_written", "sealed_bytes_written", "files_read"):
                out[k] += int(entry[k])
    return out


def run_jobs_and_check(
    spark: SparkSession, poll_root: Path, stats_dir: Path, report: dict[str, Any]
) -> set[str]:
    """The four jobs, each under a poller, each checked against plain Python; returns
    the Python spill files the poller saw."""
    sc = spark.sparkContext
    cases = [
        # First, while the reused Python workers are fresh: ExternalSorter spills only once a
        # worker's RSS grows 5% past what it was when the sort began, and on pyspark 4.3 a worker
        # that earlier jobs had grown sometimes sorted 60,000 records within that margin.
        # two partitions: each sort task must outgrow its memory check to spill
        ("sortByKey", lambda: jobs.sort_job(sc, N, 2), lambda: jobs.sort_expected(N)),
        (
            "groupByKey",
            lambda: jobs.group_job(sc, N, KEYS_FEW, PARTS),
            lambda: jobs.group_expected(N, KEYS_FEW),
        ),
        (
            "combineByKey",
            lambda: jobs.combine_job(sc, N, KEYS_MANY, PARTS),
            lambda: jobs.combine_expected(N, KEYS_MANY),
        ),
        (
            "reduceByKey",
            lambda: jobs.reduce_job(sc, N, KEYS_MANY, PARTS),
            lambda: jobs.reduce_expected(N, KEYS_MANY),
        ),
    ]
    all_python_spills: set[str] = set()
    for name, job, expected in cases:
        before = totals(stats_dir)
        started = time.monotonic()
        with CanaryPoller(poll_root) as poller:
            got = job()
        after = totals(stats_dir)
        report[name] = {
            "seconds": round(time.monotonic() - started, 1),
            "sealed_files": after["files_written"] - before["files_written"],
            "python_spill_files_seen": len(poller.python_spills),
            "files_read_by_poller": poller.reads,
        }
        print(f"{name}: {report[name]}", file=sys.stderr)
        assert got == expected(), f"{name}: result differs from plain Python"
        assert not poller.hits, f"{name}: canary readable in {sorted(poller.hits)[:5]}"
        assert after["files_written"] > before["files_written"], f"{name}: no sealed spill file written"
        assert after["files_read"] > before["files_read"], f"{name}: no sealed spill file read back"
        all_python_spills |= poller.python_spills
    # The poller did look at spill files while they existed (they are gone after each task).
    assert len(all_python_spills) >= 10, f"the poller saw only {len(all_python_spills)} Python spill files"
    report["sample_spill_paths"] = sorted(all_python_spills)[:3]
    final = totals(stats_dir)
    assert final["processes"] >= 2
    assert final["sealed_bytes_written"] > final["bytes_written"] > 0
    report["totals"] = final
    return all_python_spills


def test_poller_finds_plaintext_canary(tmp_path: Path) -> None:
    """Positive control without Spark: a stock (plaintext) PySpark spill is caught."""
    import zlib

    payload = zlib.compress(b"\x80\x05" + CANARY * 3, 1)
    (tmp_path / "python" / "1").mkdir(parents=True)
    (tmp_path / "python" / "1" / "0").write_bytes(len(payload).to_bytes(4, "big") + payload)
    (tmp_path / "raw").write_bytes(b"xx" + CANARY)
    (tmp_path / "clean").write_bytes(os.urandom(4096))
    with CanaryPoller(tmp_path) as poller:
        time.sleep(0.1)
    assert set(poller.hits) == {str(tmp_path / "python" / "1" / "0"), str(tmp_path / "raw")}
    assert poller.python_spills == {str(tmp_path / "python" / "1" / "0")}


# --- local[2] ---------------------------------------------------------------------


@pytest.mark.java
@pytest.mark.slow
class TestLocalWithoutExitless:
    """Positive control in real Spark: the same settings without exitless, and the
    poller does find the canary in the Python workers' (stock) spill files."""

    def test_stock_spills_are_readable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        local_dir = tmp_path / "local"
        local_dir.mkdir()
        monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
        builder = (
            base_builder("exitless-e2e-stock", local_dir)
            .master("local[2]")
            # the JVM keeps the first application's settings as defaults: name the stock modules
            .config("spark.python.daemon.module", "pyspark.daemon")
            .config("spark.python.worker.module", "pyspark.worker")
        )
        jobs.register_by_value()
        spark = builder.getOrCreate()
        try:
            with CanaryPoller(local_dir) as poller:
                got = jobs.combine_job(spark.sparkContext, N, KEYS_MANY, PARTS)
        finally:
            spark.stop()
        assert got == jobs.combine_expected(N, KEYS_MANY)
        python_hits = [p for p in poller.hits if p in poller.python_spills]
        assert len(python_hits) >= 10, (
            f"the poller read {len(poller.python_spills)} stock spill files and found the canary in {len(python_hits)}"
        )


@pytest.fixture(scope="class")
def local_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SparkSession, Path, Path]]:
    root = tmp_path_factory.mktemp("spark-local")
    local_dir, stats_dir = root / "local", root / "stats"
    local_dir.mkdir()
    builder = exitless.spark.configure(
        base_builder("exitless-e2e-local", local_dir).master("local[2]"), stats_dir=stats_dir
    )
    jobs.register_by_value()
    spark = builder.getOrCreate()
    try:
        yield spark, local_dir, stats_dir
    finally:
        spark.stop()


@pytest.mark.java
@pytest.mark.slow
class TestLocal:
    def test_configured(self, local_session: tuple[SparkSession, Path, Path]) -> None:
        spark, _, _ = local_session
        conf = spark.sparkContext.getConf()
        assert conf.get("spark.python.daemon.module") == "exitless.spark.daemon"
        assert conf.get("spark.python.worker.module") == "exitless.spark.worker"
        assert spark.sparkContext.environment["EXITLESS_SPARK_STATS_DIR"]

    def test_jobs_spill_sealed(
        self, local_session: tuple[SparkSession, Path, Path], record_property: Any
    ) -> None:
        spark, local_dir, stats_dir = local_session
        report: dict[str, Any] = {}
        run_jobs_and_check(spark, local_dir, stats_dir, report)
        record_property("exitless_spark_local", json.dumps(report))
        print("local[2]:", json.dumps(report))


@pytest.mark.java
@pytest.mark.slow
class TestLocalWithoutDaemon:
    """``spark.python.use.daemon=false``: Spark starts ``exitless.spark.worker`` itself
    (``python -m``) for each worker instead of forking from the daemon."""

    def test_worker_module_seals(self, tmp_path: Path) -> None:
        local_dir, stats_dir = tmp_path / "local", tmp_path / "stats"
        local_dir.mkdir()
        builder = (
            base_builder("exitless-e2e-no-daemon", local_dir)
            .master("local[2]")
            .config("spark.python.use.daemon", "false")
        )
        exitless.spark.configure(builder, stats_dir=stats_dir)
        jobs.register_by_value()
        spark = builder.getOrCreate()
        try:
            with CanaryPoller(local_dir) as poller:
                got = jobs.reduce_job(spark.sparkContext, N, KEYS_MANY, PARTS)
        finally:
            spark.stop()
        assert got == jobs.reduce_expected(N, KEYS_MANY)
        assert not poller.hits, f"canary readable in {sorted(poller.hits)[:5]}"
        assert poller.python_spills, "the poller saw no Python spill files"
        counted = totals(stats_dir)
        assert counted["files_written"] > 0 and counted["files_read"] == counted["files_written"]
        # one process per task here (a daemon reuses its two forked workers): the
        # worker module, not the daemon, sealed these
        assert counted["processes"] >= PARTS, counted


# --- standalone cluster --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, check: Any, timeout: float, procs: list[subprocess.Popen[bytes]], logs: list[Path]
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p, log in zip(procs, logs, strict=True):
            if p.poll() is not None:
                raise RuntimeError(
                    f"{what}: {p.args[2] if isinstance(p.args, list) else p.args} exited with {p.returncode}:\n{log.read_text()[-3000:]}"
                )
        result = check()
        if result:
            return result
        time.sleep(0.5)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}" for log in logs)
    raise TimeoutError(f"{what}: not ready after {timeout} s\n{tails}")


class StandaloneCluster:
    """A Spark standalone master and two workers on 127.0.0.1, each its own process
    group (so an executor it forks goes with it), with Spark's authentication on
    (exitless hands the block key to executors over Spark's RPC): applications join it
    through :meth:`join`, which gives them the cluster's secret."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = secrets.token_hex(32)
        self.local_dirs = root / "worker-local"
        self.local_dirs.mkdir()
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
        env.update(
            SPARK_HOME=SPARK_HOME,
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_DAEMON_MEMORY="256m",
            SPARK_LOCAL_DIRS=str(self.local_dirs),  # executors' (and their Python workers') scratch space
            SPARK_NO_DAEMONIZE="1",
            # the daemons' side of spark.authenticate (a test cluster: on the command line)
            SPARK_MASTER_OPTS=f"-Dspark.authenticate=true -Dspark.authenticate.secret={self.secret}",
            SPARK_WORKER_OPTS=f"-Dspark.authenticate=true -Dspark.authenticate.secret={self.secret}",
        )
        return env

    def join(self, builder: SparkSession.Builder) -> SparkSession.Builder:
        """``builder`` with this cluster's master URL and authentication secret."""
        return (
            builder.master(self.url)
            .config("spark.authenticate", "true")
            .config("spark.authenticate.secret", self.secret)
        )

    def _start(self, name: str, *args: str) -> None:
        log = self.root / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.procs.append(
                subprocess.Popen(
                    [os.path.join(SPARK_HOME, "bin", "spark-class"), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._env(),
                    cwd=self.root,
                    start_new_session=True,
                )
            )

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                return int(json.load(r).get("aliveworkers", 0))
        except OSError:
            return 0

    def start(self) -> None:
        self._start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.ui_port),
        )
        for i in range(2):
            work = self.root / f"work-{i}"
            work.mkdir()
            self._start(
                f"worker-{i}",
                "org.apache.spark.deploy.worker.Worker",
                self.url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "768m",
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(work),
            )
        wait_for("two workers registered", lambda: self.alive_workers() >= 2, 120, self.procs, self.logs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


@pytest.fixture(scope="class")
def cluster_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SparkSession, StandaloneCluster, Path]]:
    root = tmp_path_factory.mktemp("spark-standalone")
    cluster = StandaloneCluster(root)
    try:
        cluster.start()
        stats_dir = root / "stats"
        driver_local = root / "driver-local"
        driver_local.mkdir()
        builder = (
            cluster.join(base_builder("exitless-e2e-standalone", driver_local))
            .config("spark.executor.memory", "512m")
            .config("spark.executor.cores", "1")
            .config("spark.cores.max", "2")
        )
        exitless.spark.configure(builder, stats_dir=stats_dir, python_executable=sys.executable)
        jobs.register_by_value()
        spark = builder.getOrCreate()
        try:
            yield spark, cluster, stats_dir
        finally:
            spark.stop()
    finally:
        cluster.stop()


@pytest.mark.java
@pytest.mark.slow
class TestStandalone:
    def test_two_executors(self, cluster_session: tuple[SparkSession, StandaloneCluster, Path]) -> None:
        spark, cluster, _ = cluster_session
        assert spark.sparkContext.master == cluster.url
        assert cluster.alive_workers() == 2
        status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus
        deadline = time.monotonic() + 60
        while status().size() < 3 and time.monotonic() < deadline:  # the driver and two executors
            time.sleep(0.5)
        assert status().size() == 3

    def test_jobs_spill_sealed(
        self, cluster_session: tuple[SparkSession, StandaloneCluster, Path], record_property: Any
    ) -> None:
        spark, cluster, stats_dir = cluster_session
        report: dict[str, Any] = {}
        spills = run_jobs_and_check(spark, cluster.local_dirs, stats_dir, report)
        # the spills happened inside both workers' per-executor directories
        executors = {part for p in spills for part in Path(p).parts if part.startswith("executor-")}
        report["executors_that_spilled"] = len(executors)
        assert len(executors) == 2, f"spills came from executors {executors}"
        record_property("exitless_spark_standalone", json.dumps(report))
        print("standalone:", json.dumps(report))
