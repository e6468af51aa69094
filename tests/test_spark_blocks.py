"""exitless.spark.configure() and the JVM's blocks: what it sets, what it refuses (no JVM
runs here; tests/test_spark_jvm.py runs the codec in Spark)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark import SparkConf
from pyspark.sql import SparkSession

import exitless.spark
from exitless.spark import blocks


def fresh() -> SparkConf:
    return SparkConf(loadDefaults=False).setMaster("local[2]")


def test_configure_seals_every_kind_of_block() -> None:
    conf = fresh().set("spark.plugins", "com.example.Metrics")
    exitless.spark.configure(conf)
    assert conf.get("spark.io.compression.codec") == "io.exitless.spark.SealedCompressionCodec"
    assert conf.get("spark.exitless.codec") is None  # lz4, Spark's default, under the seal
    for key in blocks.COMPRESS_KEYS:
        assert conf.get(key) == "true", key
    for key in blocks.TRANSPORT_KEYS:  # local mode: the key stays in the driver's JVM
        assert conf.get(key) is None, key
    cluster = SparkConf(loadDefaults=False).setMaster("spark://127.0.0.1:7077")
    exitless.spark.configure(cluster)
    for key in blocks.TRANSPORT_KEYS:
        assert cluster.get(key) == "true", key
    assert conf.get("spark.plugins") == "com.example.Metrics,io.exitless.spark.ExitlessPlugin"
    jar = blocks.jar_path()
    assert Path(jar).is_file() and (Path(jar).parent / "libexitless_jni.so").is_file()
    for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath"):
        assert conf.get(key) == jar
    exitless.spark.configure(conf)  # twice: nothing doubles
    assert conf.get("spark.plugins").count("ExitlessPlugin") == 1
    assert conf.get("spark.driver.extraClassPath") == jar


def test_configure_keeps_the_jobs_compression_under_the_seal() -> None:
    for given, inner in (
        ("zstd", "zstd"),
        ("org.apache.spark.io.SnappyCompressionCodec", "snappy"),
        ("lz4", "lz4"),
    ):
        conf = fresh().set("spark.io.compression.codec", given)
        exitless.spark.configure(conf)
        assert conf.get("spark.io.compression.codec") == blocks.CODEC_CLASS
        assert conf.get("spark.exitless.codec") == inner
    builder = SparkSession.Builder().master("local[2]").config("spark.exitless.codec", "none")
    exitless.spark.configure(builder)
    assert builder._options["spark.exitless.codec"] == "none"
    other = fresh().set("spark.driver.extraClassPath", "/opt/a.jar")
    exitless.spark.configure(other)
    assert other.get("spark.driver.extraClassPath") == os.pathsep.join(["/opt/a.jar", blocks.jar_path()])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("spark.io.compression.codec", "com.example.FastCodec", "a codec exitless cannot seal under"),
        ("spark.shuffle.compress", "false", "would bypass the codec and stay unsealed"),
        ("spark.rdd.compress", "False", "would bypass the codec and stay unsealed"),
        ("spark.checkpoint.compress", "no", "would bypass the codec and stay unsealed"),
        ("spark.exitless.codec", "brotli", "choose lz4, zstd, snappy, lzf or none"),
    ],
)
def test_configure_refuses_a_conf_that_leaves_blocks_unsealed(key: str, value: str, message: str) -> None:
    conf = fresh().set(key, value)
    _refused(conf, key, message)


@pytest.mark.parametrize("key", blocks.TRANSPORT_KEYS)
def test_configure_refuses_an_unauthenticated_rpc_off_local_mode(key: str) -> None:
    conf = SparkConf(loadDefaults=False).setMaster("spark://10.0.0.1:7077").set(key, "false")
    _refused(conf, key, "must be authenticated and encrypted")


def _refused(conf: SparkConf, key: str, message: str) -> None:
    before = sorted(conf.getAll())
    with pytest.raises(ValueError, match=message) as err:
        exitless.spark.configure(conf)
    assert key in str(err.value)
    assert sorted(conf.getAll()) == before  # nothing changed, the Python keys neither


def test_configure_refuses_disagreeing_codecs() -> None:
    conf = fresh().set("spark.io.compression.codec", "zstd").set("spark.exitless.codec", "lz4")
    with pytest.raises(ValueError, match="disagree"):
        exitless.spark.configure(conf)


def test_seal_blocks_off_leaves_the_jvm_alone() -> None:
    conf = fresh()
    exitless.spark.configure(conf, seal_blocks=False)
    assert conf.get("spark.io.compression.codec") is None and conf.get("spark.plugins") is None
    assert conf.get("spark.python.daemon.module") == "exitless.spark.daemon"


def test_a_missing_jvm_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(blocks, "JAR", tmp_path / "exitless-spark.jar")
    monkeypatch.setattr(blocks, "JNI_LIBRARY", tmp_path / "libexitless_jni.so")
    conf = fresh()
    with pytest.raises(
        FileNotFoundError, match=r"exitless-spark\.jar, libexitless_jni\.so missing.*make setup"
    ):
        exitless.spark.configure(conf)
    assert conf.get("spark.python.daemon.module") is None


@pytest.mark.slow
def test_the_wheel_ships_the_jvm_library(tmp_path: Path) -> None:
    """exitless-spark.jar and libexitless_jni.so are git-ignored build products: the wheel
    must still carry them beside each other, where configure() finds them."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "-q", "-o", str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("exitless-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("exitless/spark/jvm/exitless-spark.jar", "exitless/spark/jvm/libexitless_jni.so"):
        assert name in names, sorted(n for n in names if "spark" in n)
    assert not any(n.startswith("exitless_tools/") for n in names)
