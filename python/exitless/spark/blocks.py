"""Sealing what the Spark JVM writes: shuffle outputs, sort and shuffle spills,
broadcast pieces, RDD and cached blocks, and checkpoints.

exitless's JVM library (``jvm/``, built into ``exitless/spark/jvm/``:
``exitless-spark.jar`` and ``libexitless_jni.so``, the sealed stream format of the
Rust core over JNI) gives Spark a block codec, ``io.exitless.spark.SealedCompressionCodec``:
each block stream is compressed as Spark would (lz4 by default) and then sealed as one
exitless stream under a random per-application key. ``io.exitless.spark.ExitlessPlugin``
(``spark.plugins``) makes that key on the driver and hands it to each executor over
Spark's RPC, which ``spark.authenticate`` and ``spark.network.crypto.enabled``
authenticate and encrypt: the key is never in SparkConf, logs, the event log or the UI,
and every JVM wipes it when the application ends.

:func:`settings` is what :func:`exitless.spark.configure` adds to a conf.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: The block codec (``spark.io.compression.codec``).
CODEC_CLASS = "io.exitless.spark.SealedCompressionCodec"
#: The key plugin (``spark.plugins``).
PLUGIN_CLASS = "io.exitless.spark.ExitlessPlugin"
#: The sealed file codec for Hadoop and Spark's file sources (``.exls``).
HADOOP_CODEC_CLASS = "io.exitless.spark.SealedHadoopCodec"
#: Where the compression under the seal is named.
INNER_CODEC_KEY = "spark.exitless.codec"
#: Spark's own codecs that can go under the seal (short names and class names).
INNER_CODECS = {
    "lz4": "lz4",
    "zstd": "zstd",
    "snappy": "snappy",
    "lzf": "lzf",
    "none": "none",
    "org.apache.spark.io.LZ4CompressionCodec": "lz4",
    "org.apache.spark.io.ZStdCompressionCodec": "zstd",
    "org.apache.spark.io.SnappyCompressionCodec": "snappy",
    "org.apache.spark.io.LZFCompressionCodec": "lzf",
}

_CODEC_KEY = "spark.io.compression.codec"
#: The switches that send each kind of block through the codec; all must be on.
COMPRESS_KEYS = (
    "spark.shuffle.compress",  # shuffle outputs and shuffle spills (temp_shuffle_*)
    "spark.shuffle.spill.compress",  # sort spills (temp_local_*)
    "spark.broadcast.compress",  # broadcast pieces
    "spark.rdd.compress",  # RDD and cached blocks (Spark's default is false)
    "spark.checkpoint.compress",  # reliable checkpoints (Spark's default is false)
)
#: Authenticate and encrypt Spark's RPC, which carries the key to the executors.
TRANSPORT_KEYS = ("spark.authenticate", "spark.network.crypto.enabled")
_PLUGINS_KEY = "spark.plugins"
_CLASSPATH_KEYS = ("spark.driver.extraClassPath", "spark.executor.extraClassPath")

JVM_DIR = Path(__file__).resolve().parent / "jvm"
JAR = JVM_DIR / "exitless-spark.jar"
JNI_LIBRARY = JVM_DIR / "libexitless_jni.so"


def jar_path() -> str:
    """The path of ``exitless-spark.jar``, after checking that it and the JNI library
    beside it exist (``make setup`` builds both; a wheel ships them)."""
    missing = [p.name for p in (JAR, JNI_LIBRARY) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"exitless's JVM library is not built: {', '.join(missing)} missing in {JVM_DIR} "
            "(run `make setup`, or scripts/build-jvm.sh with this Python)"
        )
    return str(JAR)


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def settings(get: Callable[[str], str | None]) -> dict[str, str]:
    """The conf entries that seal the JVM's blocks, given the current conf (``get``).

    Raises :class:`ValueError`, naming the key, for a conf that would leave blocks
    unsealed: a codec other than Spark's own (which then goes under the seal), one of
    :data:`COMPRESS_KEYS` set to false, or :data:`TRANSPORT_KEYS` set to false (these are set
    unless the master is ``local``: there the key never leaves the driver's JVM).
    """
    out: dict[str, str] = {}
    codec = get(_CODEC_KEY)
    inner = get(INNER_CODEC_KEY)
    if codec not in (None, CODEC_CLASS):
        if codec not in INNER_CODECS:
            raise ValueError(
                f"{_CODEC_KEY} is set to {codec!r}, a codec exitless cannot seal under: exitless needs "
                f"{CODEC_CLASS!r} there, with {INNER_CODEC_KEY} one of lz4, zstd, snappy, lzf or none"
            )
        if inner not in (None, INNER_CODECS[codec]):
            raise ValueError(
                f"{_CODEC_KEY}={codec!r} and {INNER_CODEC_KEY}={inner!r} disagree on the compression"
            )
        inner = INNER_CODECS[codec]  # the codec the job asked for goes under the seal
    if inner is not None and inner not in INNER_CODECS.values():
        raise ValueError(f"{INNER_CODEC_KEY}={inner!r}: choose lz4, zstd, snappy, lzf or none")
    out[_CODEC_KEY] = CODEC_CLASS
    if inner is not None:
        out[INNER_CODEC_KEY] = inner
    for key in COMPRESS_KEYS:
        value = get(key)
        if value is not None and not _is_true(value):
            raise ValueError(f"{key} is {value!r}: those blocks would bypass the codec and stay unsealed")
        out[key] = "true"
    master = get("spark.master") or ""
    for key in TRANSPORT_KEYS if not master.startswith("local") else ():
        # Off local mode the key crosses the network. In local mode the executor shares the
        # driver's JVM and key; Spark would also keep a local application's generated
        # secret for the whole process, which a later cluster application would then use.
        value = get(key)
        if value is not None and not _is_true(value):
            raise ValueError(
                f"{key} is {value!r}: exitless hands the block key to executors over Spark's RPC, "
                "which must be authenticated and encrypted"
            )
        out[key] = "true"
    plugins = [p.strip() for p in (get(_PLUGINS_KEY) or "").split(",") if p.strip()]
    if PLUGIN_CLASS not in plugins:
        plugins.append(PLUGIN_CLASS)
    out[_PLUGINS_KEY] = ",".join(plugins)
    out.update(classpath_settings(get))
    return out


def classpath_settings(get: Callable[[str], str | None]) -> dict[str, str]:
    """exitless-spark.jar appended to the driver's and executors' extra class paths."""
    jar = jar_path()
    out = {}
    for key in _CLASSPATH_KEYS:
        entries = [e for e in (get(key) or "").split(os.pathsep) if e]
        if jar not in entries:
            entries.append(jar)
        out[key] = os.pathsep.join(entries)
    return out


_CODECS_KEY = "spark.hadoop.io.compression.codecs"
#: Where the sealed file codec finds its KMS URI and stream context (Hadoop conf).
KMS_KEY = "spark.hadoop.exitless.kms"
CONTEXT_KEY = "spark.hadoop.exitless.context"


def dataset_settings(get: Callable[[str], str | None], kms: str, context: str | None) -> dict[str, str]:
    """The conf entries that let ``spark.read``/``df.write`` open and write sealed files
    (``.exls``, format version 2) through the KMS ``kms``: the codec joins
    ``io.compression.codecs``, the URI and context go to the Hadoop conf. The KMS is
    opened here first, so a bad URI fails on the driver (:class:`exitless.kms.KmsError`)."""
    from ..kms import open_kms

    with open_kms(kms) as opened:
        uri = opened.uri
    codecs = [c.strip() for c in (get(_CODECS_KEY) or "").split(",") if c.strip()]
    if HADOOP_CODEC_CLASS not in codecs:
        codecs.append(HADOOP_CODEC_CLASS)
    out = {_CODECS_KEY: ",".join(codecs), KMS_KEY: uri}
    if context is not None:
        out[CONTEXT_KEY] = context
    return out


#: The KMS that wraps the block key when executors unwrap it themselves.
BLOCK_KEY_KMS_KEY = "spark.exitless.blockKey.kms"


def block_key_settings(kms: str) -> dict[str, str]:
    """The block key made and wrapped by the KMS ``kms`` on the driver and unwrapped by
    each executor (which must reach that KMS); opened here first, so a bad URI fails on
    the driver."""
    from ..kms import open_kms

    with open_kms(kms) as opened:
        return {BLOCK_KEY_KMS_KEY: opened.uri}


def check_running_driver() -> None:
    """If this Python process already runs a driver JVM (PySpark keeps its gateway
    between sessions), the jar must be on its classpath: a classpath is fixed when the
    JVM starts. Raises :class:`RuntimeError` when it is not."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    try:
        gateway.jvm.java.lang.Class.forName(PLUGIN_CLASS)
    except Exception as e:  # py4j raises Py4JJavaError (ClassNotFoundException)
        raise RuntimeError(
            "this Python process already started Spark's driver JVM without exitless-spark.jar on its "
            "classpath, and a JVM's classpath cannot change: call exitless.spark.configure() before the "
            "first SparkSession of the process (or start a new process)"
        ) from e
