"""`python -m netc ...` runs the command line."""

import sys

from netc.cli import run

sys.exit(run())
