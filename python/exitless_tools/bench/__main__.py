"""``python -m exitless_tools.bench [OPTIONS]``: the same as ``python -m exitless_tools bench [OPTIONS]``."""

import sys

from ..cli import main

raise SystemExit(main(["bench", *sys.argv[1:]]))
