"""What Spark executors write, sealed by configuration alone: the JVM's blocks
(:mod:`exitless.spark.blocks`: shuffle outputs, spills, broadcast and cached blocks,
through a sealing block codec in exitless's JVM library), sealed datasets
(:class:`SealedIO`, and ``*.exls`` files through plain ``spark.read``/``df.write``), and
the Python workers' spills, as below.

PySpark's Python workers spill to local disk in plaintext (``pyspark/shuffle.py``:
ExternalMerger, ExternalSorter, ExternalGroupBy, ExternalList). With

.. code-block:: python

    import exitless.spark
    from pyspark.sql import SparkSession

    spark = exitless.spark.configure(SparkSession.builder.appName("job")).getOrCreate()

every one of those files is an exitless sealed stream under a per-process
ephemeral key: :func:`configure` points ``spark.python.daemon.module`` and
``spark.python.worker.module`` at :mod:`exitless.spark.daemon` /
:mod:`exitless.spark.worker`, which install :mod:`exitless.spark.hook` and then
run PySpark's own daemon / worker. Job code does not change. Executors need
exitless installed in the Python that runs their workers.

If the hook cannot seal (a PySpark version it was not verified against, changed
internals, a bad option) the Python daemon or worker fails at start with a
:class:`~exitless.spark.hook.HookError` in the executor log: it never falls back
to plaintext spills.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from ..streams import BACKENDS
from .blocks import (
    CODEC_CLASS,
    HADOOP_CODEC_CLASS,
    PLUGIN_CLASS,
    block_key_settings,
    check_running_driver,
    classpath_settings,
    dataset_settings,
    settings,
)
from .hook import (
    BACKEND_ENV,
    DEFAULT_BACKEND,
    STATS_DIR_ENV,
    HookError,
    SpillStats,
    install,
    installed,
    stats,
)
from .hook.verify import verified_pyspark
from .sealed_io import SealedIO

__all__ = [
    "CODEC_CLASS",
    "DAEMON_MODULE",
    "DEFAULT_BACKEND",
    "HADOOP_CODEC_CLASS",
    "PLUGIN_CLASS",
    "WORKER_MODULE",
    "HookError",
    "SealedIO",
    "SpillStats",
    "configure",
    "install",
    "installed",
    "stats",
]

#: Value set for ``spark.python.daemon.module``.
DAEMON_MODULE = "exitless.spark.daemon"
#: Value set for ``spark.python.worker.module``.
WORKER_MODULE = "exitless.spark.worker"

_DAEMON_KEY = "spark.python.daemon.module"
_WORKER_KEY = "spark.python.worker.module"
_EXECUTOR_ENV = "spark.executorEnv."

ConfLike = TypeVar("ConfLike")


_Get = Callable[[str], str | None]
_Set = Callable[[str, str], object]


def _accessors(target: object) -> tuple[_Get, _Set]:
    """(get(key) -> str | None, set(key, value)) for a SparkSession.Builder or SparkConf."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    if isinstance(target, SparkSession.Builder):
        options: dict[str, object] = target._options  # the Builder keeps its settings here (3.5 and 4.x)

        def get_builder(key: str) -> str | None:
            value = options.get(key)
            return None if value is None else str(value)

        return get_builder, target.config
    if isinstance(target, SparkConf):
        return (lambda key: target.get(key, None)), target.set
    raise TypeError(
        f"exitless.spark.configure() takes a SparkSession.Builder or a SparkConf, not {type(target).__name__}"
    )


def _check_driver_pyspark() -> str:
    """The workers refuse a PySpark the hook was not verified against, but a refusal
    there surfaces only as a failed task (a Py4JJavaError around the HookError): check
    the driver's PySpark the same way first. Returns its version."""
    if installed():  # this process already checked and patched it (install())
        import pyspark

        return str(pyspark.__version__)
    version, _ = verified_pyspark()
    return version


def configure(
    builder_or_conf: ConfLike,
    *,
    backend: str | None = None,
    stats_dir: str | os.PathLike[str] | None = None,
    python_executable: str | None = None,
    seal_blocks: bool = True,
    kms: str | None = None,
    dataset_context: str | None = None,
    block_key_kms: str | None = None,
) -> ConfLike:
    """Make a Spark application seal what its executors write; returns
    ``builder_or_conf`` (a ``SparkSession.Builder`` or a ``SparkConf``), changed in place.

    **The JVM's blocks** (``seal_blocks``, on by default; :mod:`exitless.spark.blocks`):
    shuffle outputs, sort and shuffle spills, broadcast pieces, RDD and cached blocks and
    checkpoints go through ``io.exitless.spark.SealedCompressionCodec``
    (``spark.io.compression.codec``; the compression the conf names, lz4 by default,
    under the seal), with every ``spark.*.compress`` switch on; the key plugin
    ``io.exitless.spark.ExitlessPlugin`` joins ``spark.plugins``; ``spark.authenticate``
    and ``spark.network.crypto.enabled`` are set (the key travels over Spark's RPC);
    exitless-spark.jar joins the driver and executor class paths.

    ``block_key_kms`` (a KMS URI every executor reaches, e.g. in an enclave after
    attestation): the driver has that KMS make and wrap the block key, and each executor
    unwraps it itself (``spark.exitless.blockKey.kms``): only the wrapped key travels.
    Without it the executors fetch the key from the driver over Spark's RPC.

    **Sealed datasets** (``kms``, a KMS URI: ``local:PATH`` or ``pkcs11:...``): the sealed
    file codec ``io.exitless.spark.SealedHadoopCodec`` joins ``io.compression.codecs``
    with the KMS, so ``spark.read.csv/json/text`` open ``*.exls`` files and
    ``df.write.option("compression", exitless.spark.HADOOP_CODEC_CLASS)`` writes them, each
    file under its own data key wrapped by the KMS; ``dataset_context`` binds them to a
    role (default empty). :class:`SealedIO` needs the JVM library too, not this option.

    **The Python workers' spills**: ``spark.python.daemon.module`` and
    ``spark.python.worker.module`` point at exitless's wrappers and, as executor
    environment (``spark.executorEnv.*``, which PySpark also hands to the Python workers
    of local mode):

    - ``backend``: ``$EXITLESS_SPARK_BACKEND``, the exitless IO backend for spill
      files (``"auto"`` by default: io_uring where it works, else ``"sync"``; see
      :data:`exitless.spark.hook.DEFAULT_BACKEND`; ``"uring"``, ``"ocall"``,
      ``"switchless"``, ``"sync"``).
    - ``stats_dir``: ``$EXITLESS_SPARK_STATS_DIR``, where each worker process keeps
      ``exitless-spark-<pid>.json`` counters (files and bytes sealed, files read).

    ``python_executable``: the interpreter for the Python workers. PySpark takes it
    from ``$PYSPARK_PYTHON`` in the driver process (default ``python3`` on the
    PATH), so this sets that variable here. In local mode (a ``local`` master
    already set on the builder or conf) with ``$PYSPARK_PYTHON`` unset it defaults to
    this interpreter, which has exitless; on a cluster the executors' Python must
    have exitless installed.

    Raises :class:`HookError` when this process's PySpark is not one exitless.spark was
    verified against (:data:`exitless.spark.hook.SUPPORTED_PYSPARK`), or its
    ``pyspark.shuffle`` does not look as the hook expects: here, on the driver, before
    the session starts, rather than as a failed task later (the Python workers check
    their own PySpark again). Raises :class:`ValueError` for an unknown backend, when
    the daemon or worker module is already set to something else, or for a conf that
    would leave blocks unsealed (another codec class, a ``spark.*.compress`` switch or
    ``spark.authenticate`` set to false); :class:`FileNotFoundError` when the JVM library
    is not built; :class:`RuntimeError` when this process already runs a driver JVM
    without it; :class:`TypeError` for another object. Nothing is changed when it raises.
    """
    get, set_ = _accessors(builder_or_conf)
    _check_driver_pyspark()
    if backend is not None and backend not in ("auto", *BACKENDS):
        raise ValueError(
            f"unknown exitless backend {backend!r}; choose one of {', '.join(('auto', *BACKENDS))}"
        )
    changes: dict[str, str] = {}
    for key, value in ((_DAEMON_KEY, DAEMON_MODULE), (_WORKER_KEY, WORKER_MODULE)):
        current = get(key)
        if current not in (None, value):
            raise ValueError(
                f"{key} is already set to {current!r}; exitless.spark needs {value!r} there to seal Python spill files"
            )
        changes[key] = value
    if seal_blocks:
        changes.update(settings(get))
        if block_key_kms is not None:
            changes.update(block_key_settings(block_key_kms))
    elif block_key_kms is not None:
        raise ValueError("block_key_kms needs seal_blocks: it wraps the key of the JVM's blocks")
    if kms is not None:
        changes.update(dataset_settings(get, kms, dataset_context))
        if not seal_blocks:
            changes.update(classpath_settings(get))
    elif dataset_context is not None:
        raise ValueError("dataset_context needs kms: the sealed file codec opens files through the KMS")
    if seal_blocks or kms is not None:
        check_running_driver()
    if backend is not None:
        changes[_EXECUTOR_ENV + BACKEND_ENV] = backend
    if stats_dir is not None:
        changes[_EXECUTOR_ENV + STATS_DIR_ENV] = os.path.abspath(os.fspath(stats_dir))
    for key, value in changes.items():
        set_(key, value)
    master = get("spark.master") or ""
    if python_executable is None and master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        python_executable = sys.executable
    if python_executable is not None:
        os.environ["PYSPARK_PYTHON"] = python_executable
    return builder_or_conf
