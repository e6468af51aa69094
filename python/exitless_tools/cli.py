"""``python -m exitless_tools COMMAND``: the checkout's tools, the benchmarks and the
main job (``make run``), which are not part of the ``exitless`` package or its wheel.

- ``run``: the main job (``make run``): a sealed-stream integrity check, the spilling
  PySpark jobs with and without exitless, the quick IO matrix, the runtime against
  tokio; a report in ``bench-results/<timestamp>/``.
- ``bench``: the benchmark matrix and report (``make bench`` runs it ``--spark``).
- ``suites``: sealing against ``cryptography`` and vCPU scaling (:mod:`.bench.suites`).
- ``stress``: many concurrent streams, then one very long one (:mod:`.stress`).
- ``spark-bench``: the PySpark jobs alone (:mod:`.spark_bench`).
- ``dataset-bench``: sealed datasets against plaintext ones (:mod:`.dataset_bench`).
- ``verify-spark``: the hook's and the JVM library's assumptions against a PySpark
  release's sources and jars (:mod:`.verify_spark`).
- ``blocks-bench``: the Spark JVM's blocks with lz4, Spark's IO encryption and exitless
  (:mod:`.blocks_bench`).

``COMMAND --help`` lists each one's options. The IO matrix needs the bench library
(``make bench-lib``, :mod:`.bench.benchlib`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from exitless import ExitlessError

PROG = "python -m exitless_tools"


_SUFFIXES = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def _size(text: str) -> int:
    """A byte count: 65536, 64K, 64KiB, 1M, 1G (binary units)."""
    t = text.strip().lower().replace(" ", "")
    digits = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(digits) :]
    if not digits.isdigit() or unit not in _SUFFIXES:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 4096, 64K, 1M, 1G)")
    value = int(digits) * _SUFFIXES[unit]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _sizes(text: str) -> list[int]:
    sizes = [_size(part) for part in text.split(",") if part.strip()]
    for s in sizes:
        if not 256 <= s <= 1 << 30:
            raise argparse.ArgumentTypeError(f"segment sizes must be between 256 bytes and 1 GiB, got {s}")
    if not sizes:
        raise argparse.ArgumentTypeError("no segment sizes")
    return sizes


def _points(text: str) -> list[str]:
    from .bench.matrix import POINTS

    if text == "all":
        return list(POINTS)
    labels = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in labels if t not in POINTS]
    if unknown or not labels:
        raise argparse.ArgumentTypeError(
            f"unknown backend point(s) {unknown}; choose from: all, {', '.join(POINTS)}"
        )
    return labels


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


#: (quick, full) defaults of the options left unset.
_PROFILES: dict[str, tuple[int | str, int | str]] = {
    "total": (64 << 20, 1 << 30),
    "reps": (3, 3),
    "runtime_runs": (3, 5),
    "spark_records": (300_000, 1_000_000),
    "spark_memory": ("8m", "32m"),
    "spark_reps": (2, 3),
}


def _bench(args: argparse.Namespace) -> int:
    import time

    from .bench.benchlib import load
    from .bench.job import BenchConfig, Progress, run_bench
    from .bench.report import summary_table, write

    load()  # the bench library, before minutes of other work: a clear error if it is missing

    main_job = args.command == "run"
    quick = args.quick or (main_job and not args.full)
    for name, (q, full) in _PROFILES.items():
        if getattr(args, name) is None:
            setattr(args, name, q if quick else full)
    spark = args.spark if args.spark is not None else main_job
    cfg = BenchConfig(
        points=args.backends,
        segment_sizes=args.segments,
        bytes_per_point=args.total,
        reps=args.reps,
        queue_depth=args.queue_depth,
        write_size=args.write_size,
        vcpus=args.vcpus,
        directory=args.dir,
        quick=quick,
        runtime=args.runtime,
        runtime_runs=args.runtime_runs,
        spark=spark,
        spark_records=args.spark_records,
        spark_memory=args.spark_memory,
        spark_reps=args.spark_reps,
        spark_backend=args.spark_backend,
        integrity_check=main_job,
    )
    progress = Progress(sys.stderr.isatty() if args.progress is None else args.progress)
    results = run_bench(cfg, progress, argv=[PROG, *args.argv])
    outdir = Path(args.out) / time.strftime("%Y%m%dT%H%M%S")
    paths = write(results, outdir, plots=args.plots)
    text = summary_table(results)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(results, indent=2))
    else:
        print(text)
    where = f"wrote {paths['json']}, {paths['report'].name}" + "".join(
        f", {f}" for f in results["plots"].values()
    )
    print(where, file=sys.stderr if args.json else sys.stdout)
    if results.get("plots_skipped"):
        print(f"plots skipped: {results['plots_skipped']}", file=sys.stderr)
    bad = list(results["errors"])
    check = results.get("integrity_check")
    if check and not (
        check["round_trip_verified"]
        and check["flipped_byte"].startswith("refused")
        and check["truncated"].startswith("refused")
    ):
        bad.append("the integrity check failed")
    return 1 if bad else 0


def _bench_arguments(b: argparse.ArgumentParser, main_job: bool) -> None:
    from .bench.matrix import DEFAULT_POINTS

    profile = "--full" if main_job else "--quick"
    b.add_argument(
        "--quick",
        action="store_true",
        help="small streams and fewer repetitions (CI): 64 MiB per stream"
        + (" (the default here)" if main_job else ""),
    )
    if main_job:
        b.add_argument(
            "--full",
            action="store_true",
            help="1 GiB streams and the 1M-record Spark jobs (several times longer)",
        )
    b.add_argument(
        "--segments",
        type=_sizes,
        default=[4096, 65536, 1 << 20],
        help="segment sizes, comma-separated (default 4K,64K,1M)",
    )
    b.add_argument(
        "--backends",
        type=_points,
        default=list(DEFAULT_POINTS),
        metavar="POINTS",
        help=f"backend points, comma-separated, or 'all' (default {','.join(DEFAULT_POINTS)})",
    )
    b.add_argument(
        "--total",
        type=_size,
        help=f"bytes per stream (default 64M with --quick, else 1G; {profile} changes it)",
    )
    b.add_argument("--reps", type=_positive, help="interleaved rounds; the median is reported (default 3)")
    b.add_argument(
        "--queue-depth", type=_positive, default=8, help="segments in flight per stream (default 8)"
    )
    b.add_argument("--write-size", type=_size, default=1 << 20, help="bytes per write call (default 1M)")
    b.add_argument(
        "--vcpus",
        type=_positive,
        default=1,
        help="vCPUs that seal each stream (default 1: the caller alone); the runtime comparison uses max(N, 2)",
    )
    b.add_argument(
        "--dir",
        default="bench-results",
        help="where the streams are written: a disk file system, so O_DIRECT applies (default bench-results)",
    )
    b.add_argument(
        "--out", default="bench-results", help="results go to OUT/<timestamp>/ (default bench-results)"
    )
    b.add_argument(
        "--spark",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the spilling PySpark jobs with and without exitless (needs pyspark and Java; default: "
        + ("on" if main_job else "off")
        + ")",
    )
    b.add_argument(
        "--spark-records",
        type=_positive,
        dest="spark_records",
        help="records per Spark job (default 300000 quick, 1000000 full)",
    )
    b.add_argument(
        "--spark-memory",
        dest="spark_memory",
        help="spark.python.worker.memory (default 8m quick: every check spills; 32m full)",
    )
    b.add_argument(
        "--spark-reps",
        type=_positive,
        dest="spark_reps",
        help="repetitions of each Spark mode (default 2 quick, 3 full)",
    )
    b.add_argument(
        "--spark-backend",
        choices=["sync", "uring", "ocall", "switchless"],
        help="exitless backend of the Spark workers (default: the hook's)",
    )
    b.add_argument(
        "--runtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="exitless-rt vs tokio (builds a Rust example with cargo; default on)",
    )
    b.add_argument(
        "--runtime-runs",
        type=_positive,
        dest="runtime_runs",
        help="timed runs per runtime figure (default 3 quick, 5 full)",
    )
    b.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PNG plots (matplotlib; default on)",
    )
    b.add_argument(
        "--json", action="store_true", help="print the results JSON on stdout (the summary goes to stderr)"
    )
    b.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )
    b.set_defaults(func=_bench)


def _stress(argv: list[str]) -> int:
    from .stress import main as stress_main

    return stress_main(argv)


def _spark_bench(argv: list[str]) -> int:
    from .spark_bench import main as spark_bench_main

    return spark_bench_main(argv)


def _dataset_bench(argv: list[str]) -> int:
    from .dataset_bench import main as dataset_bench_main

    return dataset_bench_main(argv)


def _blocks_bench(argv: list[str]) -> int:
    from .blocks_bench import main as blocks_bench_main

    return blocks_bench_main(argv)


def _verify_spark(argv: list[str]) -> int:
    from .verify_spark import main as verify_spark_main

    return verify_spark_main(argv)


def _suites(argv: list[str]) -> int:
    from .bench.suites import main as suites_main

    return suites_main(argv)


#: Commands with parsers of their own: the arguments after the name go to them.
FORWARDED: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "suites": (_suites, "sealing against cryptography, vCPU scaling (make bench runs them)"),
    "stress": (_stress, "many concurrent streams per backend, then one very long stream (make stress)"),
    "spark-bench": (_spark_bench, "spilling PySpark jobs with and without sealed spills (make bench-spark)"),
    "dataset-bench": (_dataset_bench, "sealed datasets against plaintext ones (PySpark)"),
    "verify-spark": (
        _verify_spark,
        "check the hook's and the JVM library's assumptions against a PySpark release",
    ),
    "blocks-bench": (_blocks_bench, "the Spark JVM's blocks: lz4, Spark's IO encryption, exitless (PySpark)"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="The exitless benchmarks and the main job: tools of a checkout, not of the package.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser(
        "bench",
        help="the benchmark matrix and report (JSON, report.md, plots)",
        description="Sealed streams through every backend (io_uring, switchless, modeled OCALLs, sync) and "
        "plaintext at several segment sizes, the runtime against tokio, optionally the Spark jobs; "
        "prints a summary and writes OUT/<timestamp>/results.json, report.md and PNG plots. "
        "Benchmarks measure, they never fail on a slow figure.",
    )
    _bench_arguments(b, main_job=False)
    r = sub.add_parser(
        "run",
        help="the main job (make run): Spark with and without exitless, then the quick benchmark",
        description="The main job: a sealed-stream integrity check, spilling PySpark jobs on local[2] with and "
        "without exitless, the quick IO matrix and the runtime comparison; a summary table and "
        "OUT/<timestamp>/ with results.json, report.md and plots.",
    )
    _bench_arguments(r, main_job=True)
    for name, (_, text) in FORWARDED.items():
        sub.add_parser(name, help=f"{text}; {name} --help lists its options", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; its exit status (1 on an error, one line on stderr)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in FORWARDED:
        return FORWARDED[args_list[0]][0](args_list[1:])
    args = _parser().parse_args(args_list)
    args.argv = args_list
    try:
        return int(args.func(args) or 0)
    except (ExitlessError, OSError, ValueError, TypeError) as e:
        print(f"{PROG} {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
