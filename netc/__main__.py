"""`python -m netc ...` runs the command line."""

import sys

from netc.cli import main

sys.exit(main())
