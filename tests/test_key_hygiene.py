"""Key hygiene (docs/HARDENING.md, "Key hygiene"): once streams are closed and keys
dropped, neither the data key nor the per-stream keys derived from it are left in
the process's memory.

A child process makes a key from random bytes it reads straight into a bytearray,
hands them to the test through a pipe, seals and opens streams with it on every
backend (and whole buffers), then wipes and drops everything and waits. The test
reads the child's /proc/PID/maps and /proc/PID/mem and searches every private
writable region (the [heap], anonymous mappings: allocator arenas, Python's
object arenas, thread stacks; and the main [stack]) for the 32 key bytes and for
each stream's derived key (HKDF from the key and the stream's header,
docs/FORMAT.md section 3). A positive control first scans while the key is alive
and a writer is open (both the key and that writer's stream key must be found),
so a scan that finds nothing later means something.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reference_format import derive_stream_key

_CHILD = r"""
import gc, os, sys
import exitless
from exitless.streams import BACKENDS
from exitless import backends

out_fd, tmp = int(sys.argv[1]), sys.argv[2]
secret = bytearray(32)
with open("/dev/urandom", "rb", buffering=0) as f:   # straight into the bytearray, no bytes copy
    assert f.readinto(secret) == 32
os.write(out_fd, secret)
key = exitless.Key(secret)
secret[:] = bytes(32)

def wait(what):
    print(what, flush=True)
    assert sys.stdin.readline().strip() == "go"

# Positive control: the key, and an open writer's stream key, are in memory now.
control = exitless.open_spill(os.path.join(tmp, "control"), "wb", key, b"hygiene", backend="sync", parallel=False)
control.write(bytes(70_000))                      # segment 0 (with the header) reaches the file
wait("alive " + control.name)
control.close()
del control
data = bytes(range(256)) * 2000                   # 512,000 bytes: 8 segments, parallel sealing
names = [os.path.join(tmp, "control")]
for b, facts in backends().items():
    if not facts["available"]:
        continue
    path = os.path.join(tmp, b)
    with exitless.open_spill(path, "wb", key, b"hygiene", backend=b) as f:
        f.write(data)
    with exitless.open_spill(path, "rb", key, b"hygiene", backend=b) as f:
        assert f.read() == data
    names.append(path)
path = os.path.join(tmp, "chacha")
with exitless.open_spill(path, "wb", key, b"hygiene", backend="sync", algorithm="chacha20-poly1305") as f:
    f.write(data)
with exitless.open_spill(path, "rb", key, b"hygiene", backend="sync") as f:
    assert f.read() == data
names.append(path)
path = os.path.join(tmp, "w+b")
with exitless.open_spill(path, "w+b", key, b"hygiene", backend="sync") as f:
    f.write(data)
    f.seek(0)
    assert f.read() == data
names.append(path)
sealed = exitless.seal_bytes(data, key, b"hygiene")
assert exitless.open_bytes(sealed, key, b"hygiene") == data
with open(os.path.join(tmp, "buffer"), "wb") as f:
    f.write(sealed)
names.append(os.path.join(tmp, "buffer"))
del sealed, f
key.wipe()
del key
gc.collect()
exitless.release_backends()
print(" ".join(names), flush=True)
wait("dropped")
"""

_REGION = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$")


def _regions(pid: int) -> list[tuple[int, int, str]]:
    """Private writable regions that are not file mappings: (start, end, label)."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        m = _REGION.match(line)
        if not m:
            continue
        start, end, perms, inode, name = int(m[1], 16), int(m[2], 16), m[3], int(m[4]), m[5].strip()
        if perms[0] != "r" or perms[1] != "w" or perms[3] != "p" or inode != 0:
            continue
        if name and name not in ("[heap]", "[stack]"):
            continue  # [vvar], [vsyscall], named anonymous mappings of the kernel
        out.append((start, end, name or "anonymous"))
    return out


def _scan(pid: int, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Where each needle occurs: {needle name: ["label+offset", ...]}."""
    hits: dict[str, list[str]] = {name: [] for name in needles}
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end, label in _regions(pid):
            try:
                mem.seek(start)
                blob = mem.read(end - start)
            except OSError:
                continue  # unmapped meanwhile, or unreadable (guard pages)
            for name, needle in needles.items():
                at = blob.find(needle)
                while at != -1:
                    hits[name].append(f"{label}@{start + at:#x}")
                    at = blob.find(needle, at + 1)
    return hits


@pytest.mark.skipif(not os.access("/proc/self/mem", os.R_OK), reason="needs /proc/PID/mem")
def test_no_key_bytes_remain_after_streams_close_and_keys_drop(tmp_path):
    r, w = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(w), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=(w,),
    )
    os.close(w)
    try:
        key = os.read(r, 32)
        assert len(key) == 32
        what, control = child.stdout.readline().split()
        assert what == "alive"
        stream_key = derive_stream_key(key, Path(control).read_bytes()[:68], b"hygiene")
        alive = _scan(child.pid, {"key": key, "stream key": stream_key})
        # If these fail, the scan cannot see what it looks for, and finding nothing
        # later would prove nothing.
        assert alive["key"], "positive control: the live key was not found"
        assert alive["stream key"], "positive control: an open writer's stream key was not found"
        child.stdin.write("go\n")
        child.stdin.flush()
        files = child.stdout.readline().split()
        assert child.stdout.readline().strip() == "dropped"
        needles = {"key": key}
        for path in files:
            header = Path(path).read_bytes()[:68]
            needles[f"stream key of {Path(path).name}"] = derive_stream_key(key, header, b"hygiene")
        hits = _scan(child.pid, needles)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        os.close(r)
    leaks = {name: where for name, where in hits.items() if where}
    assert not leaks, f"key material left in memory after everything was dropped: {leaks}"
