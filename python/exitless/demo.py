"""The main job for now (``make run``): seal a generated 256 MiB file through the
Python API, reopen and verify it, show that a flipped byte is caught, and print
throughput. Later issues grow this into the Spark job and benchmark report."""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from . import IntegrityError, generate_key, inspect, open_spill

MiB = 1 << 20


def run(size: int, chunk: int, segment_size: int, directory: str | None) -> int:
    key = generate_key()
    data = os.urandom(size)
    with tempfile.TemporaryDirectory(prefix="exitless-demo-", dir=directory) as tmp:
        path = os.path.join(tmp, "spill-0.sealed")
        view = memoryview(data)

        t0 = time.perf_counter()
        with open_spill(path, "wb", key, b"demo/spill-0", segment_size=segment_size) as f:
            for off in range(0, size, chunk):
                f.write(view[off : off + chunk])
        t_write = time.perf_counter() - t0
        wstats = f.final_stats

        buf = bytearray(chunk)
        ok, pos = True, 0
        t0 = time.perf_counter()
        with open_spill(path, "rb", key, b"demo/spill-0") as f:
            while n := f.readinto(buf):
                ok &= memoryview(buf)[:n] == view[pos : pos + n]
                pos += n
        t_read = time.perf_counter() - t0
        ok &= pos == size

        info = inspect(path)
        with open(path, "r+b") as raw:  # flip one byte in the middle of the file
            raw.seek(info.file_size // 2)
            b = raw.read(1)
            raw.seek(-1, os.SEEK_CUR)
            raw.write(bytes([b[0] ^ 1]))
        try:
            with open_spill(path, "rb", key, b"demo/spill-0") as f:
                f.read()
            caught = "NOT DETECTED"
        except IntegrityError as e:
            caught = f"detected: {e}"

    gb = size / 1e9
    print(f"exitless main job: sealed spill of {size // MiB} MiB, {segment_size // 1024} KiB segments, {chunk // 1024} KiB writes")
    print(f"  file: {info.file_size} bytes in {info.segments} segments ({info.algorithm}, overhead {info.file_size - size} bytes)")
    how = f"{wstats['backend']}{', O_DIRECT (disk, not page cache)' if wstats['direct'] else ''}"
    print(f"  IO backend  : {how}; {wstats['total_exits']} enclave exits for {wstats['segments']} segments")
    print(f"  seal + write: {gb / t_write:6.2f} GB/s  ({t_write:.2f} s)")
    print(f"  read + open : {gb / t_read:6.2f} GB/s  ({t_read:.2f} s)")
    print(f"  round trip  : {'verified byte for byte' if ok else 'MISMATCH'}")
    print(f"  tampering   : {caught}")
    return 0 if ok and caught.startswith("detected") else 1


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m exitless.demo", description=__doc__)
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--chunk-kib", type=int, default=1024)
    p.add_argument("--segment-size", type=int, default=65536)
    p.add_argument("--dir", default=os.environ.get("EXITLESS_SPILL_DIR"), help="directory for the spill file (default: $EXITLESS_SPILL_DIR or the system temp dir)")
    a = p.parse_args()
    return run(a.size_mib * MiB, a.chunk_kib * 1024, a.segment_size, a.dir)


if __name__ == "__main__":
    raise SystemExit(main())
