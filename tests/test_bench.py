"""`python -m exitless_tools bench --quick` (what CI runs) and `run` (the main job) produce
a results.json that matches its schema, report.md and PNG plots, and the
deterministic facts in it hold: exit counts follow the OCALL model exactly, the
model's cycles change time and never counts, io_uring makes far fewer exits.
Times are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import exitless
import exitless_tools.bench
from exitless_tools.bench.job import SCHEMA
from io_model import write_sizes

SCHEMA_PATH = Path(exitless_tools.bench.__file__).parent / "results.schema.json"
MIB = 8
PNG = b"\x89PNG\r\n\x1a\n"


def tools_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exitless_tools", *args], capture_output=True, text=True, timeout=timeout
    )


def load(out: Path) -> tuple[dict[str, Any], Path]:
    runs = list(out.iterdir())
    assert len(runs) == 1, runs
    results = json.loads((runs[0] / "results.json").read_text())
    jsonschema.validate(results, json.loads(SCHEMA_PATH.read_text()))
    return results, runs[0]


def expected_ocall_exits(seg: int, plaintext: int) -> tuple[int, int]:
    """(segments, modeled exits) of a sealed stream: one exit per pwrite up to 16 KiB,
    three above (the SGX SDK's bounce path in Occlum's hostfs). A pwrite is one
    segment below EXITLESS_COALESCE_AFTER, then up to EXITLESS_IO_SIZE of segments."""
    file_len = exitless.sealed_length(plaintext, seg)
    segments = -(-file_len // seg)
    final = file_len - (segments - 1) * seg
    sizes = [final if i == segments - 1 else seg for i in range(segments)]
    return segments, sum(3 if w > 16384 else 1 for w in write_sizes(sizes, seg))


@pytest.fixture(scope="module")
def quick(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results"
    proc = tools_cli(
        "bench",
        "--quick",
        "--total",
        f"{MIB}M",
        "--reps",
        "1",
        "--segments",
        "4K,64K",
        "--runtime-runs",
        "1",
        "--dir",
        str(tmp),
        "--out",
        str(out),
        "--json",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, run_dir = load(out)
    return results, run_dir, proc


@pytest.mark.slow
def test_quick_bench_writes_schema_valid_json_report_and_plots(
    quick: tuple[dict[str, Any], Path, Any],
) -> None:
    results, run_dir, proc = quick
    assert results["schema"] == SCHEMA and results["errors"] == []
    assert json.loads(proc.stdout) == results, "--json prints the same object results.json holds"
    assert "segment" in proc.stderr and "exits/GiB" in proc.stderr, (
        "the summary table goes to stderr with --json"
    )
    cfg = results["config"]
    assert cfg["quick"] and cfg["bytes_per_point"] == MIB << 20 and cfg["segment_sizes"] == [4096, 65536]
    cells = {(r["point"], r["segment_size"]) for r in results["matrix"]}
    assert cells == {(p, s) for p in cfg["points"] for s in (4096, 65536)}
    assert {"uring", "uring-direct", "switchless", "ocall-8200", "ocall-17000", "sync", "plaintext"} <= set(
        cfg["points"]
    )
    m = results["machine"]
    assert m["cores"] >= 1 and m["kernel"] and m["cpu"]
    assert set(m["cpu_has"]) >= {"aes", "vaes", "avx512f"}
    assert m["ocall_model"]["cycles_per_exit"] == 8200 and "HotCalls" in m["ocall_model"]["source"]
    if m["io_uring"]["available"]:
        assert m["sqpoll_ran"], "the uring points ran, so an iou-sqp thread existed"
        assert {"single_mmap", "nodrop"} <= set(m["io_uring"]["features"])
    report = (run_dir / "report.md").read_text()
    assert "# exitless benchmark report" in report and "| 64 KiB | ocall-8200 |" in report
    for name in results["plots"].values():
        assert (run_dir / name).read_bytes().startswith(PNG), name
    assert {"throughput.png", "exits.png", "runtime.png"} <= set(results["plots"].values())
    rt = results["runtime"]
    assert rt["exitless"]["vcpus"] == 2 and rt["tokio"]["workers"] == 2
    assert rt["exitless"]["spawn_join_ns_per_task"] > 0


@pytest.mark.slow  # the quick bench run it reads
def test_cpu_is_split_by_thread_class_and_the_small_file_row_is_there(
    quick: tuple[dict[str, Any], Path, Any],
) -> None:
    results, run_dir, proc = quick
    uring = results["machine"]["io_uring"]["available"]
    for r in results["matrix"]:
        for key in (
            "wall_s_per_gib",
            "enclave_cpu_s_per_gib",
            "enclave_thread_cpu_s_per_gib",
            "modeled_exit_cpu_s_per_gib",
            "kernel_cpu_s_per_gib",
            "sqpoll_cpu_s_per_gib",
            "iowq_cpu_s_per_gib",
            "host_worker_cpu_s_per_gib",
        ):
            assert isinstance(r[key], float | int) and r[key] >= 0, (key, r)
        assert isinstance(r["iou_wrk_threads"], int) and 0 <= r["iou_wrk_active"] <= r["iou_wrk_threads"]
        assert r["enclave_cpu_s_per_gib"] == pytest.approx(
            r["enclave_thread_cpu_s_per_gib"] + r["modeled_exit_cpu_s_per_gib"], abs=0.002
        )
        assert r["kernel_cpu_s_per_gib"] == pytest.approx(
            r["sqpoll_cpu_s_per_gib"] + r["iowq_cpu_s_per_gib"], abs=0.002
        )
        if r["backend"] == "sync":
            assert r["modeled_exit_cpu_s_per_gib"] == 0, "sync has no exit model"
        if r["backend"] in ("uring", "ocall") and r["stats"]["stream_syscalls"] == 0:
            # Their exits spin the model's cost on the caller (inside the thread CPU):
            # nothing is left to add.
            assert r["modeled_exit_cpu_s_per_gib"] == 0, r
        if r["backend"] != "switchless":
            assert r["host_worker_cpu_s_per_gib"] == 0
        if r["backend"] != "uring":
            assert r["sqpoll_tail_cpu_s"] is None
    small = results["small_files"]
    assert results["config"]["small_files"] == small["files"] == 200, "--quick: 200 files per backend"
    assert small["file_size"] == 5000 and small["leftover_files"] == 0
    assert [r["backend"] for r in small["rows"]] == (
        ["uring", "uring-sqpoll", "uring-nosqpoll"] if uring else []
    ) + ["ocall", "sync", "plaintext"]
    for r in small["rows"]:
        assert r["files_written"] == r["files_read"] == r["files_verified"] == 200 * small["reps"]
        assert isinstance(r["us_per_file"], float) and isinstance(r["enclave_cpu_us_per_file"], float)
        assert (r["exits_per_file"] is None) == (r["backend"] == "plaintext")
    report = (run_dir / "report.md").read_text()
    assert (
        "## Small files" in report
        and "enclave CPU s/GiB" in report
        and "cpu.png" in results["plots"].values()
    )
    assert "enclave CPU s/GiB" in proc.stderr and "Small files: 200 files" in proc.stderr


@pytest.mark.slow  # the quick bench run it reads
def test_exit_counts_follow_the_model_exactly(quick: tuple[dict[str, Any], Path, Any]) -> None:
    results = quick[0]
    rows = {(r["point"], r["segment_size"]): r for r in results["matrix"]}
    for seg in (4096, 65536):
        segments, exits = expected_ocall_exits(seg, MIB << 20)
        for point in ("ocall-8200", "ocall-17000", "ocall-8200-direct"):
            st = rows[(point, seg)]["stats"]
            # Plus the file's lifecycle through the backend: open and close (and, for
            # O_DIRECT, space reserved and the file trimmed), one exit each.
            assert st["file_ops"] >= 2 and (point.endswith("direct") or st["file_ops"] == 2), (point, seg, st)
            assert st["segments"] == segments and st["exits"] == exits + st["file_ops"], (point, seg, st)
        assert rows[("ocall-8200", seg)]["exits"] == rows[("ocall-17000", seg)]["exits"], (
            "cycles change time, not counts"
        )
        assert (
            rows[("ocall-8200", seg)]["ocall_cycles"] == 8200
            and rows[("ocall-17000", seg)]["ocall_cycles"] == 17000
        )
        for point in ("sync", "plaintext"):
            assert rows[(point, seg)]["stats"]["exits"] == 0, "sync has no exit model"
        plain = rows[("plaintext", seg)]
        assert plain["sealed"] is False and plain["stats"]["segments"] == (MIB << 20) // seg, (
            "the same IO pattern, unsealed"
        )
        sw = rows[("switchless", seg)]["stats"]
        assert sw["exits"] == sw["fallbacks"], "switchless exits only when it falls back"
        if results["machine"]["io_uring"]["available"]:
            u, ud = rows[("uring", seg)], rows[("uring-direct", seg)]
            # The twin is O_DIRECT; the default path stays in the page cache.
            assert ud["direct"] is True and u["direct"] is False
            for row in (u, ud):
                assert row["stats"]["completions_rejected"] == 0 and row["stats"]["segments"] == segments
            # Without SQPOLL (two cores), submissions ride the enters that wait, and each
            # waiting enter reaps at least one completion: at most one exit per IO or file
            # op, however the scheduler batches them. OCALL pays one per op and more.
            ocall = rows[("ocall-8200", seg)]["exits"]
            for row in (u, ud):
                st = row["stats"]
                assert 0 < row["exits"] <= st["ops"] + st["file_ops"] < ocall, (seg, row["point"], st)
            h = results["summary"]["by_segment"][str(seg)]
            assert h["ocall-8200_exits_per_uring_exit"] == pytest.approx(ocall / u["exits"], abs=0.05)
            assert {"uring_over_sync_throughput", "uring-direct_over_ocall-8200-direct_throughput"} <= set(h)


def test_bad_options_are_usage_errors_that_name_the_problem() -> None:
    p = tools_cli("bench", "--segments", "64K,100")
    assert p.returncode == 2 and "between 256 bytes and 1 GiB" in p.stderr
    p = tools_cli("bench", "--backends", "uring,warp-drive")
    assert p.returncode == 2 and "warp-drive" in p.stderr and "ocall-8200" in p.stderr
    p = tools_cli("bench", "--total", "lots")
    assert p.returncode == 2 and "not a size: 'lots'" in p.stderr


@pytest.mark.slow
@pytest.mark.java
def test_the_main_job_runs_spark_with_and_without_exitless(tmp_path: Path) -> None:
    """`python -m exitless_tools run` (make run), shrunk: the integrity check refuses a flipped byte
    and a cut tail, both Spark modes ran and the exitless one sealed its spills."""
    out = tmp_path / "results"
    proc = tools_cli(
        "run",
        "--total",
        "4M",
        "--reps",
        "1",
        "--segments",
        "64K",
        "--backends",
        "ocall-8200,sync,plaintext",
        "--spark-records",
        "60000",
        "--spark-reps",
        "1",
        "--no-runtime",
        "--dir",
        str(tmp_path),
        "--out",
        str(out),
        "--no-progress",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, _ = load(out)
    check = results["integrity_check"]
    assert check["round_trip_verified"] and check["flipped_byte"].startswith("refused")
    assert check["truncated"].startswith("refused")
    spark = results["spark"]
    assert spark["config"]["master"] == "local[2]" and spark["config"]["python_worker_memory"] == "8m"
    sealed = [r for job in spark["jobs"].values() for r in job["sealed_per_run"]]
    assert sum(r["files_written"] for r in sealed) > 0, "the exitless runs sealed spill files"
    assert all(r["files_read"] == r["files_written"] for r in sealed)
    if exitless.backends()["uring"]["available"]:
        # The hook's default (auto) puts every spill file through io_uring, and says so.
        assert all(r["files_written_uring"] == r["files_written"] for r in sealed)
        assert "of them through io_uring" in proc.stdout
    assert results["summary"]["spark_overhead"] == spark["total"]["overhead"]
    assert "spark.png" in results["plots"].values() and "Spark (local[2]" in proc.stdout
    assert "Integrity:" in proc.stdout and "flipped byte refused" in proc.stdout
