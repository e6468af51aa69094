"""Sealed datasets for Spark jobs: every file a job writes or reads on untrusted
storage is an exitless sealed stream whose data key travels, wrapped by a KMS, in
its own header (format version 2, docs/FORMAT.md). A reader needs only the KMS.

A dataset is a directory:

- ``part-NNNNN.<format>.exls``: one sealed part per partition, plain lines in the
  chosen format (text, CSV or JSON lines, as Spark writes them), each under its own
  data key. A part's stream context is ``<context>/<part name>`` (just the part
  name when the dataset context is empty), so parts cannot be swapped, and the
  CLI opens one with ``exitless open PART OUT --kms URI -c <that context>``.
- ``_MANIFEST.exls``: a sealed JSON list of the parts with their line and byte
  counts. Reading checks every listed part is there and complete, so a dropped,
  truncated or replayed-from-elsewhere part fails the job instead of silently
  shrinking the data. Files not in the manifest are ignored.

Text, CSV and JSON lines are supported, one record per line (CSV or text values
that contain a newline are not: JSON lines escape them). Parquet is not: its footer-first random
access layout would need a seekable file object inside Spark's JVM reader, which a
Python-side decrypting stream cannot give it without a plaintext copy on disk.

The KMS is named by URI (``local:PATH`` or ``pkcs11:...``, see docs/KMS.md), and
each executor opens it itself: the URI, not a live KMS object, travels with the
tasks. The local keyring must therefore be readable on every executor (same
path), and a PKCS#11 PIN variable set in the executors' environment.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import IntegrityError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["FORMATS", "MANIFEST", "SealedIO"]

#: Dataset formats and their file name extensions.
FORMATS = {"text": "txt", "csv": "csv", "json": "json"}
#: The manifest's file name inside a dataset directory.
MANIFEST = "_MANIFEST.exls"
_MANIFEST_VERSION = 1


def _part_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}.{FORMATS[fmt]}.exls"


def _context(dataset_context: str, name: str) -> str:
    return f"{dataset_context}/{name}" if dataset_context else name


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {sorted(FORMATS)} (Parquet is not supported: see exitless.spark.sealed_io)")
    return fmt


def _write_part(kms_uri: str, directory: str, fmt: str, context: str, header: str | None,
                index: int, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Runs on an executor: seals one partition's lines into one part file."""
    from ..kms import open_kms, open_sealed

    name = _part_name(index, fmt)
    path = os.path.join(directory, name)
    count = 0
    with open_kms(kms_uri) as kms:
        with open_sealed(path, "wb", kms, _context(context, name)) as raw:
            out = io.BufferedWriter(raw, 1 << 20)
            if header is not None:
                out.write(header.encode() + b"\n")
            for line in lines:
                out.write(line.encode() + b"\n")
                count += 1
            out.flush()
            size = raw.tell()
    yield {"name": name, "lines": count, "bytes": size}


def _read_lines(kms_uri: str, skip_header: bool, source: dict[str, Any]) -> Iterator[str]:
    """Runs on an executor: opens one sealed file and yields its lines. A manifest
    part (``bytes`` and ``lines`` set) must match the manifest's counts."""
    from ..kms import open_kms, open_sealed

    path, want_bytes, want_lines = source["path"], source.get("bytes"), source.get("lines")
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


class SealedIO:
    """Writes and reads sealed datasets with a Spark session and a KMS.

    >>> sio = SealedIO(spark, "local:/etc/exitless/keyring.json")   # doctest: +SKIP
    >>> sio.write(df, "/data/out", format="csv")                     # doctest: +SKIP
    >>> sio.read("/data/out", format="csv", schema=df.schema)        # doctest: +SKIP
    """

    def __init__(self, spark: SparkSession, kms: str | Any, *, context: str = "") -> None:
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

    def write(self, df: DataFrame, path: str | os.PathLike[str], format: str = "csv", *,
              header: bool = True, mode: str = "error") -> list[dict[str, Any]]:
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
            raise FileExistsError(f"{directory} already holds a dataset ({len(existing)} files); pass mode='overwrite'")
        for n in existing:
            os.unlink(os.path.join(directory, n))
        head: str | None = None
        if fmt == "text":
            if len(df.columns) != 1:
                raise ValueError(f"format 'text' needs exactly one string column, got {df.columns}")
            lines = df.select(F.col(df.columns[0]).cast("string")).rdd.map(lambda r: "" if r[0] is None else r[0])
        elif fmt == "json":
            lines = df.toJSON()
        else:
            lines = df.select(F.to_csv(F.struct(*[F.col(c) for c in df.columns]))).rdd.map(lambda r: r[0])
            if header:
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(df.columns)
                head = buf.getvalue()
        uri, ctx = self._kms_uri, self._context
        parts = lines.mapPartitionsWithIndex(
            lambda i, it: _write_part(uri, directory, fmt, ctx, head, i, it)
        ).collect()
        parts.sort(key=lambda p: p["name"])
        self._write_manifest(directory, fmt, header and fmt == "csv", parts)
        return parts

    def _write_manifest(self, directory: str, fmt: str, header: bool, parts: list[dict[str, Any]]) -> None:
        from ..kms import open_kms, open_sealed

        doc = {"version": _MANIFEST_VERSION, "format": fmt, "header": header, "parts": parts}
        with open_kms(self._kms_uri) as kms:
            with open_sealed(os.path.join(directory, MANIFEST), "wb", kms, _context(self._context, MANIFEST)) as f:
                f.write(json.dumps(doc, sort_keys=True).encode())

    # ------------------------------------------------------------------ read

    def manifest(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The dataset's manifest, authenticated (opened through the KMS)."""
        from ..kms import open_kms, open_sealed

        directory = os.path.abspath(os.fspath(path))
        with open_kms(self._kms_uri) as kms:
            with open_sealed(os.path.join(directory, MANIFEST), "rb", kms, _context(self._context, MANIFEST)) as f:
                doc = json.loads(f.read())
        if doc.get("version") != _MANIFEST_VERSION:
            raise IntegrityError(f"{directory}: unknown manifest version {doc.get('version')!r}")
        for part in doc["parts"]:
            if not os.path.exists(os.path.join(directory, part["name"])):
                raise IntegrityError(f"{directory}: part {part['name']} listed in the manifest is missing")
        return doc  # type: ignore[no-any-return]

    def read(self, path: str | os.PathLike[str], format: str | None = None, *,
             schema: StructType | str | None = None, header: bool | None = None) -> DataFrame:
        """Reads a sealed dataset directory written by :meth:`write` (format and
        header from its manifest), or one sealed file (e.g. from ``exitless seal
        --kms``; its context is this object's ``context`` exactly), as a DataFrame.
        CSV without a schema reads every column as a string, named from the header."""
        from pyspark.sql.types import StringType, StructField, StructType

        target = os.path.abspath(os.fspath(path))
        if os.path.isdir(target):
            doc = self.manifest(target)
            fmt = _check_format(format or doc["format"])
            if fmt != doc["format"]:
                raise ValueError(f"{target} holds {doc['format']!r} parts, not {fmt!r}")
            has_header = bool(doc["header"])
            sources = [
                {"path": os.path.join(target, p["name"]), "context": _context(self._context, p["name"]),
                 "bytes": p["bytes"], "lines": p["lines"]}
                for p in doc["parts"]
            ]
        else:
            fmt = _check_format(format or "csv")
            has_header = fmt == "csv" if header is None else header
            sources = [{"path": target, "context": self._context}]
        uri = self._kms_uri
        lines = self._spark.sparkContext.parallelize(sources, max(1, len(sources))).flatMap(
            lambda src: _read_lines(uri, has_header, src)
        )
        if fmt == "text":
            return self._spark.createDataFrame(lines.map(lambda s: (s,)), "value string")
        if fmt == "json":
            return self._spark.read.json(lines, schema=schema)
        if schema is None:
            names = self._header_names(sources) if has_header else None
            if names is None:
                raise ValueError("a CSV dataset without a header needs a schema")
            schema = StructType([StructField(n, StringType()) for n in names])
        return self._spark.read.csv(lines, schema=schema, header=False)

    def _header_names(self, sources: list[dict[str, Any]]) -> list[str] | None:
        """The column names in the first source's header line (read on the driver)."""
        if not sources:
            return None
        first = next(_read_lines(self._kms_uri, False, {**sources[0], "lines": None}), "")
        return next(csv.reader([first]))


