"""How `runq ... --help` reads: every option says what it does and, when it has one, its
default, so a newcomer need not read the code to learn what leaving it out means.

`RunqParser` is the parser class of `runq` and (through `add_subparsers`) of every
subcommand; its formatter appends `(default: X)` to an option's help unless the help
already names its default or the option has none (a flag, or a value whose default
comes from settings, which its help then names).
"""

from __future__ import annotations

import argparse
from typing import Any

NO_DEFAULT = (None, False, argparse.SUPPRESS)


class DefaultsFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in NO_DEFAULT:
            return text
        return f"{text} (default: %(default)s)"


class RunqParser(argparse.ArgumentParser):
    """An argument parser whose help shows the defaults (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


def expanded_help(action: argparse.Action) -> str:
    """An option's help with its `%(...)s` filled in, as `--help` shows it (completions)."""
    text = DefaultsFormatter("runq")._get_help_string(action) or ""
    try:
        return text % {**vars(action), "prog": "runq"}
    except (KeyError, TypeError, ValueError):
        return text
