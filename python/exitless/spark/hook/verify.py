"""Refuses a PySpark the hook was not verified against: :func:`check_pyspark` checks the
version, and reads the bytecode of ``pyspark.shuffle`` to check that its spill files
still go through the module-global ``open`` (and so through :func:`sealing_open`) and
nothing around it, before anything is patched.
"""

from __future__ import annotations

import dis
import os
import sys
import types
from collections.abc import Iterator

from .io import sealing_open
from .state import _LOG_PREFIX, HookError

#: PySpark releases whose ``pyspark/shuffle.py`` this hook was checked against
#: (major.minor; 3.5.6, 3.5.9 and 4.0.1, 4.0.5 read line by line; 4.1.4, 4.2.1 and 4.3.0
#: diffed against 4.0.5 and checked with ``python -m exitless_tools verify-spark``, which
#: runs :func:`check_pyspark` on each release's ``pyspark.shuffle`` and compiles the JVM
#: library against its jars: docs/SPARK_VERSIONS.md).
SUPPORTED_PYSPARK = ("3.5", "4.0", "4.1", "4.2", "4.3")
#: The newest PySpark release the hook was verified against, named in refusals.
NEWEST_VERIFIED_PYSPARK = "4.3.0"

# Functions that must still spill through the module-global ``open`` (and so
# through sealing_open). ``get_used_memory`` reads /proc/self/status as text when
# psutil is missing; it is allowed, not required.
_EXPECTED_OPEN_SITES = {
    "ExternalMerger._spill",
    "ExternalMerger._merged_items",
    "ExternalMerger._recursive_merged_items",
    "ExternalSorter.sorted",
    "ExternalList._open_file",
    "ExternalGroupBy._spill",
    "ExternalGroupBy._merged_items",
    "ExternalGroupBy._merge_sorted_items.load_partition",
}
_ALLOWED_OPEN_SITES = _EXPECTED_OPEN_SITES | {"get_used_memory"}
# Attribute names that open or copy files around ``open`` (os.open, io.open,
# os.fdopen, tempfile.*, shutil.copy*, Path.write_bytes, mmap...).
_RISKY_ATTRS = {
    "open",
    "fdopen",
    "dup",
    "dup2",
    "FileIO",
    "open_code",
    "mkstemp",
    "NamedTemporaryFile",
    "TemporaryFile",
    "SpooledTemporaryFile",
    "write_bytes",
    "write_text",
    "copyfile",
    "copyfileobj",
    "copy",
    "copy2",
    "copytree",
    "move",
    "mmap",
    "pwrite",
    "pwritev",
    "sendfile",
}
_RISKY_GLOBALS = {"io", "tempfile", "mmap", "pathlib", "Path", "gzip", "bz2", "lzma", "fdopen"}
# The stock methods that use them, all replaced by SealedExternalList.
_RISKY_ALLOWED = {"ExternalList.__getstate__", "ExternalList.__iter__"}
_LIST_METHODS = (
    "__init__",
    "__getstate__",
    "__setstate__",
    "__iter__",
    "__len__",
    "append",
    "_open_file",
    "__del__",
    "_spill",
)
_LIST_OF_LIST_METHODS = ("__init__", "append", "__iter__")
_CLASSES = (
    "ExternalMerger",
    "ExternalSorter",
    "ExternalGroupBy",
    "ExternalList",
    "ExternalListOfList",
    "GroupByKey",
)


def _functions(module: types.ModuleType) -> Iterator[tuple[str, types.CodeType]]:
    """(qualified name, code) of every function and method defined in ``module``,
    nested functions included."""

    def walk(name: str, code: types.CodeType) -> Iterator[tuple[str, types.CodeType]]:
        yield name, code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                # Comprehensions count as their function (Python 3.12 inlines them anyway).
                inner = name if const.co_name.startswith("<") else f"{name}.{const.co_name}"
                yield from walk(inner, const)

    for name, obj in vars(module).items():
        if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
            yield from walk(name, obj.__code__)
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            for attr, member in vars(obj).items():
                func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if isinstance(func, types.FunctionType):
                    yield from walk(f"{name}.{attr}", func.__code__)


def _names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """Names ``code`` loads as globals, and attribute names it loads."""
    globals_, attrs = set(), set()
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
            globals_.add(ins.argval)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR") and isinstance(ins.argval, str):
            attrs.add(ins.argval)
    return globals_, attrs


def verified_pyspark() -> tuple[str, types.ModuleType]:
    """Imports this process's PySpark and checks it (:func:`check_pyspark`); returns its
    version and ``pyspark.shuffle``. Raises :class:`HookError` when it cannot be
    imported or is not what the hook was verified against."""
    try:
        import pyspark
        import pyspark.serializers
        import pyspark.shuffle as shuffle
    except ImportError as e:
        raise HookError(
            f"{_LOG_PREFIX}: cannot import pyspark ({e}); the spill hook needs pyspark {' or '.join(SUPPORTED_PYSPARK)}"
        ) from e
    return check_pyspark(pyspark, shuffle), shuffle


def check_pyspark(pyspark: types.ModuleType, shuffle: types.ModuleType) -> str:
    """Raises :class:`HookError` unless this PySpark is a verified version whose
    ``pyspark.shuffle`` looks as the hook expects; returns the version."""
    where = os.path.dirname(getattr(pyspark, "__file__", "") or "?")
    version = str(getattr(pyspark, "__version__", "unknown"))
    if ".".join(version.split(".")[:2]) not in SUPPORTED_PYSPARK:
        raise HookError(
            f"{_LOG_PREFIX}: refusing to start: pyspark {version} (at {where}) is not a version this hook was "
            f"verified against ({', '.join(v + '.x' for v in SUPPORTED_PYSPARK)}; the newest verified is "
            f"{NEWEST_VERIFIED_PYSPARK}); its Python spill files would be written in plaintext. Use a supported "
            "pyspark or an exitless release that supports this one."
        )
    problems: list[str] = []
    for name in _CLASSES:
        if not isinstance(getattr(shuffle, name, None), type):
            problems.append(f"class {name} is missing")
    for name in ("_get_local_dirs", "get_used_memory"):
        if not callable(getattr(shuffle, name, None)):
            problems.append(f"function {name} is missing")
    if "open" in vars(shuffle) and vars(shuffle)["open"] is not sealing_open:
        problems.append("the module defines its own 'open'")
    if not problems:
        stock_list, stock_lol = shuffle.ExternalList, shuffle.ExternalListOfList
        for m in _LIST_METHODS:
            if not isinstance(vars(stock_list).get(m), types.FunctionType):
                problems.append(f"ExternalList.{m} is missing")
        if not isinstance(getattr(stock_list, "LIMIT", None), int):
            problems.append("ExternalList.LIMIT is missing")
        if not issubclass(stock_lol, stock_list):
            problems.append("ExternalListOfList is no longer an ExternalList")
        extra = {k for k, v in vars(stock_lol).items() if isinstance(v, types.FunctionType)} - set(
            _LIST_OF_LIST_METHODS
        )
        if extra:
            problems.append(f"ExternalListOfList has methods the hook does not know: {sorted(extra)}")
        if "_spill" in vars(stock_list):
            _, attrs = _names(stock_list._spill.__code__)
            if not {"_open_file", "dump_stream", "_file", "tell"} <= attrs:
                problems.append("ExternalList._spill no longer writes through _open_file/_file")
        if "__iter__" in vars(shuffle.GroupByKey):
            globals_, _ = _names(shuffle.GroupByKey.__iter__.__code__)
            if "ExternalListOfList" not in globals_:
                problems.append("GroupByKey no longer builds ExternalListOfList")
        open_sites = set()
        for name, code in _functions(shuffle):
            globals_, attrs = _names(code)
            if "open" in globals_:
                open_sites.add(name)
            risky = (attrs & _RISKY_ATTRS) | (globals_ & _RISKY_GLOBALS)
            if risky and name not in _RISKY_ALLOWED:
                problems.append(f"{name} uses {sorted(risky)}, which would bypass the sealing open")
        for name in sorted(_EXPECTED_OPEN_SITES - open_sites):
            problems.append(f"{name} no longer spills through open()")
        for name in sorted(open_sites - _ALLOWED_OPEN_SITES):
            problems.append(f"{name} opens files the hook was not checked against")
        for modname, mod in list(sys.modules.items()):
            if modname.startswith("pyspark") and mod is not shuffle and mod is not None:
                for attr in ("ExternalList", "ExternalListOfList"):
                    if vars(mod).get(attr) in (stock_list, stock_lol):
                        problems.append(f"{modname}.{attr} holds its own reference to the stock class")
    if problems:
        raise HookError(
            f"{_LOG_PREFIX}: refusing to start: pyspark {version} (at {where}) does not look as the hook expects, "
            "so its Python spill files might be written in plaintext: " + "; ".join(problems)
        )
    return version
