import sys

from salmubench.cli import main

sys.exit(main())
