"""The `runq` argument parser: each subcommand is registered by the module that runs it.

- `cli.jobs`: `submit`, `status`, `result`, `watch`, `cancel`, `tools`;
- `ops.commands`: `worker`, `up`, `demo`, `metrics`, `flower`, `gateway`;
- `ask.command`: `ask`;
- `sandbox` is listed for `--help` only: `cli.entry` hands `runq sandbox ARGS` to the
  sandbox's own parser before this one runs.

Registering imports those modules, not the services their handlers start: building the
parser stays cheap on every start of `runq`.
"""

from __future__ import annotations

import argparse

from runq.producers.ask import command as ask_command
from runq.producers.cli import jobs
from runq.producers.ops import commands as ops_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runq", description="Run LLM conversation jobs in the background on Celery and Redis."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    jobs.add_commands(sub)
    ops_commands.add_commands(sub)
    sub.add_parser("sandbox", help="run the offline OpenAI-compatible server", add_help=False)
    ask_command.add_commands(sub)
    return parser
