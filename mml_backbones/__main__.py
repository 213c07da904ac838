"""``python -m mml_backbones`` is the ``dus`` command."""

import sys

from mml_backbones.cli import main

sys.exit(main())
