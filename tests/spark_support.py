"""Helpers shared by the PySpark hook tests: canary values and a plaintext detector.

PySpark compresses every spill (``CompressedSerializer``: frames of a 4-byte
big-endian length and a zlib block), so a canary is usually *not* visible as raw
bytes even in a stock, plaintext spill file. :func:`plaintext_hits` therefore
looks both at the raw bytes and inside every zlib frame it can decode, which is
what an attacker reading a stock spill would do. The tests show it finds the
canary in stock spill files (a positive control) before trusting it on sealed ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

#: Set to 1 (``make test`` does) and a test marked ``java`` fails without Java instead
#: of skipping.
REQUIRE_JAVA_ENV = "EXITLESS_REQUIRE_JAVA"

CANARY = b"EXITLESS-CANARY-5f1d2c9e"


def java_missing(
    env: Mapping[str, str] = os.environ, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None when there is a ``java`` to run (on the PATH or in ``$JAVA_HOME/bin``), else why not."""
    java_home = env.get("JAVA_HOME")
    if which("java") is not None or (
        java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK)
    ):
        return None
    return "no java on the PATH or in $JAVA_HOME/bin"


def java_required(env: Mapping[str, str] = os.environ) -> bool:
    """Whether a missing Java fails the tests that need it (``EXITLESS_REQUIRE_JAVA=1``)."""
    return env.get(REQUIRE_JAVA_ENV, "") not in ("", "0")


def java_verdict(missing: str | None, required: bool) -> tuple[Literal["skip", "fail"], str] | None:
    """What a test that needs Java does: run (None), or skip or fail with the reason."""
    if missing is None:
        return None
    reason = f"needs Java for PySpark ({missing})"
    if required:
        return "fail", (
            f"{reason}; {REQUIRE_JAVA_ENV}=1 makes that a failure (`make test` installs "
            "openjdk-17-jdk-headless through scripts/system-deps.sh)"
        )
    return "skip", f"{reason}: install a JDK 17 (`make system-deps`), or run `make test`"


def value(i: int) -> bytes:
    """A spill value carrying the canary, its index and 40 pseudo-random bytes."""
    index = i.to_bytes(8, "big")
    return CANARY + index + hashlib.blake2b(index, digest_size=40).digest()


def index_of(v: bytes) -> int:
    """The index :func:`value` put into ``v``."""
    return int.from_bytes(v[len(CANARY) : len(CANARY) + 8], "big")


def _frames(data: bytes) -> Iterator[bytes]:
    """Decompressed payloads of the length-prefixed zlib frames at the start of
    ``data`` (a partial last frame is decompressed as far as it goes)."""
    pos = 0
    while pos + 4 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big", signed=True)
        if n <= 0:
            return
        chunk = data[pos + 4 : pos + 4 + n]
        try:
            yield zlib.decompressobj().decompress(chunk)
        except zlib.error:
            return
        pos += 4 + n


def plaintext_hits(data: bytes, canary: bytes = CANARY) -> bool:
    """True if ``canary`` is readable in ``data``: as raw bytes, or inside a
    PySpark compressed-serializer frame."""
    if canary in data:
        return True
    return any(canary in payload for payload in _frames(data))


def files_under(root: str | os.PathLike[str]) -> list[str]:
    """Every regular file below ``root``."""
    out = []
    for dirpath, _, names in os.walk(root):
        out.extend(os.path.join(dirpath, n) for n in names)
    return out


class CanaryPoller:
    """Reads every file under ``root`` every ``interval`` seconds in a background
    thread (re-reading a file only when its size or mtime changed) and records any
    that shows the canary. Spill files live only while a task runs, so this runs
    during the job."""

    def __init__(self, root: str | os.PathLike[str], interval: float = 0.02) -> None:
        import threading

        self.root = os.fspath(root)
        self.interval = interval
        self.hits: dict[str, int] = {}
        self.seen: set[str] = set()
        self.python_spills: set[str] = set()
        #: the first 4 bytes of every file read (its latest version)
        self.heads: dict[str, bytes] = {}
        self.reads = 0
        self._versions: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary-poller", daemon=True)

    def __enter__(self) -> CanaryPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.scan()  # one last look at whatever is left

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.interval)

    def scan(self) -> None:
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                    version = (st.st_size, st.st_mtime_ns)
                    if self._versions.get(path) == version:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:  # deleted between listing and reading: spill files are short-lived
                    continue
                self._versions[path] = version
                self.reads += 1
                self.seen.add(path)
                self.heads[path] = data[:4]
                if f"{os.sep}python{os.sep}" in path:
                    self.python_spills.add(path)
                if plaintext_hits(data):
                    self.hits[path] = len(data)


# --- Spark jobs (shipped to the workers by value: see register_by_value) --------


def register_by_value() -> None:
    """Let cloudpickle ship this module's functions to workers, where the tests
    directory is not importable."""
    import sys

    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def group_job(sc, n: int, keys: int, parts: int) -> dict:  # type: ignore[no-untyped-def]
    """groupByKey: map-side ExternalMerger, reduce-side ExternalGroupBy."""
    rdd = sc.range(n, numSlices=parts).map(lambda i: (i % keys, value(i)))
    return rdd.groupByKey(parts).mapValues(lambda vs: sorted(index_of(v) for v in vs)).collectAsMap()


def group_expected(n: int, keys: int) -> dict:
    return {k: list(range(k, n, keys)) for k in range(keys)}


def combine_job(sc, n: int, keys: int, parts: int) -> dict:  # type: ignore[no-untyped-def]
    """combineByKey with combiners that keep a canary value (ExternalMerger both sides)."""
    rdd = sc.range(n, numSlices=parts).map(lambda i: (i % keys, value(i)))
    combined = rdd.combineByKey(
        lambda v: (1, index_of(v), v),
        lambda c, v: (c[0] + 1, c[1] + index_of(v), min(c[2], v)),
        lambda a, b: (a[0] + b[0], a[1] + b[1], min(a[2], b[2])),
        parts,
    )
    return combined.mapValues(lambda c: (c[0], c[1], index_of(c[2]))).collectAsMap()


def combine_expected(n: int, keys: int) -> dict:
    return {k: (len(range(k, n, keys)), sum(range(k, n, keys)), k) for k in range(min(keys, n))}


def reduce_job(sc, n: int, keys: int, parts: int) -> dict:  # type: ignore[no-untyped-def]
    """reduceByKey keeping the largest value per key."""
    rdd = sc.range(n, numSlices=parts).map(lambda i: (i % keys, value(i)))
    return rdd.reduceByKey(max, parts).mapValues(index_of).collectAsMap()


def reduce_expected(n: int, keys: int) -> dict:
    return {k: max(range(k, n, keys)) for k in range(min(keys, n))}


def sort_job(sc, n: int, parts: int) -> list:  # type: ignore[no-untyped-def]
    """sortByKey over canary keys (ExternalSorter in the workers), descending."""
    rdd = sc.range(n, numSlices=parts).map(lambda i: (value((i * 7919) % n), None))
    return rdd.sortByKey(ascending=False, numPartitions=parts).map(lambda kv: index_of(kv[0])).collect()


def sort_expected(n: int) -> list:
    assert n % 7919, "7919 must not divide n (the keys are a permutation)"
    return list(range(n - 1, -1, -1))
