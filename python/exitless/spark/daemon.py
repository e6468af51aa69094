"""``spark.python.daemon.module = exitless.spark.daemon``: PySpark's daemon, sealed.

Installs :mod:`exitless.spark.hook`, then runs ``pyspark.daemon`` as ``__main__``.
The daemon forks a worker per task connection and calls ``pyspark.worker.main``
in the child (3.5: always; 4.0: the module named by its first argument when that
starts with ``pyspark``, else ``pyspark.worker``), so every forked worker
inherits the patched ``pyspark.shuffle``. Each child makes its own spill key on
its first spill (the hook regenerates the key when the pid changes), and each
task that spilled logs one line of counters.

If the hook refuses (see :class:`~exitless.spark.hook.HookError`) the daemon exits
before it reports its port, so the executor fails the task with this error.
"""

from __future__ import annotations

import runpy


def main() -> None:
    """Install the hook and run PySpark's daemon."""
    from . import hook

    hook.install()
    import pyspark.worker

    hook.wrap_worker_main(pyspark.worker)
    runpy.run_module("pyspark.daemon", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
