"""The core's Lua scripts: each one a `.lua` file beside the module that runs it.

A script is how several Redis commands happen as one (claim a job, commit a step, move
a breaker, take from a bucket): Redis runs it atomically, so two workers never see each
other's half-done change. Kept as files, not Python strings, so each reads (and diffs)
as Lua, with its KEYS and ARGV written at its top; the wheel ships them as package data.

`register` hands a script to redis-py's `register_script`, which sends only its SHA1
(EVALSHA) after the first call and loads the text again if the server lost it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script


@cache
def source(name: str) -> str:
    """The text of `runq/runs/<name>.lua`, read once per process."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def register(client: redis.Redis, name: str) -> Script:
    """The script `name` as a callable: `script(keys=[...], args=[...])`."""
    return client.register_script(source(name))
