"""PNG plots of a results object (matplotlib, no display needed): throughput by
segment size, exits per GiB (log scale), CPU by thread class (enclave side,
kernel io_uring threads, switchless host workers), the runtime against tokio, and
the Spark jobs with and without exitless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt

from .units import size_label

#: One colour per point, stable across plots and runs.
COLORS = {
    "uring": "#1b9e77",
    "uring-direct": "#66c2a5",
    "switchless": "#7570b3",
    "ocall-8200": "#d95f02",
    "ocall-17000": "#e7298a",
    "sync": "#666666",
    "plaintext": "#a6a6a6",
}
FALLBACK = ("#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6")


def _color(label: str, i: int) -> str:
    return COLORS.get(label, FALLBACK[i % len(FALLBACK)])


def _by_point(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in results["matrix"]:
        out.setdefault(row["point"], []).append(row)
    return out


def _subtitle(results: dict[str, Any]) -> str:
    m, c = results["machine"], results["config"]
    return f"{m['cores']} cores, {c['directory_fs']}, {size_label(c['bytes_per_point'])} per stream, commit {m['commit']}"


def throughput(results: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (label, rows) in enumerate(_by_point(results).items()):
        rows = sorted(rows, key=lambda r: r["segment_size"])
        direct = rows[0]["direct"]
        ax.plot(
            [r["segment_size"] for r in rows],
            [r["gb_per_s"] for r in rows],
            marker="s" if direct else "o",
            linestyle="-" if direct else "--",
            linewidth=2,
            color=_color(label, i),
            label=label
            + ("" if rows[0]["sealed"] else " (not sealed)")
            + (", O_DIRECT" if direct else ", page cache"),
        )
    sizes = sorted({r["segment_size"] for r in results["matrix"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [size_label(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("segment size")
    ax.set_ylabel("write throughput (GB/s of plaintext)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Sealed spill throughput by segment size\n{_subtitle(results)}", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def exits(results: dict[str, Any], path: Path) -> None:
    # sync and plaintext have no exit model (they are the stream outside an enclave,
    # where a pwrite is no exit): their bars would suggest an exit-free enclave path.
    by_point = {k: v for k, v in _by_point(results).items() if v[0]["backend"] != "sync"}
    sizes = sorted({r["segment_size"] for r in results["matrix"]})
    n = len(by_point)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for i, (label, rows) in enumerate(by_point.items()):
        at = {r["segment_size"]: r for r in rows}
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(sizes))]
        # A log axis cannot show 0: an exit-free stream is drawn at 1 and labelled 0.
        vals = [max(at[s]["exits_per_gib"], 1) if s in at else 0 for s in sizes]
        bars = ax.bar(xs, vals, width, color=_color(label, i), label=label)
        for b, s in zip(bars, sizes, strict=True):
            if s in at:
                ax.annotate(
                    f"{at[s]['exits_per_gib']:,.0f}",
                    (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    ax.set_yscale("log")
    ax.set_xticks(range(len(sizes)), [size_label(s) for s in sizes])
    ax.set_xlabel("segment size")
    ax.set_ylabel("enclave exits per GiB written (log scale)")
    ax.set_title(
        f"Enclave exits per GiB written (sync and plaintext, outside an enclave, not shown)\n{_subtitle(results)}",
        fontsize=11,
    )
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=9, ncol=3)
    top = max((r["exits_per_gib"] for rows in by_point.values() for r in rows), default=1)
    ax.set_ylim(0.8, max(top, 10) * 8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


#: The parts of a point's CPU, bottom to top: (row field, legend, colour).
CPU_PARTS = (
    ("enclave_thread_cpu_s_per_gib", "enclave threads (caller, vCPUs)", "#1b9e77"),
    ("modeled_exit_cpu_s_per_gib", "modeled exits not spun", "#a6dba0"),
    ("sqpoll_cpu_s_per_gib", "kernel: SQPOLL thread", "#d95f02"),
    ("iowq_cpu_s_per_gib", "kernel: io-wq workers", "#fdb863"),
    ("host_worker_cpu_s_per_gib", "switchless host workers", "#7570b3"),
)


def cpu(results: dict[str, Any], path: Path) -> None:
    """CPU seconds per GiB by thread class, one panel per segment size, with each
    point's wall seconds per GiB as a black tick for scale."""
    sizes = sorted({r["segment_size"] for r in results["matrix"]})
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4.2 * len(sizes), 5), dpi=110, sharey=True, squeeze=False
    )
    for ax, size in zip(axes[0], sizes, strict=True):
        rows = [r for r in results["matrix"] if r["segment_size"] == size]
        xs = range(len(rows))
        bottom = [0.0] * len(rows)
        for key, label, color in CPU_PARTS:
            vals = [r[key] for r in rows]
            ax.bar(xs, vals, 0.7, bottom=bottom, color=color, label=label)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.scatter(
            xs,
            [r["wall_s_per_gib"] for r in rows],
            marker="_",
            s=300,
            color="black",
            zorder=3,
            label="wall time",
        )
        ax.set_xticks(list(xs), [r["point"] for r in rows], rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{size_label(size)} segments", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("seconds per GiB written")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Where the CPU goes: enclave side against the kernel's io_uring threads\n{_subtitle(results)}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def runtime(results: dict[str, Any], path: Path) -> None:
    rt = results["runtime"]
    ex, tk = rt["exitless"], rt["tokio"]
    metrics = [
        ("spawn + join", "spawn_join_ns_per_task"),
        ("task switch", "switch_ns"),
        ("yield", "yield_ns"),
    ]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=110, gridspec_kw={"width_ratios": [3, 1]})
    xs = range(len(metrics))
    for off, (name, src, color) in zip(
        (-0.2, 0.2), (("exitless-rt", ex, "#1b9e77"), ("tokio", tk, "#999999")), strict=True
    ):
        bars = ax.bar([x + off for x in xs], [src[k] for _, k in metrics], 0.4, label=name, color=color)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(list(xs), [m for m, _ in metrics])
    ax.set_ylabel("nanoseconds per operation (lower is better)")
    ax.set_title(f"exitless-rt vs tokio, {ex['vcpus']} vCPUs / workers", fontsize=11)
    ax.legend(fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    bars = ax2.bar(
        ["exitless-rt", "tokio"], [ex["fanout_1m_ms"], tk["fanout_1m_ms"]], color=["#1b9e77", "#999999"]
    )
    ax2.bar_label(bars, fmt="%.0f", fontsize=8)
    ax2.set_ylabel("milliseconds (lower is better)")
    ax2.set_title("1,000,000-task fan-out", fontsize=11)
    ax2.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def spark(results: dict[str, Any], path: Path) -> None:
    jobs = results["spark"]["jobs"]
    names = list(jobs)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    xs = range(len(names))
    for off, (label, key, color) in zip(
        (-0.2, 0.2),
        (("plain PySpark", "plain_median", "#999999"), ("exitless spills", "exitless_median", "#1b9e77")),
        strict=True,
    ):
        bars = ax.bar([x + off for x in xs], [jobs[n][key] for n in names], 0.4, label=label, color=color)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    for x, n in zip(xs, names, strict=True):
        ax.annotate(
            f"{jobs[n]['overhead']:+.0%}",
            (x, max(jobs[n]["plain_median"], jobs[n]["exitless_median"])),
            ha="center",
            va="bottom",
            xytext=(0, 12),
            textcoords="offset points",
            fontsize=9,
            fontweight="bold",
        )
    cfg = results["spark"]["config"]
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("job wall time, seconds (median)")
    ax.set_title(
        f"Spilling PySpark jobs on local[2], {cfg['n']:,} records, worker memory {cfg['python_worker_memory']}",
        fontsize=10,
    )
    ax.set_ylim(0, max(max(j["plain_median"], j["exitless_median"]) for j in jobs.values()) * 1.25)
    ax.legend(fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_all(results: dict[str, Any], outdir: Path) -> dict[str, str]:
    """Every plot the results have data for; {title: file name}."""
    made: dict[str, str] = {}
    if results.get("matrix"):
        throughput(results, outdir / "throughput.png")
        made["throughput by segment size"] = "throughput.png"
        if any(r["backend"] != "sync" for r in results["matrix"]):
            exits(results, outdir / "exits.png")
            made["exits per GiB"] = "exits.png"
        cpu(results, outdir / "cpu.png")
        made["CPU by thread class"] = "cpu.png"
    if "exitless" in results.get("runtime", {}):
        runtime(results, outdir / "runtime.png")
        made["runtime vs tokio"] = "runtime.png"
    if "jobs" in results.get("spark", {}):
        spark(results, outdir / "spark.png")
        made["spark overhead"] = "spark.png"
    return made
