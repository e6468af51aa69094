"""Turning a results object into what people read: the summary table printed at
the end of a run, ``report.md``, and ``results.json`` with the plots beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .seal import summary_line as seal_summary_line
from .units import size_label


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


COLUMNS = (
    "segment",
    "backend",
    "GB/s",
    "wall s/GiB",
    "enclave CPU s/GiB",
    "kernel s/GiB SQ+wq",
    "iou-wrk",
    "host s/GiB",
    "segments/s",
    "exits/GiB",
    "CPU s/GiB",
    "vs plaintext",
)


def _kernel_cell(sq: float, wq: float, fmt: str = ".2f") -> str:
    """ "SQ+wq", or nothing when both show as zero."""
    zero = f"{0:{fmt}}"
    a, b = f"{sq:{fmt}}", f"{wq:{fmt}}"
    return "" if a == zero and b == zero else f"{a}+{b}"


def _wrk_cell(row: dict[str, Any]) -> str:
    """io-wq workers seen during the point, and (in parentheses) those that ran."""
    seen, active = row.get("iou_wrk_threads", 0), row.get("iou_wrk_active", 0)
    return "" if not seen else f"{seen} ({active})"


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per matrix cell, in the order of the columns above."""
    rows = []
    by_seg = results["summary"]["by_segment"]
    for r in results["matrix"]:
        vs = by_seg.get(str(r["segment_size"]), {}).get(f"{r['point']}_vs_plaintext")
        rows.append(
            [
                size_label(r["segment_size"]),
                r["point"]
                + ("" if r["sealed"] else " (not sealed)")
                + (" [O_DIRECT]" if r["direct"] else ""),
                f"{r['gb_per_s']:.2f}",
                f"{r['wall_s_per_gib']:.2f}",
                f"{r['enclave_cpu_s_per_gib']:.2f}",
                _kernel_cell(r["sqpoll_cpu_s_per_gib"], r["iowq_cpu_s_per_gib"]),
                _wrk_cell(r),
                "" if not r["host_worker_cpu_s_per_gib"] else f"{r['host_worker_cpu_s_per_gib']:.2f}",
                _fmt_int(r["segments_per_s"]),
                _fmt_int(r["exits_per_gib"]),
                f"{r['cpu_s_per_gib']:.2f}",
                "" if vs is None else f"{vs:.2f}",
            ]
        )
    return rows


#: What each matrix column means (report.md and the text summary's legend).
COLUMN_NOTES = (
    "wall s/GiB: wall time per GiB (1 / GB/s, in the CPU columns' unit)",
    "enclave CPU s/GiB: CPU of this process's threads other than the kernel's io_uring threads and the switchless "
    "host workers (the caller, vCPUs), plus the modeled cost of exits no thread spun for (every uring exit; the "
    "stream's own syscalls on the OCALL paths; sync has no exit model)",
    "kernel s/GiB SQ+wq: the io_uring SQPOLL thread (iou-sqp) + io-wq workers (iou-wrk); iou-wrk: workers seen "
    "during the point (of them, those that ran)",
    "host s/GiB: the switchless backend's host worker threads (untrusted, outside the enclave)",
    "CPU s/GiB: process CPU, every thread",
)


SMALL_COLUMNS = (
    "backend",
    "µs/file",
    "exits/file",
    "write+read+unlink",
    "syscalls/file",
    "enclave CPU µs/file",
    "kernel µs/file SQ+wq",
    "iou-wrk",
    "verified",
)


def small_file_rows(results: dict[str, Any]) -> list[list[str]]:
    """The small-file row, one line per backend (empty when it did not run)."""
    small = results.get("small_files") or {}
    out = []
    for r in small.get("rows", []):
        sealed = r["exits_per_file"] is not None
        out.append(
            [
                r["backend"],
                f"{r['us_per_file']:.0f}",
                f"{r['exits_per_file']:.2f}" if sealed else "",
                f"{r['write_exits_per_file']:g}+{r['read_exits_per_file']:g}+{r['unlink_exits_per_file']:g}"
                if sealed
                else "",
                f"{r.get('syscalls_per_file') or 0:g}" if sealed else "",
                f"{r['enclave_cpu_us_per_file']:.0f}",
                _kernel_cell(r["sqpoll_cpu_us_per_file"], r["iowq_cpu_us_per_file"], ".0f"),
                _wrk_cell(r),
                f"{r['files_verified']}/{r['files_written']}",
            ]
        )
    return out


def _small_title(results: dict[str, Any]) -> str | None:
    small = results.get("small_files") or {}
    if "rows" not in small:
        return f"Small files: skipped ({small['skipped']})" if "skipped" in small else None
    skipped = "".join(f"; {b} skipped: {why}" for b, why in small["skipped"].items())
    return (
        f"Small files: {small['files']:,} files of {small['file_size']:,} bytes per backend, each written in one call, "
        f"read back whole, compared and unlinked ({small['unlink']}); median of {small['reps']} rounds{skipped}"
    )


def _align(columns: tuple[str, ...], rows: list[list[str]], left: int) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i >= left else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _not_run(title: str, section: dict[str, Any]) -> list[str] | None:
    """The one line for an optional section that was skipped or failed, else None."""
    if "skipped" in section:
        return [f"{title}: skipped ({section['skipped']})"]
    if "error" in section:
        return [f"{title}: FAILED: {section['error']}"]
    return None


def _spark_lines(results: dict[str, Any]) -> list[str]:
    spark = results.get("spark") or {}
    if (line := _not_run("Spark", spark)) is not None:
        return line
    cfg, total = spark["config"], spark["total"]
    files = sum(int(run["files_written"]) for j in spark["jobs"].values() for run in j["sealed_per_run"])
    read = sum(int(run["files_read"]) for j in spark["jobs"].values() for run in j["sealed_per_run"])
    uring = sum(
        int(run.get("files_written_uring", 0)) for j in spark["jobs"].values() for run in j["sealed_per_run"]
    )
    lines = [
        f"Spark (local[2], {cfg['n']:,} records, spark.python.worker.memory={cfg['python_worker_memory']}, "
        f"backend {cfg['backend']}, median of {cfg['reps']}):"
    ]
    for job, j in spark["jobs"].items():
        lines.append(
            f"  {job:12} plain {j['plain_median']:6.2f} s   exitless {j['exitless_median']:6.2f} s   "
            f"overhead {j['overhead']:+.1%}"
        )
    lines.append(
        f"  {'all jobs':12} plain {total['plain_median_sum']:6.2f} s   exitless {total['exitless_median_sum']:6.2f} s   "
        f"overhead {total['overhead']:+.1%}   ({files:,} spill files sealed, {uring:,} of them through "
        f"io_uring, {read:,} read back)"
    )
    return lines


def _runtime_lines(results: dict[str, Any]) -> list[str]:
    rt = results.get("runtime") or {}
    if (line := _not_run("Runtime", rt)) is not None:
        return line
    ex, tk = rt["exitless"], rt["tokio"]
    return [
        f"Runtime ({ex['vcpus']} vCPUs; exitless-rt vs tokio): spawn+join {ex['spawn_join_ns_per_task']:.0f} vs "
        f"{tk['spawn_join_ns_per_task']:.0f} ns, switch {ex['switch_ns']:.0f} vs {tk['switch_ns']:.0f} ns, "
        f"yield {ex['yield_ns']:.0f} vs {tk['yield_ns']:.0f} ns, 1M fan-out {ex['fanout_1m_ms']:.0f} vs {tk['fanout_1m_ms']:.0f} ms"
    ]


def headline_lines(results: dict[str, Any]) -> list[str]:
    """Per segment size: the default io_uring path against the OCALL path as users
    have it (page cache) and against sync; then the same on equal terms (O_DIRECT)."""
    out = []
    for seg, h in results["summary"]["by_segment"].items():
        if "ocall-8200_exits_per_uring_exit" not in h:
            continue
        line = (
            f"At {size_label(int(seg))}: the default io_uring path writes {h['uring_over_ocall-8200_throughput']:.2f}× "
            f"the OCALL path's rate (page cache, 8,200 cycles per exit"
        )
        if "uring_over_ocall-17000_throughput" in h:
            line += f"; {h['uring_over_ocall-17000_throughput']:.2f}× at 17,000"
        line += ")"
        if "uring_over_sync_throughput" in h:
            line += f" and {h['uring_over_sync_throughput']:.2f}× sync's"
        line += f", with {h['ocall-8200_exits_per_uring_exit']:,.0f}× fewer exits."
        out.append(line)
        if "uring-direct_over_ocall-8200-direct_throughput" in h:
            out.append(
                f"At {size_label(int(seg))}, on equal terms (both O_DIRECT): io_uring writes "
                f"{h['uring-direct_over_ocall-8200-direct_throughput']:.2f}× the OCALL path's rate."
            )
    return out


def summary_table(results: dict[str, Any]) -> str:
    """The plain-text summary printed at the end of a run."""
    cfg, m = results["config"], results["machine"]
    rows = table_rows(results)
    out = [
        f"exitless bench @ {m['commit']}: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}",
        f"streams of {size_label(cfg['bytes_per_point'])} in {cfg['directory']} ({cfg['directory_fs']}), "
        f"{size_label(cfg['write_size'])} writes, queue depth {cfg['queue_depth']}, {cfg['vcpus']} vCPU(s), median of {cfg['reps']}; "
        f"OCALL model {m['ocall_model']['ns_per_exit']:.0f} ns per 8,200-cycle exit here",
        "",
    ]
    table = _align(COLUMNS, rows, 2)
    out += table[:2]
    prev = None
    for r, text in zip(rows, table[2:], strict=True):
        if prev is not None and r[0] != prev:
            out.append("")
        prev = r[0]
        out.append(text)
    out += [
        "",
        "enclave CPU: the caller's and vCPUs' CPU + modeled exits no thread spun for; kernel: io_uring SQPOLL "
        "thread + io-wq workers; iou-wrk: workers seen (that ran); host: switchless host workers",
        "",
    ]
    out.extend(headline_lines(results))
    small = _small_title(results)
    if small:
        out += ["", small]
        if small_file_rows(results):
            out += _align(SMALL_COLUMNS, small_file_rows(results), 1)
        out.append("")
    if "integrity_check" in results:
        c = results["integrity_check"]
        out.append(
            f"Integrity: {size_label(c['bytes'])} round trip {'verified' if c['round_trip_verified'] else 'MISMATCH'}; "
            f"flipped byte {c['flipped_byte'].split(':')[0]}; truncated file {c['truncated'].split(':')[0]}"
        )
    out.extend(_spark_lines(results))
    out.extend(_runtime_lines(results))
    out.append(seal_summary_line(results.get("seal")))
    for e in results.get("errors", []):
        out.append(f"ERROR: {e}")
    return "\n".join(out)


def markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    """``report.md``: the same figures, with the machine facts and the plots."""
    cfg, m = results["config"], results["machine"]
    uring = m["io_uring"]
    om = m["ocall_model"]
    md = [
        "# exitless benchmark report",
        "",
        f"Commit `{m['commit']}`, {results['created']}, `{results['command']}` ({results['seconds']} s).",
        "",
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
        f"| CPU | {m['cpu']} |",
        f"| CPU flags | {', '.join(f for f, on in m['cpu_has'].items() if on) or 'none of interest'}"
        f" (missing: {', '.join(f for f, on in m['cpu_has'].items() if not on) or 'none'}) |",
        f"| cores | {m['cores']} ({m['usable_cores']} usable) |",
        f"| kernel | Linux {m['kernel']} |",
        f"| io_uring | {'available' if uring['available'] else 'unavailable: ' + str(uring['reason'])}; "
        f"features: {', '.join(uring['features']) or '-'} |",
        f"| SQPOLL ran | {'yes' if m.get('sqpoll_ran') else 'no'} ({m.get('sqpoll_threads', 0)} iou-sqp threads) |",
        f"| OCALL model | {om['cycles_per_exit']:,} cycles per exit by default (points set their own), "
        f"{'three exits per transfer above 16 KiB' if om['triple_exits_above_16k'] else 'one exit per transfer'}, "
        f"TSC {om['tsc_ticks_per_ns']} ticks/ns ({'measured' if om['tsc_calibrated'] else 'assumed'}) |",
        f"| stream directory | {cfg['directory']} ({cfg['directory_fs']}) |",
        "",
        "## IO matrix",
        "",
        f"One stream per cell, {size_label(cfg['bytes_per_point'])}, {size_label(cfg['write_size'])} writes, queue depth "
        f"{cfg['queue_depth']}, {cfg['vcpus']} vCPU(s); median of {cfg['reps']} interleaved rounds. "
        "Exits count the backend's exits plus the stream's own system calls (each one an exit in an enclave); "
        "CPU is split by thread (per GiB): the enclave side, the kernel's io_uring threads and the switchless host "
        "workers, with the process total beside them.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    md += ["| " + " | ".join(r) + " |" for r in table_rows(results)]
    md += ["", *[f"- {note}" for note in COLUMN_NOTES]]
    md += ["", *[f"- {line}" for line in headline_lines(results)], "", "Points:", ""]
    md += [f"- `{label}`: {about}" for label, about in results["points"].items()]
    small = _small_title(results)
    if small:
        md += ["", "## Small files", "", small + "."]
        if small_file_rows(results):
            md += ["", "| " + " | ".join(SMALL_COLUMNS) + " |", "|" + "---|" * len(SMALL_COLUMNS)]
            md += ["| " + " | ".join(r) + " |" for r in small_file_rows(results)]
            md += [
                "",
                "- exits/file: the writer's and the reader's counters (their own syscalls and close included) "
                "and the unlink (write+read+unlink); plaintext has no exit model",
                "- enclave CPU µs/file: as in the matrix (caller and vCPUs + modeled exits no thread spun for)",
            ]
    if "integrity_check" in results:
        c = results["integrity_check"]
        md += [
            "",
            "## Integrity check",
            "",
            f"- {size_label(c['bytes'])} sealed in {c['segments']} segments ({c['file_size']:,} bytes on disk), read back: "
            f"{'verified byte for byte' if c['round_trip_verified'] else 'MISMATCH'}",
            f"- one flipped byte: {c['flipped_byte']}",
            f"- last segment cut off: {c['truncated']}",
        ]
    md += [
        "",
        "## Spark",
        "",
        "```",
        *_spark_lines(results),
        "```",
        "",
        "## Runtime",
        "",
        *_runtime_lines(results),
        "",
    ]
    if plots:
        md += ["## Plots", ""] + [f"![{name}]({file})" for name, file in plots.items()] + [""]
    md += [
        "## Reading it",
        "",
        f"- The OCALL points model an enclave exit as a spin of 8,200 or 17,000 TSC cycles ({om['source']}); "
        "exit counts are exact, times are a model. On SGX hardware set the spin to 0: the exit is real.",
        "- `sync` is the same stream with plain system calls and no exit model: what it costs outside an enclave. "
        "`plaintext` writes the same bytes without sealing.",
        "- This machine is shared: compare ratios within one run, not absolute times across runs.",
        "- More: docs/BENCHMARKS.md.",
    ]
    if results.get("errors"):
        md += ["", "## Errors", "", *[f"- {e}" for e in results["errors"]]]
    return "\n".join(md) + "\n"


def write(results: dict[str, Any], outdir: Path, plots: bool = True) -> dict[str, Path]:
    """Writes results.json, the plots (unless ``plots`` is False or matplotlib is
    missing: then the JSON says why) and report.md into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    if plots:
        try:
            from .plots import draw_all

            made = draw_all(results, outdir)
        except ImportError as e:
            results["plots_skipped"] = f"matplotlib is not installed ({e})"
    results["plots"] = made
    paths = {"json": outdir / "results.json", "report": outdir / "report.md"}
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    paths["report"].write_text(markdown(results, made))
    return paths
