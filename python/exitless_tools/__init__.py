"""exitless_tools: the benchmarks, the stress run and the main job (``make run``)
of an exitless checkout. Not part of the ``exitless`` package: the wheel holds
``exitless/`` only, and these tools need the source tree (``native/bench``'s
library, the Rust examples, cargo). ``maturin develop`` (``make setup``) puts
``python/`` on the virtualenv's path, so ``python -m exitless_tools`` runs there.

Map of the package:

- :mod:`.cli`: ``python -m exitless_tools run|bench|suites|stress|spark-bench|dataset-bench``.
- :mod:`.bench`: the main job and the benchmark matrix, its report, plots and
  ``results.json`` schema; :mod:`.bench.benchlib` loads the native drivers.
- :mod:`.stress`: many concurrent sealed streams per backend, then one very long one.
- :mod:`.spark_bench`: spilling PySpark jobs with and without sealed spills.
- :mod:`.dataset_bench`: sealed datasets against plaintext ones.
"""
