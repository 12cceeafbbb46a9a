"""Tools whose calls wait for a person (runs.approvals), for the approval tests.

`refund` leaves a marker file per order in the folder `RUNQ_TEST_REFUND_DIR` names (the
test's temporary folder, given to the worker's environment): a denied refund must leave
none. Loaded by the approval tests' stack through `RUNQ_TOOL_MODULES`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from runq.runs.tools import tool


@tool(requires_approval=True, idempotent=False)
def refund(
    order_id: Annotated[str, "the order to refund"], amount: Annotated[float, "how much"]
) -> dict[str, Any]:
    """Refund an order: money leaves the shop, so a person approves each call."""
    folder = Path(os.environ["RUNQ_TEST_REFUND_DIR"])
    (folder / f"refund-{order_id}").write_text(f"{float(amount)}\n")
    return {"refunded": float(amount), "order_id": order_id}
