"""Value types for `runq` command-line options: argparse refuses a bad value by name.

`argparse` turns the `ArgumentTypeError` into `runq <command>: error: argument --port:
...` and exit status 2, before the command starts anything.
"""

from __future__ import annotations

import argparse


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})") from None


def port(text: str) -> int:
    """A TCP port; 0 lets the system pick a free one."""
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port within 0-65535 (got {value})")
    return value


def positive(text: str) -> int:
    """A count of at least one (workers, processes)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def not_negative(text: str) -> int:
    """A count or a duration that may be zero."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {value})")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """A duration more than zero: seconds (`90`), or with a unit: `90s`, `15m`, `24h`, `2d`."""
    unit = _UNITS.get(text[-1:].lower()) if text else None
    try:
        value = float(text[:-1] if unit else text) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 600, 15m, 24h or 2d (got {text!r})"
        ) from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text})")
    return value


def seconds(text: str) -> float:
    """A wait in seconds, more than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {text!r})") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text})")
    return value
