"""The webhook event types an endpoint may subscribe to, and a sample event of each.

OpenAI lets an endpoint subscribe to every type of its webhook endpoints API (the
``event_types`` of ``client.webhooks.create``), not only to those this sandbox produces
(``response.*`` and ``batch.*``, :data:`runq.sandbox.engine.webhooks.EVENT_TYPES`).
The sandbox accepts the whole list, so a client configuring its real endpoints works
unchanged, and simply never sends the others.

``POST /v1/webhook_endpoints/{id}/test`` sends one sample of a type: its ``data`` has
the fields ``openai``'s event class for that type requires, with an id shaped like the
object's (``resp_…`` for a response event, ``batch_…`` for a batch event), so a
receiver's parsing is exercised as by a real event.
"""

from __future__ import annotations

from typing import Any

from runq.sandbox.engine.ids import new_id

# In the order of the ``openai`` client's ``Literal`` (``GET /v1/webhook_event_types``).
EVENT_TYPES: tuple[str, ...] = (
    "batch.completed", "batch.failed", "batch.expired", "batch.cancelled",
    "response.completed", "response.failed", "response.cancelled", "response.incomplete",
    "eval.run.succeeded", "eval.run.failed", "eval.run.canceled",
    "fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled",
    "realtime.call.incoming",
    "video.completed", "video.failed",
    "agent.environment.ready", "agent.environment.failed", "agent.environment.suspended",
    "agent.environment.expired",
    "agent.session.created", "agent.session.action_required", "agent.session.in_progress",
    "agent.session.idle", "agent.session.failed",
    "safety.alert.created",
)  # fmt: skip

# The id prefix of the object each family of events is about.
_ID_PREFIXES = {
    "batch": "batch",
    "response": "resp",
    "eval.run": "evalrun",
    "fine_tuning.job": "ftjob",
    "video": "video",
    "agent.environment": "env",
    "agent.session": "sess",
    "safety.alert": "alert",
}


def sample_data(event_type: str) -> dict[str, Any]:
    """The ``data`` of a sample ``event_type`` event (one of :data:`EVENT_TYPES`)."""
    if event_type == "realtime.call.incoming":
        return {
            "call_id": new_id("rtc"),
            "sip_headers": [{"name": "From", "value": "sip:sandbox@localhost"}],
        }
    family = event_type.rsplit(".", 1)[0]
    data: dict[str, Any] = {"id": new_id(_ID_PREFIXES[family])}
    if family == "agent.session":
        data["environment_type"] = "sandbox"
    if event_type == "agent.session.action_required":
        data["required_action"] = {"type": "function_call"}
    return data
