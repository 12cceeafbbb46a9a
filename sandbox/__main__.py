"""``python -m sandbox``: same as ``runq sandbox``."""

import sys

from sandbox.cli import main

sys.exit(main())
