"""The `runq` argument parser: each subcommand is registered by the module that runs it.

- `cli.jobs`: `submit`, `status`, `result`, `watch`, `cancel`, `tools`;
- `cli.approve`: `approve` (a person decides a tool call that waits);
- `cli.listing`: `jobs` (recent jobs, newest first);
- `cli.conversations`: `conversations import|export`;
- `cli.files`: `files` (the files a job's run produced);
- `cli.budgets`: `budgets` (spend and what is left, jobs waiting by tenant);
- `ops.commands`: `worker`, `up`, `demo`, `metrics`, `flower`, `gateway`, `webhooks`;
- `ask.command`: `ask`;
- `cli.completion`: `completion` (a shell completion script made from this parser);
- `sandbox` is listed for `--help` only: `cli.entry` hands `runq sandbox ARGS` to the
  sandbox's own parser before this one runs.

Registering imports those modules, not the services their handlers start: building the
parser stays cheap on every start of `runq`. Every option's help shows its default
(`cli.help_format`).
"""

from __future__ import annotations

import argparse

from runq import __version__
from runq.producers.ask import command as ask_command
from runq.producers.cli import approve, budgets, completion, conversations, files, jobs, listing
from runq.producers.cli.help_format import RunqParser
from runq.producers.ops import commands as ops_commands


def build_parser() -> argparse.ArgumentParser:
    parser = RunqParser(
        prog="runq", description="Run LLM conversation jobs in the background on Celery and Redis."
    )
    parser.add_argument("--version", action="version", version=f"runq {__version__}",
                        help="print runq's version and exit")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    jobs.add_commands(sub)
    approve.add_commands(sub)
    listing.add_commands(sub)
    conversations.add_commands(sub)
    files.add_commands(sub)
    budgets.add_commands(sub)
    ops_commands.add_commands(sub)
    sub.add_parser("sandbox", help="run the offline OpenAI-compatible server", add_help=False)
    ask_command.add_commands(sub)
    completion.add_commands(sub)
    return parser
