"""``spark.python.worker.module = exitless.spark.worker``: one PySpark worker, sealed.

Spark runs this module (``python -m``) for each worker when it does not use the
daemon (``spark.python.use.daemon=false``, or Windows). It installs
:mod:`exitless.spark.hook`, then runs ``pyspark.worker`` as ``__main__`` (which
connects back to the JVM and serves tasks). Such a worker exits normally, so its
totals are logged at exit. A refusing hook fails the worker at start.

It also offers ``main(infile, outfile)`` (hook installed, then
``pyspark.worker.main``) for launchers that import a worker module and call its
``main`` instead of running it.
"""

from __future__ import annotations

import atexit
import runpy
from typing import BinaryIO


def main(infile: BinaryIO, outfile: BinaryIO) -> None:
    """``pyspark.worker.main`` with the hook installed first."""
    from . import hook

    hook.install()
    import pyspark.worker

    hook.wrap_worker_main(pyspark.worker)
    # pyspark.worker.main has no annotations (the rest of PySpark has).
    pyspark.worker.main(infile, outfile)  # type: ignore[no-untyped-call]


def _run() -> None:
    from . import hook

    hook.install()
    atexit.register(hook.report_process)
    runpy.run_module("pyspark.worker", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _run()
