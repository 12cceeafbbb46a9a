"""`current_time`: what time it is now, anywhere, from the system's IANA time zone data.

Models do not know the current date or time; this is the usual first tool people give
them. Zone names are IANA names ("Europe/Paris"); "UTC", "GMT" and "Z" and differently
cased names ("europe/paris") are accepted too, because models type them that way.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from runq.runs.tools import tool

_UTC_NAMES = {"utc", "gmt", "z", "zulu", "etc/utc", "universal"}


@tool(timeout=5.0)
def current_time(
    timezone: Annotated[
        str, "IANA time zone name, e.g. 'Europe/Paris' or 'America/New_York'"
    ] = "UTC",
) -> dict[str, Any]:
    """Get the current date and time in a time zone, with its UTC offset and weekday."""
    zone = find_zone(timezone)
    now = datetime.now(zone)
    offset = now.strftime("%z")
    return {
        "timezone": zone.key,
        "iso": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M:%S"),
        "weekday": now.strftime("%A"),
        "utc_offset": f"{offset[:3]}:{offset[3:]}",
        "abbreviation": now.tzname(),
        "unix": int(now.timestamp()),
    }


def find_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone `name` means; `ValueError` with an example of a valid name if none."""
    text = name.strip()
    if text.lower() in _UTC_NAMES:
        return zoneinfo.ZoneInfo("UTC")
    key = _zone_keys().get(text.lower().replace(" ", "_"))
    if key is None:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC', 'Europe/Paris' "
            "or 'America/New_York'"
        )
    return zoneinfo.ZoneInfo(key)


@lru_cache(maxsize=1)
def _zone_keys() -> dict[str, str]:
    """Lower-cased name -> IANA key, for every zone this machine knows (read once)."""
    return {key.lower(): key for key in zoneinfo.available_timezones()}
