"""A tool that takes its time, so a test can act while a tool round is running.

Loaded by the integration stacks through `RUNQ_TOOL_MODULES` (tests/integration/conftest.py).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from runq.runs.tools import tool


@tool(timeout=15.0)
def wait_a_while(seconds: Annotated[float, "how long to wait, at most 10 s"]) -> dict[str, Any]:
    """Wait for the given time, then say how long it waited."""
    waited = max(0.0, min(float(seconds), 10.0))
    time.sleep(waited)
    return {"waited_s": waited}


@tool(timeout=1.0, isolation="process")
def stuck_in_a_process(seconds: Annotated[float, "how long to hang"]) -> str:
    """Hang far past the timeout: the worker must stop this tool, not abandon it."""
    time.sleep(float(seconds))
    return "finished"
