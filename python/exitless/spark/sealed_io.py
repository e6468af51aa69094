"""Sealed datasets for Spark jobs: every file a job writes or reads on untrusted
storage is an exitless sealed stream whose data key travels, wrapped by a KMS, in
its own header (format version 2, docs/FORMAT.md). A reader needs only the KMS.

A dataset is a directory written by one :meth:`SealedIO.write` call, a *dataset
write*. Each write draws a fresh random 16-byte **write id** on the driver, and:

- ``part-NNNNN.<format>.exls``: one sealed part per partition, plain lines in the
  chosen format (text, CSV or JSON lines, as Spark writes them), each under its own
  data key. A part's stream context is ``<context>/<write id>/<part name>`` (the
  write id as 32 lowercase hex digits; ``<write id>/<part name>`` when the dataset
  context is empty). The context enters the stream's key derivation, so a part
  opens only as the part of that name in that write: swapped parts, a part from an
  older write of the dataset or from another dataset fail authentication. The CLI
  opens one with ``exitless open PART OUT --kms URI -c <that context>`` (the write id
  is the manifest's ``"write"``).
- ``_MANIFEST.exls``: a sealed JSON document, context ``<context>/_MANIFEST.exls``
  (just ``_MANIFEST.exls`` when the dataset context is empty)::

      {"version": 2, "write": "<write id, 32 hex>", "format": "csv", "header": true,
       "parts": [{"name": "part-00000.csv.exls", "lines": 1000, "bytes": 38890,
                  "sealed_header_sha256": "<64 hex>"}, ...]}

  ``lines`` and ``bytes`` count a part's plaintext; ``sealed_header_sha256`` is the
  SHA-256 of the part file's sealed header as written (all of its bytes, key
  envelope included; unique per part: random salt and wrapped data key). Reading
  opens the manifest first and checks every listed part is there; each task then
  checks its part's header digest (before unwrapping anything), opens the part under
  the manifest's write id and checks its byte and line counts. A missing,
  truncated, swapped or replaced part, or a manifest rolled back to another write
  while the parts are not (or the other way round), fails the job with
  :class:`exitless.IntegrityError` naming the part, instead of silently shrinking
  or changing the data. Files not in the manifest are ignored.

  Version 1 manifests (no write id: an older part copied into a newer dataset at
  the same path, with the same counts, was accepted) are refused with
  :class:`exitless.FormatError`, as are unknown versions: rewrite such a dataset.

What a manifest cannot detect: the whole dataset (manifest and all its parts)
replaced by an older write of itself, or by another complete dataset sealed under
the same KMS and dataset context. Detecting that needs state outside the directory,
e.g. the write id (``manifest(path)["write"]``) recorded by the caller; give
datasets distinct contexts so that one cannot pass for another.

Where the work happens: in the executors' JVMs, never in Python. A write seals each
partition's lines into its part file (``io.exitless.spark.SealedDatasets``, exitless's
JVM library: the format and the KMS through the Rust core over JNI). A read is Spark's
own file scan (``spark.read.csv/json/text`` of the listed parts) with the sealed file
codec (``io.exitless.spark.SealedHadoopCodec``), which learns from the scan which part it
opens, binds it to that name in the manifest's write, checks its header digest before
unwrapping anything and its byte and line counts at its end; a failing part fails the
task with ``io.exitless.spark.SealIntegrityException`` naming it. The session needs the
JVM library on the driver's and executors' class paths (:func:`exitless.spark.configure`
puts it there); :meth:`SealedIO.read` and :meth:`SealedIO.write` say so otherwise.

Text, CSV and JSON lines are supported, one record per line (CSV or text values
that contain a newline are not: JSON lines escape them). Parquet is not: its footer-first
random access layout needs a seekable file, and Hadoop's codec interface gives a codec a
stream to read from the start.

The KMS is named by URI (``local:PATH`` or ``pkcs11:...``, see docs/KMS.md), and
each executor opens it itself: the URI, not a live KMS object, travels with the
tasks. The local keyring must therefore be readable on every executor (same
path), and a PKCS#11 PIN variable set in the executors' environment.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Required, TypedDict, cast

from .._errors import FormatError, IntegrityError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from ..kms import Kms

__all__ = ["FORMATS", "MANIFEST", "MANIFEST_VERSION", "WRITE_ID_LEN", "Manifest", "PartRecord", "SealedIO"]

#: Dataset formats and their file name extensions.
FORMATS = {"text": "txt", "csv": "csv", "json": "json"}
#: The manifest's file name inside a dataset directory.
MANIFEST = "_MANIFEST.exls"
#: The manifest version this module writes and the only one it reads. Version 1
#: (no write id, no part digests) is refused: see the module docstring.
MANIFEST_VERSION = 2
#: Random bytes in a dataset write id.
WRITE_ID_LEN = 16
#: Ciphertext segment size of part files.
SEGMENT_SIZE = 65536

_PART_NAME = re.compile(r"part-\d{5,}\.(txt|csv|json)\.exls")
_HEX = re.compile(r"[0-9a-f]+")


class PartRecord(TypedDict):
    """A part file as the manifest lists it (see the module docstring)."""

    name: str
    lines: int
    bytes: int
    sealed_header_sha256: str


class Manifest(TypedDict):
    """A dataset's manifest (version 2), as :meth:`SealedIO.manifest` returns it."""

    version: int
    write: str
    format: str
    header: bool
    parts: list[PartRecord]


class _Source(TypedDict, total=False):
    """A sealed file for :func:`_read_lines`; a manifest's part has every key."""

    path: Required[str]
    context: Required[str]
    write: str
    digest: str
    bytes: int | None
    lines: int | None


def _part_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}.{FORMATS[fmt]}.exls"


def _context(dataset_context: str, name: str) -> str:
    return f"{dataset_context}/{name}" if dataset_context else name


def _part_context(dataset_context: str, write_id: str, name: str) -> str:
    """A part's stream context: ``<context>/<write id>/<part name>``."""
    return _context(dataset_context, f"{write_id}/{name}")


def _sealed_header_digest(path: str) -> str:
    """SHA-256 (hex) of the sealed header of the file at ``path``, all of its bytes."""
    from ..memory import inspect

    size = inspect(path).header_size
    with open(path, "rb") as f:
        head = f.read(size)
    if len(head) != size:  # the file shrank since inspect read it
        raise IntegrityError(f"{path}: truncated inside its sealed header")
    return hashlib.sha256(head).hexdigest()


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown dataset format {fmt!r}; choose one of {sorted(FORMATS)} (Parquet is not supported: see exitless.spark.sealed_io)"
        )
    return fmt


def _read_lines(kms_uri: str, skip_header: bool, source: _Source) -> Iterator[str]:
    """Opens one sealed file in this process and yields its lines (the driver reads a
    CSV header line this way; the JVM's ``SealedDatasets`` reads the parts). A manifest
    part (``digest``, ``bytes`` and ``lines`` set) must be the file the manifest's
    write produced (its sealed header's digest) and match the manifest's counts; its
    context names that write, so the stream itself authenticates the binding too."""
    from ..kms import open_kms, open_sealed

    path, want_bytes, want_lines = source["path"], source.get("bytes"), source.get("lines")
    want_digest = source.get("digest")
    if want_digest is not None:
        digest = _sealed_header_digest(path)
        if not hmac.compare_digest(digest, want_digest):
            raise IntegrityError(
                f"{path}: part {os.path.basename(path)} is not the part that dataset write {source['write']} "
                "produced (its sealed header differs from the manifest's record): a part from another write of "
                "this dataset or from another dataset, or a manifest rolled back to another write"
            )
    with open_kms(kms_uri) as kms:
        raw = open_sealed(path, "rb", kms, source["context"])
    with io.BufferedReader(raw, 1 << 20) as f:
        if want_bytes is not None and raw.size != want_bytes:
            raise IntegrityError(f"{path}: {raw.size} plaintext bytes, the manifest says {want_bytes}")
        if skip_header:
            f.readline()
        count = 0
        for line in f:
            count += 1
            yield line.decode().rstrip("\n")
    if want_lines is not None and count != want_lines:
        raise IntegrityError(f"{path}: {count} lines, the manifest says {want_lines}")


def _check_manifest(doc: dict[str, object], where: str) -> Manifest:
    """``doc`` as a version-2 manifest, once its shape is checked (it is authenticated:
    a bad shape is a writer's bug or another program's file, hence FormatError)."""

    def bad(why: str) -> FormatError:
        return FormatError(f"{where}: malformed manifest: {why}")

    write_id = doc.get("write")
    if not (isinstance(write_id, str) and len(write_id) == 2 * WRITE_ID_LEN and _HEX.fullmatch(write_id)):
        raise bad(f"'write' must be {2 * WRITE_ID_LEN} lowercase hex digits")
    if doc.get("format") not in FORMATS or not isinstance(doc.get("header"), bool):
        raise bad("'format' or 'header' is missing or invalid")
    parts = doc.get("parts")
    if not isinstance(parts, list):
        raise bad("'parts' must be a list")
    seen: set[str] = set()
    for i, part in enumerate(parts):
        name = part.get("name") if isinstance(part, dict) else None
        if not (isinstance(name, str) and _PART_NAME.fullmatch(name)) or name in seen:
            raise bad(f"parts[{i}]: 'name' is not a part file name, or repeats one")
        seen.add(name)
        for field in ("lines", "bytes"):
            n = part.get(field)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise bad(f"part {name}: {field!r} must be a count")
        digest = part.get("sealed_header_sha256")
        if not (isinstance(digest, str) and len(digest) == 64 and _HEX.fullmatch(digest)):
            raise bad(f"part {name}: 'sealed_header_sha256' must be 64 lowercase hex digits")
    # Every key of Manifest and PartRecord was checked above (the version by the caller).
    return cast(Manifest, doc)


class SealedIO:
    """Writes and reads sealed datasets with a Spark session and a KMS.

    >>> sio = SealedIO(spark, "local:/etc/exitless/keyring.json")   # doctest: +SKIP
    >>> sio.write(df, "/data/out", format="csv")                     # doctest: +SKIP
    >>> sio.read("/data/out", format="csv", schema=df.schema)        # doctest: +SKIP
    """

    def __init__(self, spark: SparkSession, kms: str | Kms, *, context: str = "") -> None:
        """``kms`` is a KMS URI or an opened :class:`exitless.kms.Kms` (its ``uri`` is
        what the executors open). ``context`` binds every part to this dataset role."""
        from ..kms import Kms, open_kms

        if isinstance(kms, Kms):
            uri = kms.uri
        elif isinstance(kms, str):
            with open_kms(kms) as opened:  # fail here, on the driver, if it does not open
                uri = opened.uri
        else:
            raise TypeError(f"kms must be a KMS URI or an exitless.kms.Kms, not {type(kms).__name__}")
        if not isinstance(context, str):
            raise TypeError(f"context must be a str, not {type(context).__name__}")
        self._spark = spark
        self._kms_uri = uri
        self._context = context

    # ------------------------------------------------------------------ write

    def write(
        self,
        df: DataFrame,
        path: str | os.PathLike[str],
        format: str = "csv",
        *,
        header: bool = True,
        mode: str = "error",
    ) -> list[PartRecord]:
        """Writes ``df`` as one sealed part per partition under the directory ``path``
        plus a sealed manifest; returns the manifest's part list. ``mode`` is
        ``"error"`` (the directory must not hold a dataset) or ``"overwrite"``."""
        from pyspark.sql import functions as F

        fmt = _check_format(format)
        directory = os.path.abspath(os.fspath(path))
        if mode not in ("error", "overwrite"):
            raise ValueError(f"mode must be 'error' or 'overwrite', not {mode!r}")
        os.makedirs(directory, exist_ok=True)
        existing = [n for n in os.listdir(directory) if n == MANIFEST or n.startswith("part-")]
        if existing and mode == "error":
            raise FileExistsError(
                f"{directory} already holds a dataset ({len(existing)} files); pass mode='overwrite'"
            )
        for n in existing:
            os.unlink(os.path.join(directory, n))
        head: str | None = None
        # the rows stay in the JVM: a Dataset[String] that SealedDatasets seals part by part
        jvm = self._jvm()
        as_strings = jvm.org.apache.spark.sql.Encoders.STRING()
        if fmt == "text":
            if len(df.columns) != 1:
                raise ValueError(f"format 'text' needs exactly one string column, got {df.columns}")
            text = df.select(F.coalesce(F.col(df.columns[0]).cast("string"), F.lit("")))
            lines = getattr(text._jdf, "as")(as_strings)
        elif fmt == "json":
            lines = df._jdf.toJSON()
        else:
            text = df.select(F.to_csv(F.struct(*[F.col(c) for c in df.columns])))
            lines = getattr(text._jdf, "as")(as_strings)
            if header:
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(df.columns)
                head = buf.getvalue()
        write_id = secrets.token_bytes(WRITE_ID_LEN).hex()  # this write's id, drawn on the driver
        records = jvm.io.exitless.spark.SealedDatasets.writeParts(
            lines, directory, self._kms_uri, self._context, write_id, FORMATS[fmt], head, SEGMENT_SIZE
        )
        parts = [cast(PartRecord, json.loads(str(r))) for r in records]
        parts.sort(key=lambda p: p["name"])
        self._write_manifest(directory, fmt, header and fmt == "csv", write_id, parts)
        return parts

    def _write_manifest(
        self, directory: str, fmt: str, header: bool, write_id: str, parts: list[PartRecord]
    ) -> None:
        from ..kms import open_kms, open_sealed

        doc = {
            "version": MANIFEST_VERSION,
            "write": write_id,
            "format": fmt,
            "header": header,
            "parts": parts,
        }
        with (
            open_kms(self._kms_uri) as kms,
            open_sealed(os.path.join(directory, MANIFEST), "wb", kms, _context(self._context, MANIFEST)) as f,
        ):
            f.write(json.dumps(doc, sort_keys=True).encode())

    # ------------------------------------------------------------------ read

    def manifest(self, path: str | os.PathLike[str]) -> Manifest:
        """The dataset's manifest, authenticated (opened through the KMS) and checked:
        version 2 (:class:`exitless.FormatError` for version 1 or an unknown one), well
        formed, and every listed part present (:class:`exitless.IntegrityError`)."""
        from ..kms import open_kms, open_sealed

        directory = os.path.abspath(os.fspath(path))
        where = os.path.join(directory, MANIFEST)
        with (
            open_kms(self._kms_uri) as kms,
            open_sealed(where, "rb", kms, _context(self._context, MANIFEST)) as f,
        ):
            raw = f.read()
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(f"{where}: the manifest is not JSON ({type(e).__name__})") from None
        version = doc.get("version") if isinstance(doc, dict) else None
        if version == 1:
            raise FormatError(
                f"{where}: manifest version 1 does not bind its parts to one dataset write (an older part at "
                f"the same path would be accepted); this reader needs version {MANIFEST_VERSION}: rewrite the "
                "dataset with SealedIO.write"
            )
        if version != MANIFEST_VERSION:
            raise FormatError(
                f"{where}: unknown manifest version {version!r} (this reader knows {MANIFEST_VERSION})"
            )
        manifest = _check_manifest(doc, where)
        for part in manifest["parts"]:
            if not os.path.exists(os.path.join(directory, part["name"])):
                raise IntegrityError(f"{directory}: part {part['name']} listed in the manifest is missing")
        return manifest

    def read(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        *,
        schema: StructType | str | None = None,
        header: bool | None = None,
    ) -> DataFrame:
        """Reads a sealed dataset directory written by :meth:`write` (format and
        header from its manifest), or one sealed file (e.g. from ``exitless seal
        --kms``; its context is this object's ``context`` exactly), as a DataFrame.
        CSV without a schema reads every column as a string, named from the header."""
        from pyspark.sql.types import StringType, StructField, StructType

        target = os.path.abspath(os.fspath(path))
        doc: Manifest | None = None
        if os.path.isdir(target):
            doc = self.manifest(target)
            fmt = _check_format(format or doc["format"])
            if fmt != doc["format"]:
                raise ValueError(f"{target} holds {doc['format']!r} parts, not {fmt!r}")
            has_header = bool(doc["header"])
            write_id = doc["write"]
            sources: list[_Source] = [
                {
                    "path": os.path.join(target, p["name"]),
                    "context": _part_context(self._context, write_id, p["name"]),
                    "write": write_id,
                    "digest": p["sealed_header_sha256"],
                    "bytes": p["bytes"],
                    "lines": p["lines"],
                }
                for p in doc["parts"]
            ]
        else:
            fmt = _check_format(format or "csv")
            has_header = fmt == "csv" if header is None else header
            sources = [{"path": target, "context": self._context}]
        if fmt == "csv" and schema is None:
            names = self._header_names(sources) if has_header else None
            if names is None:
                raise ValueError("a CSV dataset without a header needs a schema")
            schema = StructType([StructField(n, StringType()) for n in names])
        if doc is not None and sources:
            return self._scan(fmt, doc, [s["path"] for s in sources], has_header, schema)
        from pyspark.sql import DataFrame

        jlines = self._jvm().io.exitless.spark.SealedDatasets.readLines(
            self._spark._jsparkSession, self._kms_uri, json.dumps(sources), has_header
        )
        if fmt == "text":
            return DataFrame(jlines.toDF(), self._spark)  # a Dataset[String]: one column, "value"
        reader = self._spark.read
        if schema is not None:  # always set for CSV (above)
            reader = reader.schema(schema)
        if fmt == "json":
            return DataFrame(reader._jreader.json(jlines), self._spark)
        return DataFrame(reader._jreader.option("header", False).csv(jlines), self._spark)

    def _scan(
        self, fmt: str, doc: Manifest, paths: list[str], has_header: bool, schema: StructType | str | None
    ) -> DataFrame:
        """The parts read by Spark's own file scan, opened by the sealed file codec
        (``SealedHadoopCodec``) in the executors' JVMs: each part bound to its name in this
        write, its header digest and counts checked against the manifest."""
        from . import blocks

        self._jvm()
        options = {
            "io.compression.codecs": blocks.HADOOP_CODEC_CLASS,
            "exitless.kms": self._kms_uri,
            "exitless.context": self._context,
            "exitless.dataset.write": doc["write"],
            "exitless.dataset.header": "true" if has_header else "false",
            "exitless.dataset.parts": json.dumps(
                {
                    p["name"]: {
                        "sealed_header_sha256": p["sealed_header_sha256"],
                        "bytes": p["bytes"],
                        "lines": p["lines"],
                    }
                    for p in doc["parts"]
                }
            ),
        }
        reader = self._spark.read.options(**options)
        if schema is not None:
            reader = reader.schema(schema)
        if fmt == "text":
            return reader.text(paths)
        if fmt == "json":
            return reader.json(paths)
        return reader.csv(paths, header=has_header)

    def _jvm(self) -> Any:
        """The driver's JVM, after checking that exitless's JVM library is on the driver's
        class path and, off local mode, on the executors' (configure() puts it there)."""
        from . import blocks

        jvm = self._spark.sparkContext._jvm
        if jvm is None:
            raise RuntimeError("the Spark session is stopped")
        conf = self._spark.sparkContext.getConf()
        try:
            jvm.java.lang.Class.forName("io.exitless.spark.SealedDatasets")
            on_executors = conf.get("spark.master", "").startswith("local") or blocks.jar_path() in (
                conf.get("spark.executor.extraClassPath", "") or ""
            ).split(os.pathsep)
        except Exception:  # py4j's Py4JJavaError (ClassNotFoundException)
            on_executors = False
        if not on_executors:
            raise RuntimeError(
                "SealedIO seals and opens the parts in the executors' JVMs, with exitless's JVM library "
                "(exitless-spark.jar): create the session with exitless.spark.configure(builder), or put "
                f"{blocks.JAR} on spark.driver.extraClassPath and spark.executor.extraClassPath"
            )
        return jvm

    def _header_names(self, sources: list[_Source]) -> list[str] | None:
        """The column names in the first source's header line (read on the driver)."""
        if not sources:
            return None
        first = next(_read_lines(self._kms_uri, False, {**sources[0], "lines": None}), "")
        return next(csv.reader([first]))
