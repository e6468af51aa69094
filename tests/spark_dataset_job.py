"""Sealed CSV/JSON datasets through plain ``spark.read``/``df.write`` and the sealed file
codec, run as its own process by tests/test_spark_datasets.py (a PKCS#11 token must be
configured before the JVM starts): ``python tests/spark_dataset_job.py OUT.json --kms URI
--other-kms URI --dir DIR``. Records what each step saw; the test asserts.

Steps: write CSV and JSON with the codec and read them back; rotate the KMS's primary
key, write again, read both; read with a foreign KMS; Python opens a JVM-written part
and Spark reads a Python-sealed file; a flipped byte in a part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

CANARY = "EXITLESS-CANARY-5f1d2c9e"
CONTEXT = "datasets-test"


def excerpt(text: str, word: str) -> str:
    """The first line that names ``word`` (and the one after), else the start of ``text``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if word in line:
            return "\n".join(lines[i : i + 2])[:2000]
    return text[:2000]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--kms", required=True)
    p.add_argument("--other-kms", required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    root = Path(a.dir)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    import exitless
    import exitless.spark
    from exitless.kms import open_kms, open_sealed

    builder = (
        SparkSession.builder.appName("exitless-datasets")
        .master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", str(root / "local"))
    )
    exitless.spark.configure(builder, kms=a.kms, dataset_context=CONTEXT)
    spark = builder.getOrCreate()
    report: dict[str, Any] = {}
    codec = exitless.spark.HADOOP_CODEC_CLASS
    schema = "id long, g long, note string"
    try:
        df = spark.range(3000, numPartitions=3).select(
            F.col("id"),
            (F.col("id") % 7).alias("g"),
            F.concat(F.lit(CANARY), F.lit(", a comma"), F.col("id").cast("string")).alias("note"),
        )
        expected = sorted(tuple(r) for r in df.collect())

        def files(d: Path) -> list[Path]:
            return sorted(f for f in d.iterdir() if f.name.startswith("part-"))

        def describe(d: Path) -> list[dict[str, Any]]:
            out = []
            for f in files(d):
                data = f.read_bytes()
                info = exitless.inspect(f)
                out.append(
                    {
                        "name": f.name,
                        "head": data[:5].hex(),
                        "canary": CANARY.encode() in data,
                        "key_id": info.key_id.hex(),
                    }
                )
            return out

        df.write.option("compression", codec).csv(str(root / "a-csv"), header=True)
        df.write.option("compression", codec).json(str(root / "a-json"))
        report["a_csv_files"] = describe(root / "a-csv")
        report["a_json_files"] = describe(root / "a-json")
        got_csv = spark.read.csv(str(root / "a-csv"), header=True, schema=schema)
        got_json = spark.read.schema(schema).json(str(root / "a-json"))
        report["a_csv_equal"] = sorted(tuple(r) for r in got_csv.collect()) == expected
        report["a_json_equal"] = sorted(tuple(r) for r in got_json.collect()) == expected

        # Key rotation: a new primary key wraps new files; old files still open.
        with open_kms(a.kms) as kms:
            report["rotated_to"] = kms.create_key().hex()
        df.write.option("compression", codec).csv(str(root / "b-csv"), header=True)
        report["b_csv_files"] = describe(root / "b-csv")
        both = spark.read.csv([str(root / "a-csv"), str(root / "b-csv")], header=True, schema=schema)
        report["after_rotation_count"] = both.count()
        report["after_rotation_equal"] = (
            sorted(
                tuple(r) for r in spark.read.csv(str(root / "a-csv"), header=True, schema=schema).collect()
            )
            == expected
        )

        # A foreign KMS cannot open them.
        try:
            spark.read.option("exitless.kms", a.other_kms).csv(str(root / "a-csv"), header=True).collect()
            report["foreign_error"] = None
        except Exception as e:
            report["foreign_error"] = excerpt(str(e), "KmsException")

        # One implementation each side: Python opens a JVM-written part, Spark reads a Python-sealed file.
        part = files(root / "a-csv")[0]
        with open_kms(a.kms) as kms, open_sealed(part, "rb", kms, CONTEXT) as f:
            lines = f.read().decode().splitlines()
        report["python_read_header"] = lines[0]
        report["python_read_lines"] = len(lines) - 1
        (root / "py").mkdir()
        with open_kms(a.kms) as kms, open_sealed(root / "py" / "part-py.csv.exls", "wb", kms, CONTEXT) as f:
            f.write(b"id,g,note\n1,2,from python\n3,4,also\n")
        rows = spark.read.csv(str(root / "py"), header=True, schema=schema).collect()
        report["spark_read_python_file"] = [tuple(r) for r in rows]

        # A flipped byte in a part fails the read: no wrong rows.
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0x01
        part.write_bytes(bytes(data))
        # Hadoop's local file system keeps a CRC beside each file, which would catch this
        # first; a host that tampers removes it too, leaving the seal to catch it.
        part.with_name(f".{part.name}.crc").unlink()
        try:
            n = spark.read.csv(str(root / "a-csv"), header=True, schema=schema).count()
            report["tamper_error"] = None
            report["tamper_count"] = n
        except Exception as e:
            report["tamper_error"] = excerpt(str(e), "SealIntegrityException")
    finally:
        spark.stop()
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
