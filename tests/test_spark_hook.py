"""exitless.spark.hook in-process, without a JVM.

The hook is installed into this interpreter's ``pyspark.shuffle`` and PySpark's own
ExternalMerger / ExternalSorter / ExternalGroupBy / ExternalList are driven with a
1 MiB memory limit (always exceeded) so they spill. Checked:

- results equal plain Python's;
- every spill file on disk holds no readable canary (raw, or inside PySpark's zlib
  frames: the same detector finds it in stock spill files, a positive control) and
  parses as an exitless stream under this process's key;
- swapped, tampered or foreign-key files fail with IntegrityError;
- ExternalList's pickled state is the plaintext serializer stream a stock or a
  hooked receiver reads; its spill chunks are unlinked at once;
- one key per process (a forked child makes its own), counters and their JSON file;
- ``install`` refuses an unknown version or changed internals, and so do the daemon
  and worker entry points, loudly and before patching anything.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pyspark  # installed by `make setup`; missing pyspark is a failure, not a skip
import pyspark.shuffle as shuffle
import pytest
from pyspark.serializers import BatchedSerializer, CompressedSerializer, CPickleSerializer
from pyspark.shuffle import Aggregator, ExternalGroupBy, ExternalMerger, ExternalSorter, SimpleAggregator

import exitless
import exitless.spark
from exitless import IntegrityError
from exitless.spark import hook
from exitless.spark.hook import state as hook_state
from spark_support import CANARY, files_under, index_of, plaintext_hits, value

STOCK_LIST = shuffle.ExternalList
STOCK_LIST_OF_LIST = shuffle.ExternalListOfList


def list_aggregator() -> Aggregator:
    """What rdd.groupByKey uses: values collected into lists."""

    def merge_value(c: list, v: object) -> list:
        c.append(v)
        return c

    def merge_combiners(a: list, b: list) -> list:
        a.extend(b)
        return a

    return Aggregator(lambda v: [v], merge_value, merge_combiners)


@pytest.fixture
def local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "local"
    d.mkdir()
    monkeypatch.setenv("SPARK_LOCAL_DIRS", str(d))
    return d


@pytest.fixture
def stats_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "stats"
    monkeypatch.setenv(hook.STATS_DIR_ENV, str(d))
    return d


@pytest.fixture
def hooked(local_dir: Path, stats_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(hook.BACKEND_ENV, raising=False)
    hook.uninstall()
    hook.install()
    yield local_dir
    hook.uninstall()


def assert_sealed(paths: list[str]) -> None:
    """Every file: no readable canary, and an exitless stream under this process's key."""
    assert paths, "no spill files to check"
    key_id = hook_state._current().key.key_id
    for p in paths:
        data = Path(p).read_bytes()
        assert not plaintext_hits(data), f"plaintext canary in {p}"
        info = exitless.inspect(p)
        assert info.key_id == key_id
        assert info.file_size == len(data)


# --- install / uninstall -----------------------------------------------------


def test_install_patches_open_and_list_classes(hooked: Path) -> None:
    assert shuffle.open is hook.sealing_open
    assert shuffle.ExternalList is hook.SealedExternalList
    assert shuffle.ExternalListOfList is hook.SealedExternalListOfList
    assert issubclass(shuffle.ExternalList, STOCK_LIST)
    assert issubclass(shuffle.ExternalListOfList, STOCK_LIST_OF_LIST)
    assert issubclass(shuffle.ExternalListOfList, shuffle.ExternalList)
    hook.install()  # idempotent
    assert shuffle.ExternalList is hook.SealedExternalList
    hook.uninstall()
    assert "open" not in vars(shuffle)
    assert shuffle.ExternalList is STOCK_LIST and shuffle.ExternalListOfList is STOCK_LIST_OF_LIST


# --- the spilling classes ----------------------------------------------------


@pytest.mark.parametrize("method", ["mergeValues", "mergeCombiners"])
def test_external_merger_spills_sealed(hooked: Path, method: str) -> None:
    n = 30000
    if method == "mergeValues":  # combineByKey's map side; combiners keep a canary value
        agg = Aggregator(lambda v: (v, 1), lambda c, v: (c[0], c[1] + 1), lambda a, b: (a[0], a[1] + b[1]))
        merger = ExternalMerger(agg, 1, partitions=7)
        merger.mergeValues((i % 2000, value(i)) for i in range(n))
        expected = {k: (value(k), len(range(k, n, 2000))) for k in range(2000)}
    else:  # reduceByKey's reduce side
        merger = ExternalMerger(SimpleAggregator(lambda a, b: (a[0], a[1] + b[1])), 1, partitions=7)
        merger.mergeCombiners((i % 2000, (value(i % 2000), i)) for i in range(n))
        expected = {k: (value(k), sum(range(k, n, 2000))) for k in range(2000)}
    assert merger.spills > 0
    spilled = files_under(hooked)
    assert len(spilled) >= 7
    assert_sealed(spilled)
    assert dict(merger.items()) == expected
    assert files_under(hooked) == []  # PySpark removed them after merging
    counters = hook.stats()
    assert counters["files_written"] >= len(spilled)
    assert counters["files_read"] >= len(spilled)


def test_stock_spills_show_the_canary(local_dir: Path) -> None:
    """Positive control: without the hook the detector finds the canary in PySpark's
    own (zlib-compressed) spill files; with it, in none."""
    hook.uninstall()
    merger = ExternalGroupBy(list_aggregator(), 1, partitions=7)
    merger.mergeValues((i % 500, value(i)) for i in range(20000))
    stock = files_under(local_dir)
    assert merger.spills > 0 and stock
    assert all(plaintext_hits(Path(p).read_bytes()) for p in stock)
    with pytest.raises(exitless.FormatError):
        exitless.inspect(stock[0])
    merger._cleanup()


@pytest.mark.slow
def test_external_group_by_sorted_merge_and_list_spills(
    hooked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """groupByKey's path: ExternalGroupBy spills; partitions too big for memory are
    merged by sort (ExternalSorter) and grouped by GroupByKey into
    ExternalListOfList, which spills too (LIMIT lowered to keep this quick)."""
    monkeypatch.setattr(hook.SealedExternalList, "LIMIT", 64)
    sorted_merges = []
    original = ExternalGroupBy._merge_sorted_items

    def spy(self: ExternalGroupBy, index: int):  # type: ignore[no-untyped-def]
        sorted_merges.append(index)
        return original(self, index)

    monkeypatch.setattr(ExternalGroupBy, "_merge_sorted_items", spy)
    n, keys = 60000, 40
    merger = ExternalGroupBy(list_aggregator(), 1, partitions=3)
    merger.mergeValues((i % keys, value(i)) for i in range(n))
    assert merger.spills > 0
    assert_sealed(files_under(hooked))
    before = hook.stats()
    got = {}
    spilled_lists = 0
    for k, vs in merger.items():
        if isinstance(vs, hook.SealedExternalList) and vs._chunks:
            spilled_lists += 1
            assert os.listdir(os.path.dirname(vs._chunks[0].path)) == []  # chunks are unlinked at once
        got[k] = sorted(index_of(v) for v in vs)
    assert sorted_merges, "no partition took the sort-based merge"
    assert spilled_lists > 0, "no ExternalListOfList spilled"
    assert got == {k: list(range(k, n, keys)) for k in range(keys)}
    assert hook.stats()["files_written"] > before["files_written"]


def test_external_sorter_spills_sealed(hooked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ExternalSorter unlinks each chunk right after reopening it: copy files as they
    are unlinked to check what was on disk."""
    seen: list[str] = []
    copies = hooked.parent / "copies"
    copies.mkdir()
    real_unlink = os.unlink

    def copying_unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).startswith(str(hooked)):
            dest = copies / str(len(seen))
            shutil.copyfile(path, dest)
            seen.append(str(dest))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", copying_unlink)
    # RSS that grows on every look, so the sorter is always over its limit
    rss = itertools.count(1000, 10)
    monkeypatch.setattr(shuffle, "get_used_memory", lambda: next(rss))
    data = [value(i) for i in range(40000)]
    random.Random(7).shuffle(data)
    out = list(ExternalSorter(1).sorted(data, key=index_of, reverse=True))
    assert [index_of(v) for v in out] == list(range(39999, -1, -1))
    assert seen, "ExternalSorter did not spill"
    assert_sealed(seen)


def test_external_list_sealed_chunks_and_pickle(hooked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook.SealedExternalList, "LIMIT", 100)
    items = [value(i) for i in range(1000)]
    lst = shuffle.ExternalList(items[:10])
    assert isinstance(lst, hook.SealedExternalList)
    for v in items[10:700]:
        lst.append(v)
    assert lst._chunks and lst._file is not None
    assert files_under(hooked) == []  # the chunk file is unlinked, reachable by descriptor
    assert list(lst) == items[:700]  # reading seals the current chunk
    for v in items[700:]:
        lst.append(v)
    assert len(lst._chunks) == 2  # a later spill starts a new chunk
    assert list(lst) == items and len(lst) == 1000
    for chunk in lst._chunks:
        where = f"/proc/self/fd/{chunk.fd}"
        assert not plaintext_hits(Path(where).read_bytes())
        assert exitless.inspect(where).key_id == hook_state._current().key.key_id

    values, count, serialized = lst.__getstate__()
    assert count == 1000 and values == items[len(items) - len(values) :]
    stock_ser = BatchedSerializer(CompressedSerializer(CPickleSerializer()), 1024)
    assert list(stock_ser.load_stream(io.BytesIO(serialized))) + values == items  # plaintext for the receiver

    again = pickle.loads(pickle.dumps(lst))  # a hooked receiver reseals it
    assert isinstance(again, hook.SealedExternalList) and again._chunks
    assert list(again) == items

    state = lst.__getstate__()
    hook.uninstall()  # a receiver without the hook: stock ExternalList, same state
    stock = pickle.loads(pickle.dumps(STOCK_LIST([])))
    stock.__setstate__(state)
    assert type(stock) is STOCK_LIST and list(stock) == items


def test_external_list_of_list(hooked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook.SealedExternalList, "LIMIT", 50)
    groups = [[value(i), value(i + 1)] for i in range(0, 600, 2)]
    lst = shuffle.ExternalListOfList(groups[:1])
    for g in groups[1:]:
        lst.append(g)
    assert isinstance(lst, hook.SealedExternalListOfList) and lst._chunks
    assert len(lst) == 600
    assert list(lst) == [value(i) for i in range(600)]
    back = pickle.loads(pickle.dumps(lst))
    assert isinstance(back, hook.SealedExternalListOfList)
    assert len(back) == 600 and list(back) == list(lst)
    state, expected = lst.__getstate__(), list(lst)
    hook.uninstall()
    stock = STOCK_LIST_OF_LIST.__new__(STOCK_LIST_OF_LIST)
    stock.__setstate__(state)
    assert type(stock) is STOCK_LIST_OF_LIST and list(stock) == expected and len(stock) == 600


# --- the opener ----------------------------------------------------------------


def test_opener_modes(hooked: Path) -> None:
    ser = shuffle._compressed_serializer(None)
    p = str(hooked / "spill")
    with shuffle.open(p, "wb") as f:
        ser.dump_stream([(1, value(1))], f)
        first = f.tell()
        ser.dump_stream([(2, value(2))], f)  # appended to the same stream
        assert f.tell() > first > 0
    with shuffle.open(p, "rb", 65536) as f:  # PySpark passes a buffer size
        assert list(ser.load_stream(f)) == [(1, value(1)), (2, value(2))]
    assert exitless.inspect(p).plaintext_size > first

    q = str(hooked / "random")
    f = shuffle.open(q, "w+b")
    ser.dump_stream([value(i) for i in range(50)], f)
    ser.dump_stream([value(i) for i in range(50, 60)], f)
    f.seek(0)
    assert list(ser.load_stream(f)) == [value(i) for i in range(60)]
    f.close()
    assert not plaintext_hits(Path(q).read_bytes())

    with shuffle.open("/proc/self/status") as status:  # get_used_memory's text read passes through
        assert "VmRSS" in status.read()
    for mode in ("w", "a", "r+"):
        with pytest.raises(hook.HookError, match="text mode"):
            shuffle.open(str(hooked / "t"), mode)
    for mode in ("ab", "r+b", "xb"):
        with pytest.raises(hook.HookError, match="only 'wb', 'rb' and 'w\\+b'"):
            shuffle.open(str(hooked / "t"), mode)
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(hook.HookError, match="file descriptor"):
            shuffle.open(fd, "rb")
    finally:
        os.close(fd)
    assert not (hooked / "t").exists()


def test_writer_aborted_on_error_never_reads_back(hooked: Path) -> None:
    p = str(hooked / "aborted")
    with pytest.raises(RuntimeError), shuffle.open(p, "wb") as f:
        f.write(CANARY * 100)
        raise RuntimeError("task failed mid-spill")
    with pytest.raises(IntegrityError):
        shuffle.open(p, "rb").read()


def test_swapped_tampered_and_foreign_files_fail(hooked: Path) -> None:
    ser = shuffle._compressed_serializer(None)
    a, b = str(hooked / "0"), str(hooked / "1")
    for path, i in ((a, 0), (b, 1)):
        with shuffle.open(path, "wb") as f:
            ser.dump_stream([(i, value(i))], f)
    os.rename(a, str(hooked / "tmp"))
    os.rename(b, a)
    os.rename(str(hooked / "tmp"), b)
    for path in (a, b):
        with pytest.raises(IntegrityError), shuffle.open(path, "rb") as f:
            list(ser.load_stream(f))

    c = str(hooked / "2")
    with shuffle.open(c, "wb") as f:
        ser.dump_stream([(2, value(2))], f)
    raw = bytearray(Path(c).read_bytes())
    raw[-20] ^= 1
    Path(c).write_bytes(bytes(raw))
    with pytest.raises(IntegrityError), shuffle.open(c, "rb") as f:
        f.read()

    d = str(hooked / "3")
    with shuffle.open(d, "wb") as f:
        ser.dump_stream([(3, value(3))], f)
    remembered = dict(hook_state._current().generations)
    hook_state._state = None  # as if another process: a new key (that knows the same write tags)
    hook_state._current().generations.update(remembered)
    with pytest.raises(IntegrityError), shuffle.open(d, "rb") as f:
        f.read()


def test_an_older_file_put_back_at_a_reused_path_fails(hooked: Path) -> None:
    """ExternalMerger names its spill directories after id(), which Python reuses: the
    same process writes the same path again. An attacker who saved the older file
    and puts it back must not get it read as the newer one."""
    ser = shuffle._compressed_serializer(None)
    p = str(hooked / "reused")
    with shuffle.open(p, "wb") as f:
        ser.dump_stream([(1, value(1))], f)
    older = Path(p).read_bytes()
    with shuffle.open(p, "wb") as f:
        ser.dump_stream([(2, value(2))], f)
    with shuffle.open(p, "rb") as f:  # the newer file reads back
        assert list(ser.load_stream(f)) == [(2, value(2))]
    Path(p).write_bytes(older)
    with pytest.raises(IntegrityError), shuffle.open(p, "rb") as f:
        list(ser.load_stream(f))
    # A path this process never wrote is refused before any byte is read.
    planted = hooked / "planted"
    planted.write_bytes(older)
    with pytest.raises(IntegrityError, match="planted"):
        shuffle.open(str(planted), "rb")


def test_forked_child_has_its_own_key(hooked: Path) -> None:
    p = str(hooked / "parent")
    with shuffle.open(p, "wb") as f:
        f.write(b"parent data")
    parent_key = hook_state._current().key.key_id
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's key
        try:
            os.close(r)
            q = str(hooked / "child")
            with shuffle.open(q, "wb") as f:
                f.write(b"child data")
            try:
                shuffle.open(p, "rb").read()
                parent_readable = True
            except IntegrityError:
                parent_readable = False
            msg = {
                "key": hook_state._current().key.key_id.hex(),
                "pid": hook.stats()["pid"],
                "files": hook.stats()["files_written"],
                "parent_readable": parent_readable,
            }
            os.write(w, json.dumps(msg).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    child = json.loads(data)
    assert child["pid"] == pid and child["key"] != parent_key.hex()
    assert child["files"] == 1  # counters restart in the child
    assert child["parent_readable"] is False
    assert exitless.inspect(str(hooked / "child")).key_id.hex() == child["key"]


def test_stats_file_per_process(hooked: Path, stats_dir: Path) -> None:
    with shuffle.open(str(hooked / "s"), "wb") as f:
        f.write(b"x" * 5000)
    with shuffle.open(str(hooked / "s"), "rb") as f:
        f.read()
    path = stats_dir / f"exitless-spark-{os.getpid()}.json"
    written = json.loads(path.read_text())
    assert written["files_written"] == 1 and written["bytes_written"] == 5000
    assert written["sealed_bytes_written"] > 5000
    # The default, auto, is io_uring where it works (each file's own counters say which).
    uring = exitless.backends()["uring"]["available"]
    assert written["backend"] == ("uring" if uring else "sync") and written["pyspark"] == pyspark.__version__
    assert written["files_written_uring"] == hook.stats()["files_read_uring"] == int(uring)
    assert hook.stats()["files_read"] == 1
    assert list(hook.iter_stats_files(stats_dir)) == [written]


def test_backend_override(local_dir: Path, stats_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook.uninstall()
    monkeypatch.setenv(hook.BACKEND_ENV, "ocall")
    hook.install()
    try:
        merger = ExternalMerger(SimpleAggregator(lambda a, b: a + b), 1, partitions=5)
        merger.mergeValues((i % 1000, i) for i in range(20000))
        assert merger.spills > 0
        assert sum(v for _, v in merger.items()) == sum(range(20000))
        assert hook.stats()["backend"] == "ocall"
    finally:
        hook.uninstall()
    monkeypatch.setenv(hook.BACKEND_ENV, "no-such-backend")
    with pytest.raises(hook.HookError, match="EXITLESS_SPARK_BACKEND='no-such-backend'"):
        hook.install()
    assert not hook.installed() and "open" not in vars(shuffle)


def test_worker_main_wrapper_logs_task_counters(hooked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fake_main(infile: object, outfile: object) -> str:
        with shuffle.open(str(hooked / "task"), "wb") as f:
            f.write(b"spill")
        return "done"

    module = types.SimpleNamespace(main=fake_main)
    hook.wrap_worker_main(module)  # type: ignore[arg-type]
    wrapped = module.main
    hook.wrap_worker_main(module)  # type: ignore[arg-type]
    assert module.main is wrapped
    assert module.main(None, None) == "done"
    err = capsys.readouterr().err
    assert "task sealed 1 spill files (5 bytes)" in err


# --- refusals --------------------------------------------------------------------


def test_unknown_version_refused(local_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook.uninstall()
    for version in ("3.4.1", "4.4.0", "5.0.0.dev0"):
        monkeypatch.setattr(pyspark, "__version__", version)
        with pytest.raises(hook.HookError) as err:
            hook.install()
        message = str(err.value)
        assert (
            f"pyspark {version}" in message
            and "plaintext" in message
            and "3.5.x, 4.0.x, 4.1.x, 4.2.x, 4.3.x" in message
        )
        assert not hook.installed()
        assert "open" not in vars(shuffle) and shuffle.ExternalList is STOCK_LIST


def _refused(match: str) -> None:
    with pytest.raises(hook.HookError, match=match):
        hook.install()
    assert not hook.installed()
    assert vars(shuffle).get("open") is not hook.sealing_open and shuffle.ExternalList is STOCK_LIST


def test_changed_internals_refused(local_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook.uninstall()
    with monkeypatch.context() as m:
        m.delattr(STOCK_LIST, "_open_file")
        _refused("ExternalList._open_file is missing")
    with monkeypatch.context() as m:

        def spill_elsewhere(path: str) -> None:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT), "wb") as f:
                f.write(b"plaintext")

        spill_elsewhere.__module__ = "pyspark.shuffle"
        m.setattr(shuffle, "spill_elsewhere", spill_elsewhere, raising=False)
        _refused(r"spill_elsewhere uses \['fdopen', 'open'\]")
    with monkeypatch.context() as m:

        def _spill(self: ExternalMerger) -> None:
            with io.open("x", "wb") as f:  # noqa: UP020
                f.write(b"")

        _spill.__module__ = "pyspark.shuffle"
        m.setattr(ExternalMerger, "_spill", _spill)
        _refused("ExternalMerger._spill no longer spills through open")
    with monkeypatch.context() as m:
        m.setattr(shuffle, "open", open, raising=False)
        _refused("defines its own 'open'")
    with monkeypatch.context() as m:
        m.setattr(STOCK_LIST_OF_LIST, "extend", lambda self, vs: None, raising=False)
        _refused("ExternalListOfList has methods the hook does not know")
    with monkeypatch.context() as m:
        alias = types.ModuleType("pyspark.alias_for_test")
        alias.ExternalList = STOCK_LIST  # type: ignore[attr-defined]
        m.setitem(sys.modules, "pyspark.alias_for_test", alias)
        _refused("pyspark.alias_for_test.ExternalList holds its own reference")


@pytest.mark.parametrize("entry", ["exitless.spark.daemon", "exitless.spark.worker"])
def test_entry_points_fail_loudly_on_unknown_version(entry: str, tmp_path: Path) -> None:
    """What Spark sees when the hook refuses: the daemon (or worker) exits non-zero
    at start, before it reports a port, with the reason on stderr."""
    script = textwrap.dedent(
        f"""
        import runpy, pyspark
        pyspark.__version__ = "3.4.4"
        runpy.run_module({entry!r}, run_name="__main__")
        """
    )
    env = {**os.environ, "SPARK_LOCAL_DIRS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL
    )
    assert proc.returncode != 0
    assert proc.stdout == b""  # no port was reported to the JVM
    assert (
        b"HookError" in proc.stderr
        and b"pyspark 3.4.4" in proc.stderr
        and b"refusing to start" in proc.stderr
    )


def test_daemon_entry_point_starts_and_reports_port(tmp_path: Path) -> None:
    """With a supported pyspark the daemon module installs the hook, wraps the worker
    main and runs pyspark.daemon, which writes its port (4 bytes) to stdout."""
    env = {**os.environ, "SPARK_LOCAL_DIRS": str(tmp_path), "PYTHON_WORKER_FACTORY_SECRET": "s"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exitless.spark.daemon"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        port = int.from_bytes(proc.stdout.read(4), "big", signed=True)
        assert 0 < port < 65536
    finally:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.close()  # the daemon exits when the JVM closes its stdin
        proc.wait(timeout=30)
        err = proc.stderr.read()
    assert b"spill files are sealed" in err and b"Traceback" not in err.replace(b"SystemExit", b"")


# --- configure -------------------------------------------------------------------


def test_configure_refuses_an_unverified_pyspark_on_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unverified pyspark was accepted by configure() and the first job died in a
    worker (4.3.0 did, before it was verified); the refusal belongs on the driver, before
    the session starts, and changes nothing."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    for version in ("4.4.0", "3.4.4", "5.0.0.dev0"):
        monkeypatch.setattr(pyspark, "__version__", version)
        conf = SparkConf(loadDefaults=False).setMaster("local[2]")
        builder = SparkSession.Builder().master("local[2]")
        for target in (conf, builder):
            with pytest.raises(exitless.spark.HookError) as err:
                exitless.spark.configure(target)
            message = str(err.value)
            assert f"pyspark {version}" in message and "3.5.x, 4.0.x, 4.1.x, 4.2.x, 4.3.x" in message, message
            assert f"the newest verified is {hook.NEWEST_VERIFIED_PYSPARK}" in message, message
        assert conf.get("spark.python.daemon.module") is None
        assert "spark.python.daemon.module" not in builder._options
    monkeypatch.setattr(pyspark, "__version__", "3.5.9")
    # Internals that changed under a verified version number are refused too.
    monkeypatch.delattr(STOCK_LIST, "_open_file")
    with pytest.raises(exitless.spark.HookError, match=r"ExternalList\._open_file is missing"):
        exitless.spark.configure(SparkConf(loadDefaults=False))


def test_configure_builder_and_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    builder = SparkSession.Builder().master("local[2]")
    assert exitless.spark.configure(builder, backend="ocall", stats_dir=tmp_path / "s") is builder
    opts = builder._options
    assert opts["spark.python.daemon.module"] == "exitless.spark.daemon"
    assert opts["spark.python.worker.module"] == "exitless.spark.worker"
    assert opts["spark.executorEnv.EXITLESS_SPARK_BACKEND"] == "ocall"
    assert opts["spark.executorEnv.EXITLESS_SPARK_STATS_DIR"] == str(tmp_path / "s")
    assert os.environ["PYSPARK_PYTHON"] == sys.executable  # local mode: this interpreter has exitless

    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/py/bin/python3")
    conf = SparkConf(loadDefaults=False).setMaster("spark://127.0.0.1:7077")
    assert exitless.spark.configure(conf) is conf
    assert conf.get("spark.python.daemon.module") == "exitless.spark.daemon"
    assert conf.get("spark.executorEnv.EXITLESS_SPARK_BACKEND") is None  # the default stays the workers'
    assert os.environ["PYSPARK_PYTHON"] == "/opt/py/bin/python3"
    exitless.spark.configure(conf, python_executable="/usr/bin/python3.11")
    assert os.environ["PYSPARK_PYTHON"] == "/usr/bin/python3.11"

    with pytest.raises(ValueError, match="unknown exitless backend 'fast'"):
        exitless.spark.configure(SparkConf(loadDefaults=False), backend="fast")
    taken = SparkConf(loadDefaults=False).set("spark.python.daemon.module", "mycorp.daemon")
    with pytest.raises(ValueError, match=r"spark\.python\.daemon\.module is already set to 'mycorp\.daemon'"):
        exitless.spark.configure(taken)
    with pytest.raises(TypeError, match=r"SparkSession\.Builder or a SparkConf"):
        exitless.spark.configure({"spark.master": "local"})  # type: ignore[type-var]
