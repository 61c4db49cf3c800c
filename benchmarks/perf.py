"""`python benchmarks/perf.py ...`: the performance suite's command line (the code is the
package benchmarks/perf/; `python benchmarks/perf.py --help` lists the suites).

As a script its folder, benchmarks/, comes first on sys.path, where `perf` is the package
(a package wins over a module of the same name).
"""

import sys

from perf.cli import main

if __name__ == "__main__":
    sys.exit(main())
