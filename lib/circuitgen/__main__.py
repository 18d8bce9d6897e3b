"""``python -m circuitgen``: the same command line as the ``circuitgen`` script."""

import sys

from circuitgen.cli import main

sys.exit(main())
