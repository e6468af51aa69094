#!/usr/bin/env bash
# Builds exitless's JVM library into the Python package (python/exitless/spark/jvm/):
# exitless-spark.jar (jvm/src, compiled with javac against the Spark and Hadoop jars
# of the pyspark installed in $PY's environment: there is no Maven Central here) and
# libexitless_jni.so (native/jni, the sealed stream format over JNI), side by side:
# the jar finds the library beside itself. Usage: scripts/build-jvm.sh PYTHON
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:?usage: scripts/build-jvm.sh PYTHON (a Python with pyspark installed)}
command -v javac >/dev/null || { echo "build-jvm: javac not found (Debian: openjdk-17-jdk-headless; make system-deps)" >&2; exit 1; }
jars=$("$PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
[ -d "$jars" ] || { echo "build-jvm: no jars in $jars (is pyspark installed for $PY?)" >&2; exit 1; }
out=python/exitless/spark/jvm
classes=target/jvm/classes
rm -rf "$classes" && mkdir -p "$classes" "$out"
# -Xlint:all without `path` (pyspark's jars name Class-Path entries it does not ship).
javac --release 17 -Xlint:all,-path -Werror -encoding UTF-8 -d "$classes" -cp "$jars/*" jvm/src/io/exitless/spark/*.java
jar --create --file "$out/exitless-spark.jar.tmp" -C "$classes" .
mv "$out/exitless-spark.jar.tmp" "$out/exitless-spark.jar"
cargo build --release -q -p exitless-jni
cp target/release/libexitless_jni.so "$out/libexitless_jni.so.tmp"
mv "$out/libexitless_jni.so.tmp" "$out/libexitless_jni.so"
"$PY" -c 'import pyspark; print(pyspark.__version__)' > "$out/built-against"
echo "build-jvm: $out/exitless-spark.jar and libexitless_jni.so (against pyspark $(cat "$out/built-against"))"
