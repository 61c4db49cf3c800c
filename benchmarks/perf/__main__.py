"""`python -m perf` (from benchmarks/): the same as `python benchmarks/perf.py`."""

import sys

from perf.cli import main

sys.exit(main())
