"""``python -m benchmarks.tuning``."""

import sys

from benchmarks.tuning.cli import main

sys.exit(main())
