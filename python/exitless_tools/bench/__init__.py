"""exitless benchmarks: they measure and write JSON; tests check, benchmarks never
assert times. Map of the package:

- :mod:`.job`: :class:`BenchConfig` and :func:`run_bench`, the job behind
  ``python -m exitless_tools bench`` and ``run`` (``make run``): Spark jobs with and
  without exitless, the IO matrix, the runtime against tokio.
- :mod:`.matrix`: the IO matrix, one natively driven stream per backend point and
  segment size, with exact exit counts and CPU time.
- :mod:`.benchlib`: ``libexitless_bench.so`` (``native/bench``), the native drivers
  the matrix runs, loaded with cffi in ABI mode.
- :mod:`.runtime`: exitless-rt against tokio (the Rust example ``rt_bench``).
- :mod:`.machine`: the machine facts every JSON carries (CPU flags, kernel,
  io_uring features, whether SQPOLL ran, the OCALL model in force).
- :mod:`.report`: the summary table, ``report.md``, ``results.json``.
- :mod:`.plots`: PNG plots (matplotlib).
- :mod:`.seal`: sealing in memory, exitless ``seal_into`` against ``cryptography``'s
  AES-256-GCM at 4 KiB, 64 KiB and 1 MiB (``results["seal"]`` of every run).
- :mod:`.suites`: the detailed suites (``python -m exitless_tools suites``): sealing
  against ``cryptography``, the ten-point IO matrix with plaintext twins, vCPU
  scaling of one stream.

``results.schema.json`` (JSON Schema) describes ``results.json``.
"""

from .job import SCHEMA, BenchConfig, run_bench
from .machine import machine

__all__ = ["SCHEMA", "BenchConfig", "machine", "run_bench"]
