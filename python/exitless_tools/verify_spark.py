"""Checks exitless's assumptions about Spark's internals against a PySpark release, once
per release (a tool, not a test: it needs that release's sources and jars).

``python -m exitless_tools verify-spark DIR [DIR ...]``: each ``DIR`` is a PySpark
source tree (an extracted sdist, ``pyspark-X.Y.Z/`` with ``pyspark/`` and
``deps/jars/``) or an installed ``pyspark`` package (with ``jars/``). For each:

- the Python hook: ``pyspark.shuffle`` of that release, imported in a process of its
  own, passes :func:`exitless.spark.hook.verify.check_pyspark`'s checks of its
  internals (the classes, methods and ``open`` call sites the hook patches), whatever
  the version gate says;
- the JVM library: ``jvm/src`` compiles with ``javac -Werror`` against that release's
  Spark and Hadoop jars (the codecs, the plugin, the file-scan and task APIs they use).

A table of the results goes to stdout and ``--out`` (JSON). docs/SPARK_VERSIONS.md
records the releases checked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_HOOK_CHECK = r"""
import sys
sys.path.insert(0, sys.argv[1])
import pyspark, pyspark.shuffle
from exitless.spark.hook import verify
major_minor = ".".join(pyspark.__version__.split(".")[:2])
verify.SUPPORTED_PYSPARK = (*verify.SUPPORTED_PYSPARK, major_minor)  # the internals, not the gate
verify.check_pyspark(pyspark, pyspark.shuffle)
print(pyspark.__version__, pyspark.__file__)
"""


def _layout(d: Path) -> tuple[Path, Path]:
    """(the directory to put on sys.path, the jars directory) of a source tree or install."""
    if (d / "pyspark" / "__init__.py").exists() and (d / "deps" / "jars").is_dir():
        return d, d / "deps" / "jars"
    if (d / "__init__.py").exists() and (d / "jars").is_dir():
        return d.parent, d / "jars"
    raise SystemExit(
        f"verify-spark: {d} is neither a pyspark source tree (pyspark/, deps/jars/) nor a pyspark install"
    )


def verify(d: Path) -> dict[str, Any]:
    path, jars = _layout(d)
    result: dict[str, Any] = {"dir": str(d)}
    hook = subprocess.run(
        [sys.executable, "-c", _HOOK_CHECK, str(path)], capture_output=True, text=True, timeout=120
    )
    result["hook"] = "ok" if hook.returncode == 0 else hook.stderr.strip().splitlines()[-1:]
    if hook.returncode == 0:
        result["version"], result["imported_from"] = hook.stdout.split()[:2]
    sources = sorted(str(p) for p in (ROOT / "jvm" / "src").rglob("*.java"))
    with tempfile.TemporaryDirectory() as out:
        javac = subprocess.run(
            [
                "javac",
                "--release",
                "17",
                "-Xlint:all,-path",
                "-Werror",
                "-d",
                out,
                "-cp",
                f"{jars}/*",
                *sources,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    result["jvm"] = "ok" if javac.returncode == 0 else javac.stderr.strip().splitlines()[:5]
    result["spark_core"] = sorted(p.name for p in jars.glob("spark-core_*.jar"))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m exitless_tools verify-spark", description=__doc__.splitlines()[0]
    )
    p.add_argument("dirs", nargs="+", type=Path, help="pyspark source trees or installs")
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    a = p.parse_args(argv)
    results = [verify(d) for d in a.dirs]
    for r in results:
        print(f"{r.get('version', '?'):8} hook: {r['hook']}  jvm: {r['jvm']}  ({', '.join(r['spark_core'])})")
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))
    return 0 if all(r["hook"] == "ok" and r["jvm"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
