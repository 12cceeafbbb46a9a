"""The `runq` command: `main` is the console script (`runq = runq.producers.cli:main`).

- `entry`: `main(argv)`: hands `runq sandbox` to the sandbox's own CLI, parses the
  rest, runs the command, and turns a `RunqError` into one line and exit status 2;
- `parser`: `build_parser()`, every subcommand registered by the module that runs it
  (`jobs` here, `ops.commands`, `ask.command`);
- `jobs`: the job commands (`submit`, `status`, `result`, `watch`, `cancel`, `tools`);
- `option_types`: the value types of options (ports, counts, seconds), refused by name
  before a command starts anything.

`python -m runq.producers.cli ARGS` runs the same `main` (`__main__`).
"""

from runq.producers.cli.entry import EXIT_USAGE, main
from runq.producers.cli.parser import build_parser

__all__ = ["EXIT_USAGE", "build_parser", "main"]
