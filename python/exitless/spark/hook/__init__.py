"""Seal every file PySpark's Python workers spill.

PySpark's Python workers spill to local disk in ``pyspark/shuffle.py``
(ExternalMerger, ExternalSorter, ExternalGroupBy, ExternalList and
ExternalListOfList), in plaintext whatever ``spark.io.encryption.enabled`` says.
:func:`install` changes that inside one worker process:

- ``pyspark.shuffle.open`` becomes :func:`sealing_open`. The spill code looks
  ``open`` up in the module's globals at call time, so every ``"wb"``, ``"rb"``
  and ``"w+b"`` spill file is an exitless sealed stream (buffered, with
  ``tell()``, and several ``dump_stream`` calls may append to one file).
  Read-only text opens (``get_used_memory`` reads ``/proc/self/status``) pass
  through; any other mode is refused.
- ``pyspark.shuffle.ExternalList`` / ``ExternalListOfList`` become
  :class:`SealedExternalList` / :class:`SealedExternalListOfList`. The stock
  classes reopen their (unlinked) spill file through ``os.fdopen(os.dup(fd))``
  and pickle its raw bytes; these keep it sealed and pickle the *plaintext*
  serializer stream, so a receiver (hooked or not) reads the same state as
  from a stock list.

The data key is ephemeral: one random key per worker process, made on the first
spill and made again whenever ``os.getpid()`` changes (``pyspark.daemon`` forks
its workers). It is never written anywhere: a spill file outlives neither its
task nor its process. Each stream's context binds it to its absolute path, so
spill files cannot be swapped for one another.

:func:`install` refuses loudly (:class:`HookError`) on a PySpark version it was
not verified against, or when the internals it patches look different. It never
lets a worker fall back to plaintext spills.

Counters (files and bytes sealed, files read) are kept per process; see
:func:`stats`. With ``$EXITLESS_SPARK_STATS_DIR`` set, each process (over)writes
``exitless-spark-<pid>.json`` there after every spill file it closes. That directory
must be a directory (not a symbolic link), owned by the worker's user or root and not
writable by everyone unless sticky; a symbolic link planted at a stats file's name is
replaced, never followed.

The modules, each importing only those listed before it:

- :mod:`~exitless.spark.hook.state`: the configuration and this process's state (key,
  counters, write tags), each one instance; the environment variables; :class:`HookError`.
- :mod:`~exitless.spark.hook.counters`: counters recorded, published as JSON, logged per
  task and per process, read back.
- :mod:`~exitless.spark.hook.io`: :func:`sealing_open` and the sealed file objects.
- :mod:`~exitless.spark.hook.lists`: the sealed ``ExternalList`` / ``ExternalListOfList``.
- :mod:`~exitless.spark.hook.verify`: :func:`check_pyspark`, the version and bytecode checks.
- :mod:`~exitless.spark.hook.patch`: :func:`install` / :func:`uninstall`.
"""

from __future__ import annotations

from typing import Any

from . import patch as _patch
from .counters import iter_stats_files, publish_stats, stats, wrap_worker_main
from .counters import report_process as report_process
from .io import sealing_open
from .patch import install, installed, uninstall
from .state import (
    BACKEND_ENV,
    DEFAULT_BACKEND,
    MAX_GENERATIONS,
    STATS_DIR_ENV,
    HookError,
    SpillStats,
    forget_generation,
    spill_context,
)
from .state import BUFFER_SIZE as BUFFER_SIZE
from .state import QUEUE_DEPTH as QUEUE_DEPTH
from .state import TASK_LOG_ENV as TASK_LOG_ENV
from .verify import NEWEST_VERIFIED_PYSPARK, SUPPORTED_PYSPARK
from .verify import check_pyspark as check_pyspark

# The names of ``import *``; the ones imported ``as`` themselves above are reachable by
# name only, as before.
__all__ = [
    "BACKEND_ENV",
    "DEFAULT_BACKEND",
    "MAX_GENERATIONS",
    "NEWEST_VERIFIED_PYSPARK",
    "STATS_DIR_ENV",
    "SUPPORTED_PYSPARK",
    "HookError",
    "SealedExternalList",
    "SealedExternalListOfList",
    "SpillStats",
    "forget_generation",
    "install",
    "installed",
    "iter_stats_files",
    "publish_stats",
    "sealing_open",
    "spill_context",
    "stats",
    "uninstall",
    "wrap_worker_main",
]


def __getattr__(name: str) -> Any:
    """``SealedExternalList`` and ``SealedExternalListOfList``: what :func:`install` set
    in :mod:`~exitless.spark.hook.patch` (None until then), read at each access."""
    if name in ("SealedExternalList", "SealedExternalListOfList"):
        return getattr(_patch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
