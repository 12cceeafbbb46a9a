"""Object ids with OpenAI's prefixes (``resp_``, ``msg_``, ``call_``...).

Ids are random, not derived from content: two identical requests must create two
distinct objects, which is what lets runq's duplicate detection be tested.
"""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
