"""``python -m exitless.bench [OPTIONS]``: the same as ``exitless bench [OPTIONS]``."""

import sys

from ..cli import main

raise SystemExit(main(["bench", *sys.argv[1:]]))
