"""`python -m bench ...`: the same as `seoulchain bench ...`."""

import sys

from bench.cli import main

sys.exit(main())
