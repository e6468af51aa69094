"""``python -m exitless_tools COMMAND [OPTIONS]`` (:mod:`exitless_tools.cli`)."""

import sys

from .cli import main

sys.exit(main())
