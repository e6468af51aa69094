"""Throughput benchmarks (``make bench``): not tests. Measures, side by side in one
process on the same data, exitless's seal/open against the ``cryptography``
package's AES-256-GCM over the same segmentation, at several segment sizes, plus
sealed file streams against plain file writes. Prints a table and writes JSON
under ``bench-results/<timestamp>/``. Ratios matter, not absolute times: the
machines are shared and noisy, so runs are interleaved and the median is kept."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import __version__, generate_key, open_into, open_spill, seal_into, sealed_length
from ._errors import raise_for
from ._native import ffi, lib
from .streams import _stats_dict, make_options

MiB = 1 << 20
HEADER, TAG = 68, 16


def machine() -> dict[str, object]:
    flags: set[str] = set()
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    import cryptography

    return {
        "cpu": model,
        "cpu_flags": sorted(flags & {"aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx2", "avx512f"}),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "exitless": __version__,
        "commit": commit + ("-dirty" if dirty else ""),
    }


def median_rate(fn: Callable[[], object], nbytes: int, reps: int) -> float:
    """Median GB/s of ``reps`` timed calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e9


def bench_memory(data: memoryview, segment_size: int, reps: int) -> dict[str, float]:
    """Whole-buffer seal/open vs cryptography's AESGCM over the same segments."""
    key = generate_key()
    size = data.nbytes
    sealed = bytearray(sealed_length(size, segment_size))
    back = bytearray(size)

    aes = AESGCM(AESGCM.generate_key(256))
    p0, p = segment_size - HEADER - TAG, segment_size - TAG
    chunks = [(0, min(p0, size))] + [(off, min(p, size - off)) for off in range(p0, size, p)]
    nonces = [os.urandom(7) + i.to_bytes(4, "big") + b"\0" for i in range(len(chunks))]
    ct = bytearray(size + TAG * len(chunks))
    slots = []
    pos = 0
    for _, n in chunks:
        slots.append(memoryview(ct)[pos : pos + n + TAG])
        pos += n + TAG

    def c_seal() -> None:
        for (off, n), nonce, slot in zip(chunks, nonces, slots):
            aes.encrypt_into(nonce, data[off : off + n], None, slot)

    backv = memoryview(back)

    def c_open() -> None:
        for (off, n), nonce, slot in zip(chunks, nonces, slots):
            aes.decrypt_into(nonce, slot, None, backv[off : off + n])

    def x_seal() -> None:
        seal_into(data, sealed, key, segment_size=segment_size)

    def x_open() -> None:
        open_into(sealed, back, key)

    results: dict[str, list[float]] = {"exitless_seal": [], "cryptography_seal": [], "exitless_open": [], "cryptography_open": []}
    for _ in range(reps):  # interleave, so drift on a shared machine hits both sides alike
        results["exitless_seal"].append(median_rate(x_seal, size, 1))
        results["cryptography_seal"].append(median_rate(c_seal, size, 1))
        results["exitless_open"].append(median_rate(x_open, size, 1))
        results["cryptography_open"].append(median_rate(c_open, size, 1))
    assert bytes(back) == bytes(data), "exitless open_into did not return the plaintext"
    out = {k: round(statistics.median(v), 3) for k, v in results.items()}
    out["seal_ratio"] = round(out["exitless_seal"] / out["cryptography_seal"], 3)
    out["open_ratio"] = round(out["exitless_open"] / out["cryptography_open"], 3)
    return out


def bench_files(data: memoryview, segment_size: int, directory: str, reps: int, chunk: int = MiB) -> dict[str, float]:
    """Sealed file write/read vs plain file write/read of the same bytes, same chunking."""
    key = generate_key()
    size = data.nbytes
    sealed_path, plain_path = os.path.join(directory, "sealed"), os.path.join(directory, "plain")
    buf = bytearray(chunk)

    def sealed_write() -> None:
        with open_spill(sealed_path, "wb", key, segment_size=segment_size) as f:
            for off in range(0, size, chunk):
                f.write(data[off : off + chunk])

    def plain_write() -> None:
        with open(plain_path, "wb", buffering=0) as f:
            for off in range(0, size, chunk):
                f.write(data[off : off + chunk])

    def sealed_read() -> None:
        with open_spill(sealed_path, "rb", key) as f:
            while f.readinto(buf):
                pass

    def plain_read() -> None:
        with open(plain_path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass

    res: dict[str, list[float]] = {"sealed_write": [], "plain_write": [], "sealed_read": [], "plain_read": []}
    for _ in range(reps):
        res["sealed_write"].append(median_rate(sealed_write, size, 1))
        res["plain_write"].append(median_rate(plain_write, size, 1))
        res["sealed_read"].append(median_rate(sealed_read, size, 1))
        res["plain_read"].append(median_rate(plain_read, size, 1))
    out = {k: round(statistics.median(v), 3) for k, v in res.items()}
    out["write_ratio"] = round(out["sealed_write"] / out["plain_write"], 3)
    out["read_ratio"] = round(out["sealed_read"] / out["plain_read"], 3)
    return out


def seal_suite(a: argparse.Namespace, segs: list[int], outdir: Path) -> None:
    """Seal/open against cryptography's AES-256-GCM, and sealed vs plain files."""
    data = memoryview(os.urandom(a.size_mib * MiB))
    report: dict[str, object] = {"benchmark": "seal", "bytes": data.nbytes, "reps": a.reps, "machine": machine(), "memory": {}, "files": {}, "file_dir": a.dir}
    print(f"exitless bench: {a.size_mib} MiB per point, median of {a.reps} interleaved runs, one core")
    print(f"{'segment':>9} | {'seal GB/s':>9} {'crypto':>7} {'ratio':>6} | {'open GB/s':>9} {'crypto':>7} {'ratio':>6} | {'file write':>10} {'plain':>6} {'ratio':>6} | {'file read':>9} {'plain':>6} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="exitless-bench-", dir=a.dir) as tmp:
        for s in segs:
            m = bench_memory(data, s, a.reps)
            f = bench_files(data, s, tmp, a.reps)
            report["memory"][str(s)] = m  # type: ignore[index]
            report["files"][str(s)] = f  # type: ignore[index]
            print(
                f"{s:>9} | {m['exitless_seal']:>9.2f} {m['cryptography_seal']:>7.2f} {m['seal_ratio']:>6.2f} | "
                f"{m['exitless_open']:>9.2f} {m['cryptography_open']:>7.2f} {m['open_ratio']:>6.2f} | "
                f"{f['sealed_write']:>10.2f} {f['plain_write']:>6.2f} {f['write_ratio']:>6.2f} | "
                f"{f['sealed_read']:>9.2f} {f['plain_read']:>6.2f} {f['read_ratio']:>6.2f}",
                flush=True,
            )
    (outdir / "seal.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {outdir / 'seal.json'}")


# ---- IO matrix: backends side by side -------------------------------------------

#: (label, backend, direct, ocall cycles)
IO_POINTS: list[tuple[str, str, bool | None, int | None]] = [
    ("uring-direct", "uring", True, None),
    ("uring-direct-spin", "uring", True, None),
    ("uring-buffered", "uring", False, None),
    ("switchless", "switchless", None, 8200),
    ("switchless-direct", "switchless", True, 8200),
    ("ocall-8200", "ocall", None, 8200),
    ("ocall-17000", "ocall", None, 17000),
    ("ocall-8200-direct", "ocall", True, 8200),
    ("sync", "sync", None, None),
    ("sync-direct", "sync", True, None),
]
#: "-spin": spin up to 10 ms for completions instead of 100 µs (strictly exit-less;
#: on a 2-core machine the spinner competes with the kernel for the second core).
_SPIN_US = {"uring-direct-spin": 10_000}


def _sqpoll_cpu_seconds() -> float:
    """CPU seconds of this process's io_uring SQPOLL kernel threads (iou-sqp-*)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("iou-sqp"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _run_point(path: str, label: str, backend: str, direct: bool | None, cycles: int | None,
               segment_size: int, total: int, seal: bool, queue_depth: int = 8) -> dict[str, object]:
    spin = _SPIN_US.get(label)
    # One stream on one thread: the matrix compares backends, not runtimes.
    opts = make_options(segment_size, backend=backend, direct=direct, ocall_cycles=cycles, queue_depth=queue_depth, uring_spin_us=spin, parallel=False)
    raw = ffi.new("ExitlessStats *")
    cpu0, sq0, t0 = _cpu_seconds(), _sqpoll_cpu_seconds(), time.perf_counter()
    raise_for(lib.exitless_bench_write(path.encode(), opts, total, 1 << 20, 1 if seal else 0, raw), path)
    wall = time.perf_counter() - t0
    cpu, sq = _cpu_seconds() - cpu0, _sqpoll_cpu_seconds() - sq0
    st = _stats_dict(raw)
    gib = total / (1 << 30)
    exits = int(st["total_exits"])  # type: ignore[call-overload]
    return {
        "point": label, "segment_size": segment_size, "sealed": seal, "bytes": total,
        "gb_per_s": round(total / wall / 1e9, 3),
        "segments_per_s": round(int(st["segments"]) / wall),  # type: ignore[call-overload]
        "exits": exits, "exits_per_gib": round(exits / gib, 1),
        "cpu_s_per_gib": round(cpu / gib, 3), "sqpoll_cpu_s_per_gib": round(sq / gib, 3),
        "wall_s": round(wall, 3), "direct": st["direct"], "stats": st,
    }


def io_matrix(directory: str, total: int, segment_sizes: list[int], reps: int, queue_depth: int = 8) -> list[dict[str, object]]:
    """Every backend at every segment size, sealed and plaintext, one after the other."""
    rows: list[dict[str, object]] = []
    path = os.path.join(directory, "exitless-bench-io")
    for seg in segment_sizes:
        for label, backend, direct, cycles in IO_POINTS:
            runs: dict[bool, list[dict[str, object]]] = {True: [], False: []}
            for _ in range(reps):
                for seal in (True, False):
                    runs[seal].append(_run_point(path, label, backend, direct, cycles, seg, total, seal, queue_depth))
                    os.unlink(path)
            for seal in (True, False):
                ordered = sorted(runs[seal], key=lambda r: float(r["gb_per_s"]))  # type: ignore[arg-type]
                rows.append(ordered[len(ordered) // 2])
            s, p = rows[-2], rows[-1]
            s["sealed_vs_plain"] = round(float(s["gb_per_s"]) / float(p["gb_per_s"]), 3)  # type: ignore[arg-type]
            print(
                f"{seg:>8} {label:<15} {s['gb_per_s']:>7.2f} {p['gb_per_s']:>7.2f} {s['sealed_vs_plain']:>6.2f} "
                f"{s['segments_per_s']:>10} {s['exits_per_gib']:>11} {s['cpu_s_per_gib']:>9.2f} {s['sqpoll_cpu_s_per_gib']:>8.2f}"
                f"  {'O_DIRECT' if s['direct'] else ''}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m exitless.bench", description=__doc__)
    p.add_argument("--suite", default="seal,io,rt", help="comma-separated: seal (crypto vs cryptography), io (backend matrix), rt (runtime vs tokio and threads; stream scaling over vCPUs)")
    p.add_argument("--size-mib", type=int, help="MiB per seal measurement (default 256; 32 with --quick)")
    p.add_argument("--io-size-mib", type=int, help="MiB per IO matrix point (default 1024; 32 with --quick)")
    p.add_argument("--segments", default="4096,65536,1048576", help="comma-separated segment sizes")
    p.add_argument("--reps", type=int, help="interleaved repetitions, median reported (default 5; 2 with --quick)")
    p.add_argument("--io-reps", type=int, default=1, help="repetitions per IO matrix point (median)")
    p.add_argument("--queue-depth", type=int, default=8, help="segments in flight per stream in the IO matrix")
    p.add_argument("--points", help="comma-separated IO matrix points (default: all)")
    p.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None, help="directory for the seal suite's file benchmark (default /dev/shm: measures CPU, not the disk)")
    p.add_argument("--io-dir", default="bench-results", help="directory for the IO matrix (a disk file system, so O_DIRECT applies)")
    p.add_argument("--out", default="bench-results", help="results directory")
    p.add_argument("--quick", action="store_true", help="small sizes and fewer repetitions (CI)")
    a = p.parse_args(argv)
    a.size_mib = a.size_mib or (32 if a.quick else 256)
    a.io_size_mib = a.io_size_mib or (32 if a.quick else 1024)
    a.reps = a.reps or (2 if a.quick else 5)
    suites = set(a.suite.split(","))
    segs = [int(s) for s in a.segments.split(",")]
    outdir = Path(a.out) / time.strftime("%Y%m%dT%H%M%S")
    outdir.mkdir(parents=True, exist_ok=True)
    if "seal" in suites:
        seal_suite(a, segs, outdir)
    if "io" in suites:
        Path(a.io_dir).mkdir(parents=True, exist_ok=True)
        print(f"\nIO matrix: {a.io_size_mib} MiB per point, queue depth {a.queue_depth}, 1 MiB writes, in {a.io_dir}")
        print(f"{'segment':>8} {'backend':<15} {'sealed':>7} {'plain':>7} {'ratio':>6} {'segments/s':>10} {'exits/GiB':>11} {'CPU s/GiB':>9} {'SQ s/GiB':>8}")
        if a.points:
            wanted = a.points.split(",")
            IO_POINTS[:] = [p for p in IO_POINTS if p[0] in wanted]
        rows = io_matrix(a.io_dir, a.io_size_mib << 20, segs, a.io_reps, a.queue_depth)
        report = {"benchmark": "io", "bytes_per_point": a.io_size_mib << 20, "queue_depth": a.queue_depth, "machine": machine(), "rows": rows}
        (outdir / "io.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {outdir / 'io.json'}")
    if "rt" in suites:
        rt_suite(a, outdir)
    return 0


def _cargo_json(args: list[str]) -> dict[str, object]:
    """Runs a Rust benchmark example (release build) and parses the JSON it prints last."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["cargo", "run", "--release", "-q", *args], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rt_suite(a: argparse.Namespace, outdir: Path) -> None:
    """exitless-rt against tokio and OS threads; one sealed stream on 1 vs all vCPUs."""
    print("\nruntime: exitless-rt vs tokio multi-thread vs OS threads (2 workers), median of 5")
    rt = _cargo_json(["-p", "exitless-rt", "--example", "rt_bench"])
    print(json.dumps(rt, indent=1))
    mib = a.io_size_mib
    print(f"\nscaling: one {mib} MiB sealed stream, 64 KiB segments, 1 vCPU vs all (null backend, then a file in {a.io_dir})")
    Path(a.io_dir).mkdir(parents=True, exist_ok=True)
    scaling = _cargo_json(["-p", "exitless-spill", "--example", "scaling", "--", str(mib), a.io_dir])
    print(json.dumps(scaling, indent=1))
    (outdir / "rt.json").write_text(json.dumps({"benchmark": "rt", "machine": machine(), "runtime": rt, "scaling": scaling}, indent=2) + "\n")
    print(f"wrote {outdir / 'rt.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
