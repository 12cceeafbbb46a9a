"""Example tools that really work offline; `RUNQ_TOOL_MODULES=examples.tools` loads them.

| tool | what it does | idempotent |
|---|---|---|
| `calculator` | safe arithmetic from the syntax tree | yes |
| `convert_units` | length, mass, volume, temperature | yes |
| `lookup_order`, `list_orders` | read the example shop's SQLite orders | yes |
| `current_time` | now, in any IANA time zone | yes |
| `append_note` | append a line to `<RUNQ_HOME>/notes.txt` | **no** |

Importing this package registers all of them in `runs.tools.registry`.
"""

from examples.tools import calculator, clock, notes, orders, units

__all__ = ["calculator", "clock", "notes", "orders", "units"]
