"""The benchmark job behind ``python -m exitless_tools bench`` and ``run``: what to
measure (:class:`BenchConfig`), and :func:`run_bench`, which measures it and
returns the results object that ``results.json`` holds (schema in
``results.schema.json`` next to this file)."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from exitless import IntegrityError, generate_key, inspect, open_spill
from exitless.keys import Key

from . import machine as machine_facts
from .matrix import DEFAULT_POINTS, POINTS, run_matrix
from .runtime import run_rt_bench, unavailable_reason
from .smallfiles import BACKENDS as SMALL_FILE_BACKENDS
from .smallfiles import run_small_files

SCHEMA = "exitless-bench/1"
MiB = 1 << 20


@dataclass
class BenchConfig:
    """What one ``bench`` run measures (the ``config`` object of the JSON)."""

    points: list[str] = field(default_factory=lambda: list(DEFAULT_POINTS))
    segment_sizes: list[int] = field(default_factory=lambda: [4096, 65536, 1 << 20])
    bytes_per_point: int = 1 << 30
    reps: int = 3
    queue_depth: int = 8
    write_size: int = 1 << 20
    vcpus: int = 1
    directory: str = "bench-results"
    quick: bool = False
    runtime: bool = True
    runtime_runs: int = 5
    spark: bool = False
    spark_records: int = 1_000_000
    spark_memory: str = "32m"
    spark_reps: int = 3
    spark_backend: str | None = None
    integrity_check: bool = False
    #: Files per backend in the small-file row (None: 200 with ``quick``, else 1,000; 0: skip it).
    small_files: int | None = None


def filesystem(path: str) -> str:
    """The file system type that holds ``path`` (longest mount prefix in /proc/self/mounts)."""
    best, fstype = "", "unknown"
    real = os.path.realpath(path)
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


class Progress:
    """A tqdm progress bar on stderr when enabled and tqdm is installed; otherwise
    one line per phase. ``note`` prints above the bar."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        if enabled:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                self.enabled = False

    @contextmanager
    def phase(self, title: str, total: int) -> Iterator[Callable[[str], None]]:
        if not self.enabled:
            print(f"{title} ...", file=sys.stderr, flush=True)
            yield lambda _msg: None
            return
        from tqdm import tqdm

        with tqdm(
            total=total, desc=title, unit="step", file=sys.stderr, leave=True, dynamic_ncols=True
        ) as bar:
            self._bar = bar

            def step(msg: str) -> None:
                bar.set_postfix_str(msg, refresh=False)
                bar.update(1)

            yield step
            self._bar = None

    def note(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)


def check_integrity(directory: str, size: int = 16 * MiB) -> dict[str, object]:
    """The story in one minute: seal a spill, read it back byte for byte, then show
    that a flipped byte and a cut-off tail are both refused."""
    key, context = generate_key(), b"exitless-run/check"
    data = os.urandom(size)
    with tempfile.TemporaryDirectory(prefix="exitless-check-", dir=directory) as tmp:
        path = os.path.join(tmp, "spill.sealed")
        with open_spill(path, "wb", key, context) as f:
            f.write(data)
        with open_spill(path, "rb", key, context) as f:
            verified = f.read() == data
        info = inspect(path)
        results: dict[str, object] = {
            "bytes": size,
            "file_size": info.file_size,
            "segments": info.segments,
            "round_trip_verified": verified,
        }
        with open(path, "r+b") as raw:
            raw.seek(info.file_size // 2)
            b = raw.read(1)
            raw.seek(-1, io.SEEK_CUR)
            raw.write(bytes([b[0] ^ 1]))
        results["flipped_byte"] = _refused(path, key, context)
        with open_spill(path, "wb", key, context) as f:
            f.write(data)
        os.truncate(path, info.file_size - info.segment_size)
        results["truncated"] = _refused(path, key, context)
    return results


def _refused(path: str, key: Key, context: bytes) -> str:
    try:
        with open_spill(path, "rb", key, context) as f:
            f.read()
    except IntegrityError as e:
        return f"refused: {e}"
    return "NOT DETECTED"


def run_spark(cfg: BenchConfig, progress: Progress) -> dict[str, object]:
    """The spilling PySpark jobs on local[2], without and with exitless (alternating)."""
    try:
        import pyspark  # noqa: F401
    except ImportError as e:
        return {"skipped": f"pyspark is not installed ({e}); `make setup` installs it"}
    from exitless.spark.hook import TASK_LOG_ENV

    from .. import spark_bench

    os.environ.setdefault(TASK_LOG_ENV, "0")  # the summary has the counts; keep the terminal readable

    args = argparse.Namespace(
        n=cfg.spark_records,
        keys=2000,
        parts=4,
        memory=cfg.spark_memory,
        reps=cfg.spark_reps,
        backend=cfg.spark_backend,
        jobs=list(spark_bench.JOBS),
        per_file=0,
        dir=None,
    )
    steps = cfg.spark_reps * 2 * len(args.jobs)
    with progress.phase("Spark jobs (local[2], plain and exitless)", steps) as step:

        def log(line: str) -> None:
            step(" ".join(line.split()[1:4]))

        result = spark_bench.run(args, log=log)
    result.pop("machine", None)  # the report has one machine object
    result.pop("per_file_5kb", None)
    return result


def run_bench(
    cfg: BenchConfig, progress: Progress | None = None, argv: list[str] | None = None
) -> dict[str, Any]:
    """Runs everything ``cfg`` asks for and returns the results object."""
    progress = progress or Progress(False)
    unknown = [p for p in cfg.points if p not in POINTS]
    if unknown:
        raise ValueError(f"unknown backend points {unknown}; choose from {', '.join(POINTS)}")
    if cfg.vcpus > 1:
        os.environ["EXITLESS_VCPUS"] = str(cfg.vcpus)
    if cfg.small_files is None:
        cfg = replace(cfg, small_files=200 if cfg.quick else 1000)
    Path(cfg.directory).mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": " ".join(argv) if argv is not None else " ".join(sys.argv),
        "config": {**asdict(cfg), "directory_fs": filesystem(cfg.directory)},
        "points": {label: POINTS[label].about for label in cfg.points},
    }
    errors: list[str] = []
    phases: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = round(now - t, 1)
        t = now

    if cfg.integrity_check:
        results["integrity_check"] = check_integrity(cfg.directory)
        lap("integrity_check")

    if cfg.spark:
        try:
            results["spark"] = run_spark(cfg, progress)
        except Exception as e:
            results["spark"] = {"error": f"{type(e).__name__}: {e}"}
            errors.append(f"spark: {type(e).__name__}: {e}")
    else:
        results["spark"] = {"skipped": "not requested (--spark)"}
    lap("spark")

    cells = cfg.reps * len(cfg.segment_sizes) * len(cfg.points)
    title = f"IO matrix ({cfg.bytes_per_point // MiB} MiB per stream)"
    with progress.phase(title, cells) as step:
        results["matrix"] = run_matrix(
            cfg.directory,
            [POINTS[p] for p in cfg.points],
            cfg.segment_sizes,
            cfg.bytes_per_point,
            cfg.reps,
            queue_depth=cfg.queue_depth,
            write_size=cfg.write_size,
            parallel=cfg.vcpus > 1,
            step=step,
        )
    sqpoll = machine_facts.sqpoll_threads()
    lap("matrix")

    files = cfg.small_files or 0
    if files > 0:
        title = f"small files ({files} of 5,000 bytes per backend: write, read back, unlink)"
        with progress.phase(title, cfg.reps * len(SMALL_FILE_BACKENDS)) as step:
            small = run_small_files(cfg.directory, files, cfg.reps, step=step)
        results["small_files"] = small
        for row in small["rows"]:
            if (
                not row["files_written"]
                == row["files_read"]
                == row["files_verified"]
                == files * small["reps"]
            ):
                errors.append(
                    f"small files: {row['backend']} wrote {row['files_written']}, read {row['files_read']}, "
                    f"verified {row['files_verified']} of {files * small['reps']}"
                )
        if small["leftover_files"]:
            errors.append(f"small files: {small['leftover_files']} files left after unlinking")
    else:
        results["small_files"] = {"skipped": "not requested (small_files = 0)"}
    lap("small_files")

    if cfg.runtime:
        reason = unavailable_reason()
        if reason:
            results["runtime"] = {"skipped": reason}
        else:
            with progress.phase("runtime: exitless-rt vs tokio (cargo, release)", 1) as step:
                try:
                    results["runtime"] = run_rt_bench(cfg.runtime_runs, max(cfg.vcpus, 2))
                except (RuntimeError, OSError, ValueError) as e:
                    results["runtime"] = {"error": str(e)}
                    errors.append(f"runtime: {e}")
                step("done")
    else:
        results["runtime"] = {"skipped": "not requested"}
    lap("runtime")

    from .seal import seal_throughput  # here, so `python -m exitless_tools.bench.seal` runs it cleanly

    try:  # sealing in memory, exitless vs cryptography
        results["seal"] = seal_throughput(reps=3 if cfg.quick else 5)
    except Exception as e:
        results["seal"] = {"error": f"{type(e).__name__}: {e}"}
        errors.append(f"seal: {type(e).__name__}: {e}")
    lap("seal")

    facts = machine_facts.machine()
    facts["sqpoll_ran"] = sqpoll > 0
    facts["sqpoll_threads"] = sqpoll
    results["machine"] = facts
    results["summary"] = summarize(results)
    results["errors"] = errors
    results["phase_seconds"] = phases
    results["seconds"] = round(time.time() - started, 1)
    return results


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: per segment size, each point against plaintext; the
    default io_uring path against the modeled OCALL path as users have it (page
    cache) and against sync; on equal terms, O_DIRECT io_uring against O_DIRECT
    OCALLs; the Spark overhead; the runtime ratios."""
    by_seg: dict[str, dict[str, Any]] = {}
    for row in results["matrix"]:
        by_seg.setdefault(str(row["segment_size"]), {})[row["point"]] = row
    headline: dict[str, Any] = {}
    for seg, rows in by_seg.items():
        h: dict[str, Any] = {}
        plain = rows.get("plaintext")
        for label, row in rows.items():
            if plain and label != "plaintext":
                h[f"{label}_vs_plaintext"] = round(row["gb_per_s"] / plain["gb_per_s"], 3)
        uring = rows.get("uring")
        for other in ("ocall-8200", "ocall-17000", "sync"):
            if uring and other in rows:
                h[f"uring_over_{other}_throughput"] = round(uring["gb_per_s"] / rows[other]["gb_per_s"], 3)
        for ocall in ("ocall-8200", "ocall-17000"):
            if uring and ocall in rows:
                h[f"{ocall}_exits_per_uring_exit"] = round(rows[ocall]["exits"] / max(uring["exits"], 1), 1)
        direct, ocall_direct = rows.get("uring-direct"), rows.get("ocall-8200-direct")
        if direct and ocall_direct:
            h["uring-direct_over_ocall-8200-direct_throughput"] = round(
                direct["gb_per_s"] / ocall_direct["gb_per_s"], 3
            )
        headline[seg] = h
    spark = results.get("spark", {})
    rt = results.get("runtime", {})
    return {
        "by_segment": headline,
        "spark_overhead": spark.get("total", {}).get("overhead") if isinstance(spark, dict) else None,
        "runtime_over_tokio": rt.get("ratio_exitless_over_tokio") if isinstance(rt, dict) else None,
    }
