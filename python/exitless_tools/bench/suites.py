"""The detailed suites (``python -m exitless_tools suites``; the IO matrix is
``python -m exitless_tools bench``): not tests. Measures, side by side in one
process on the same data, exitless's seal/open against the ``cryptography``
package's AES-256-GCM over the same segmentation, at several segment sizes, plus
sealed file streams against plain file writes. Prints a table and writes JSON
under ``bench-results/<timestamp>/``. Ratios matter, not absolute times: the
machines are shared and noisy, so runs are interleaved and the median is kept."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exitless import generate_key, open_into, open_spill, seal_into, sealed_length

from .machine import machine
from .runtime import cargo_example

MiB = 1 << 20
HEADER, TAG = 68, 16


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
        for (off, n), nonce, slot in zip(chunks, nonces, slots, strict=True):
            aes.encrypt_into(nonce, data[off : off + n], None, slot)

    backv = memoryview(back)

    def c_open() -> None:
        for (off, n), nonce, slot in zip(chunks, nonces, slots, strict=True):
            aes.decrypt_into(nonce, slot, None, backv[off : off + n])

    def x_seal() -> None:
        seal_into(data, sealed, key, segment_size=segment_size)

    def x_open() -> None:
        open_into(sealed, back, key)

    results: dict[str, list[float]] = {
        "exitless_seal": [],
        "cryptography_seal": [],
        "exitless_open": [],
        "cryptography_open": [],
    }
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


def bench_files(
    data: memoryview, segment_size: int, directory: str, reps: int, chunk: int = MiB
) -> dict[str, float]:
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
    memory: dict[str, dict[str, float]] = {}
    files: dict[str, dict[str, float]] = {}
    report: dict[str, object] = {
        "benchmark": "seal",
        "bytes": data.nbytes,
        "reps": a.reps,
        "machine": machine(),
        "memory": memory,
        "files": files,
        "file_dir": a.dir,
    }
    print(f"exitless bench: {a.size_mib} MiB per point, median of {a.reps} interleaved runs, one core")
    print(
        f"{'segment':>9} | {'seal GB/s':>9} {'crypto':>7} {'ratio':>6} | {'open GB/s':>9} {'crypto':>7} {'ratio':>6} | {'file write':>10} {'plain':>6} {'ratio':>6} | {'file read':>9} {'plain':>6} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory(prefix="exitless-bench-", dir=a.dir) as tmp:
        for s in segs:
            m = bench_memory(data, s, a.reps)
            f = bench_files(data, s, tmp, a.reps)
            memory[str(s)] = m
            files[str(s)] = f
            print(
                f"{s:>9} | {m['exitless_seal']:>9.2f} {m['cryptography_seal']:>7.2f} {m['seal_ratio']:>6.2f} | "
                f"{m['exitless_open']:>9.2f} {m['cryptography_open']:>7.2f} {m['open_ratio']:>6.2f} | "
                f"{f['sealed_write']:>10.2f} {f['plain_write']:>6.2f} {f['write_ratio']:>6.2f} | "
                f"{f['sealed_read']:>9.2f} {f['plain_read']:>6.2f} {f['read_ratio']:>6.2f}",
                flush=True,
            )
    (outdir / "seal.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {outdir / 'seal.json'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m exitless_tools suites",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--suite",
        default="seal,scaling",
        help="comma-separated: seal (crypto vs cryptography), scaling (one stream over 1 vs all vCPUs). The IO matrix and the runtime against tokio are `python -m exitless_tools bench`.",
    )
    p.add_argument("--size-mib", type=int, help="MiB per seal measurement (default 256; 32 with --quick)")
    p.add_argument(
        "--io-size-mib",
        type=int,
        help="MiB of the stream the scaling suite writes (default 1024; 32 with --quick)",
    )
    p.add_argument("--segments", default="4096,65536,1048576", help="comma-separated segment sizes")
    p.add_argument(
        "--reps", type=int, help="interleaved repetitions, median reported (default 5; 2 with --quick)"
    )
    p.add_argument(
        "--dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="directory for the seal suite's file benchmark (default /dev/shm: measures CPU, not the disk)",
    )
    p.add_argument(
        "--io-dir",
        default="bench-results",
        help="directory for the scaling suite's file (a disk file system, so O_DIRECT applies)",
    )
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
    if "scaling" in suites:
        scaling_suite(a, outdir)
    return 0


def scaling_suite(a: argparse.Namespace, outdir: Path) -> None:
    """One sealed stream on 1 vCPU against all (the runtime against tokio is `python -m exitless_tools bench`'s)."""
    mib = a.io_size_mib
    print(
        f"\nscaling: one {mib} MiB sealed stream, 64 KiB segments, 1 vCPU vs all (null backend, then a file in {a.io_dir})"
    )
    Path(a.io_dir).mkdir(parents=True, exist_ok=True)
    scaling = cargo_example("exitless-bench", "scaling", [str(mib), a.io_dir])
    print(json.dumps(scaling, indent=1))
    (outdir / "scaling.json").write_text(
        json.dumps({"benchmark": "scaling", "machine": machine(), "scaling": scaling}, indent=2) + "\n"
    )
    print(f"wrote {outdir / 'scaling.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
