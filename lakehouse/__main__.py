"""``python -m lakehouse``: the runner's command line (see :mod:`lakehouse.cli`)."""

import sys

from lakehouse.cli import main

sys.exit(main(prog="python -m lakehouse"))
