"""`python -m runq.producers.cli ARGS`: the `runq` command without its console script."""

import sys

from runq.producers.cli import main

sys.exit(main())
