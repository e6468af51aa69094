""":func:`install` and :func:`uninstall`: read the configuration from the environment,
verify PySpark, and patch ``pyspark.shuffle`` (``open`` and the two list classes), or
put the stock ones back.
"""

from __future__ import annotations

import os
from typing import Any

from ... import backends as _exitless_backends
from ...streams import BACKENDS
from . import state as hook_state
from .counters import _check_stats_dir
from .io import sealing_open
from .lists import _make_list_classes
from .state import _LOG_PREFIX, BACKEND_ENV, DEFAULT_BACKEND, STATS_DIR_ENV, HookError, _Config, _log
from .verify import verified_pyspark

# What install() replaced in pyspark.shuffle, for uninstall() to put back.
_originals: dict[str, Any] = {}

# Set by install(); these names stay importable for tests and isinstance checks (as
# exitless.spark.hook.SealedExternalList too, read from here at each access).
SealedExternalList: type | None = None
SealedExternalListOfList: type | None = None


def _resolve_backend() -> str:
    """The concrete backend spill files use: ``auto`` becomes ``uring`` where io_uring
    works, else ``sync`` (said once in the executor log)."""
    backend = os.environ.get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND
    allowed = ("auto", *BACKENDS)
    if backend not in allowed:
        raise HookError(
            f"{_LOG_PREFIX}: {BACKEND_ENV}={backend!r} is not an exitless backend; choose one of {', '.join(allowed)}"
        )
    if backend in ("uring", "auto"):  # only io_uring can be missing; probing it sets up a ring, so only then
        info = _exitless_backends()["uring"]
        if not info["available"]:
            if backend == "uring":
                raise HookError(f"{_LOG_PREFIX}: {BACKEND_ENV}='uring' does not work here: {info['reason']}")
            _log(f"io_uring does not work here ({info['reason']}); spill files use the sync backend")
            return "sync"
        return "uring"
    return backend


def installed() -> bool:
    """Whether the hook is installed in this interpreter."""
    return hook_state._config is not None


def install() -> None:
    """Seal PySpark's Python spill files in this process (and in processes it forks).

    Idempotent. Reads ``$EXITLESS_SPARK_BACKEND`` (default :data:`DEFAULT_BACKEND`)
    and ``$EXITLESS_SPARK_STATS_DIR``. Raises :class:`HookError` if the PySpark
    version or its internals are not what the hook was verified against, or the
    configuration is invalid; nothing is patched then.
    """
    global SealedExternalList, SealedExternalListOfList
    with hook_state._lock:
        if hook_state._config is not None:
            return
        version, shuffle = verified_pyspark()
        backend = _resolve_backend()
        stats_dir = os.environ.get(STATS_DIR_ENV, "").strip() or None
        stats_dir_id = None
        if stats_dir is not None:
            stats_dir = os.path.abspath(stats_dir)
            try:
                os.makedirs(stats_dir, exist_ok=True)
            except OSError as e:
                raise HookError(f"{_LOG_PREFIX}: {STATS_DIR_ENV}={stats_dir!r} cannot be created: {e}") from e
            stats_dir_id = _check_stats_dir(stats_dir)
        sealed_list, sealed_lol = _make_list_classes(
            shuffle.ExternalList, shuffle.ExternalListOfList, shuffle
        )
        _originals.update(
            module=shuffle,
            ExternalList=shuffle.ExternalList,
            ExternalListOfList=shuffle.ExternalListOfList,
            had_open="open" in vars(shuffle),
        )
        setattr(shuffle, "open", sealing_open)  # noqa: B010  (looked up at call time by the spill code)
        setattr(shuffle, "ExternalList", sealed_list)  # noqa: B010
        setattr(shuffle, "ExternalListOfList", sealed_lol)  # noqa: B010
        SealedExternalList, SealedExternalListOfList = sealed_list, sealed_lol
        hook_state._config = _Config(
            backend=backend, stats_dir=stats_dir, pyspark_version=version, stats_dir_id=stats_dir_id
        )
    _log(
        f"pid {os.getpid()}: PySpark {version} spill files are sealed (backend {backend}{', counters in ' + stats_dir if stats_dir else ''})"
    )


def uninstall() -> None:
    """Undo :func:`install` in this process (for tests): stock ``open`` and list classes."""
    global SealedExternalList, SealedExternalListOfList
    with hook_state._lock:
        if hook_state._config is None:
            return
        shuffle = _originals["module"]
        if not _originals["had_open"]:
            vars(shuffle).pop("open", None)
        setattr(shuffle, "ExternalList", _originals["ExternalList"])  # noqa: B010
        setattr(shuffle, "ExternalListOfList", _originals["ExternalListOfList"])  # noqa: B010
        if hook_state._state is not None:
            hook_state._state.key.wipe()
        hook_state._config, hook_state._state = None, None
        SealedExternalList = SealedExternalListOfList = None
        _originals.clear()
