"""Run the campaign-analytics lakehouse: ``python runner.py [command] [options]`` (``--help`` lists them).

The documented entry point. It only hands the arguments to :func:`lakehouse.cli.main`, the same ``main`` that
``python -m lakehouse`` and the ``lakehouse`` console script run, with this repository as the base directory
(``.env`` is read here and relative paths resolve here, whatever the working directory).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lakehouse.cli import ExitCode, main

__all__ = ["ExitCode", "main"]

if __name__ == "__main__":
    sys.exit(main(base_dir=Path(__file__).resolve().parent, prog="runner.py"))
