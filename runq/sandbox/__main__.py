"""``python -m runq.sandbox``: same as ``runq sandbox``."""

import sys

from runq.sandbox.cli import main

sys.exit(main())
