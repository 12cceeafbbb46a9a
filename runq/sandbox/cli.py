"""``runq sandbox``'s stable entry point: ``runq.producers.cli`` calls ``main(argv)`` here.

The command line itself lives in :mod:`runq.sandbox.server.cli`; this module only keeps
the old import path working for callers outside the sandbox.
"""

from runq.sandbox.server.cli import build_parser, main

__all__ = ["build_parser", "main"]
