"""The approvals core on fakeredis: asked once, decided once, denied at the timeout, the
webhook's signature, and OpenAI's MCP approval requests mapped onto the same path.

The MCP mapping is checked item by item here (a Responses output item in, the
`mcp_approval_response` input item out); test_approvals_live.py runs it end to end.
"""

from __future__ import annotations

import base64
import json
import time

import fakeredis
import openai
import pytest

from runq.errors import ApprovalDecidedError, ApprovalNotFoundError, JobAlreadyEndedError
from runq.runs import keys, mcp_approvals
from runq.runs.approval_webhook import body_of, event_id, sign
from runq.runs.approvals import Approval, Approvals, needs_approval
from runq.runs.backends.responses import normalize
from runq.runs.job import Job, JobSpec, JobStatus, Step
from runq.runs.run_status import RunStatus
from runq.runs.store import JobStore
from runq.runs.tools import ToolRegistry

SECRET = "whsec_" + "c2VjcmV0LWZvci1hcHByb3ZhbHMtdGVzdHM="


def _registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(requires_approval=True, idempotent=False)
    def refund(order_id: str) -> str:
        """Refund an order."""
        return order_id

    @registry.tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    return registry


def _waiting_job(store: JobStore, calls: list[dict[str, str]], **spec: object) -> Job:
    job = Job.new(JobSpec(input="refund order 7", tools=["refund", "lookup"], **spec))  # type: ignore[arg-type]
    job.status = JobStatus.WAITING_APPROVAL
    job.round = 1
    job.pending_calls = calls
    store.create(job, [], lease_until=time.time() + 60)
    return job


REFUND = {"call_id": "call_1", "name": "refund", "arguments": '{"order_id": "7"}'}
LOOKUP = {"call_id": "call_2", "name": "lookup", "arguments": '{"order_id": "7"}'}


def test_a_registered_tool_or_the_jobs_list_needs_a_person() -> None:
    registry = _registry()
    assert needs_approval("refund", JobSpec(input="x"), registry)
    assert not needs_approval("lookup", JobSpec(input="x"), registry)
    assert needs_approval("lookup", JobSpec(input="x", approval_required=["lookup"]), registry)
    assert not needs_approval("unknown", JobSpec(input="x"), registry)
    assert registry.get("refund").describe()["requires_approval"] is True


def test_only_the_calls_that_need_a_person_are_asked(
    fake_redis: fakeredis.FakeRedis, store: JobStore
) -> None:
    approvals = Approvals(fake_redis, _registry(), timeout=30)
    job = _waiting_job(store, [REFUND, LOOKUP])
    asked = approvals.ask(job, deadline_cap=time.time() + 10)
    assert [a.call_id for a in asked] == ["call_1"]
    assert asked[0].deadline <= time.time() + 10, "an approval never outlasts the job"
    assert [a.call_id for a in approvals.pending(job.id)] == ["call_1"]
    again = approvals.ask(job, deadline_cap=time.time() + 10)
    assert again[0].call_id == "call_1"
    assert len(approvals.all(job.id)) == 1, "asking twice keeps one entry"


def test_a_call_is_decided_once_and_only_while_the_job_runs(
    fake_redis: fakeredis.FakeRedis, store: JobStore
) -> None:
    approvals = Approvals(fake_redis, _registry())
    job = _waiting_job(store, [REFUND])
    approvals.ask(job, deadline_cap=time.time() + 60)
    with pytest.raises(ApprovalNotFoundError):
        approvals.decide(job.id, "call_nope", True)
    denied = approvals.decide(job.id, "call_1", False, "too much")
    assert (denied.status, denied.reason, denied.decided_by) == ("denied", "too much", "person")
    assert json.loads(denied.output().output) == {"error": "denied by a person: too much"}
    with pytest.raises(ApprovalDecidedError) as decided:
        approvals.decide(job.id, "call_1", True)
    assert decided.value.status == "denied"
    events = [e.data for e in approvals.events.read(job.id) if e.type == "approval.decided"]
    assert [(e["call_id"], e["status"]) for e in events] == [("call_1", "denied")]

    ended = _waiting_job(store, [REFUND])
    approvals.ask(ended, deadline_cap=time.time() + 60)
    record = json.loads(fake_redis.get(keys.job(ended.id)))
    record["status"] = "cancelled"
    fake_redis.set(keys.job(ended.id), json.dumps(record))
    with pytest.raises(JobAlreadyEndedError):
        approvals.decide(ended.id, "call_1", True)
    assert approvals.pending(ended.id), "nothing was decided for an ended job"


def test_the_timeout_denies_and_stores_the_calls_output(
    fake_redis: fakeredis.FakeRedis, store: JobStore
) -> None:
    approvals = Approvals(fake_redis, _registry(), timeout=5)
    job = _waiting_job(store, [REFUND])
    approvals.ask(job, deadline_cap=time.time() + 60)
    assert approvals.expire(job.id, expected=1) == [], "not before the deadline"
    [denied] = approvals.expire(job.id, expected=1, now=time.time() + 6)
    assert (denied.status, denied.decided_by) == ("denied", "timeout")
    stored = json.loads(fake_redis.hget(keys.tool_output(job.id, 1), "call_1"))
    assert json.loads(stored["output"]) == {"error": "denied: no decision within 5s"}
    # The round is complete: its one output is in, and it was the denial's store that
    # completed it, so storing the denial again completes nothing.
    assert fake_redis.hlen(keys.tool_output(job.id, 1)) == 1
    assert approvals.store_output(denied, denied.output(), expected=1) is False


def test_the_webhook_is_signed_as_openai_signs_its_own() -> None:
    approval = Approval("job_1", "call_1", "refund", '{"order_id": "7"}', 1, deadline=9.0)
    body = body_of(approval, "acme", int(time.time()))
    webhook_id, stamp = event_id(approval), int(time.time())
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(stamp),
               "webhook-signature": sign(key, webhook_id, stamp, body)}  # fmt: skip
    openai.OpenAI(api_key="unused").webhooks.verify_signature(body, headers, secret=SECRET)
    event = json.loads(body)
    assert (event["type"], event["data"]["tenant"], event["data"]["call_id"]) == (
        "approval.requested", "acme", "call_1",
    )  # fmt: skip
    tampered = body.replace(b"refund", b"refunx")
    with pytest.raises(openai.InvalidWebhookSignatureError):
        openai.OpenAI(api_key="unused").webhooks.verify_signature(tampered, headers, secret=SECRET)


def test_an_mcp_approval_request_goes_through_the_same_path(
    fake_redis: fakeredis.FakeRedis, store: JobStore
) -> None:
    response = {
        "id": "resp_1",
        "status": "completed",
        "output": [
            {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "shop", "tools": []},
            {
                "type": "mcp_approval_request",
                "id": "mcpr_1",
                "server_label": "shop",
                "name": "refund",
                "arguments": '{"order_id": "7"}',
            },
        ],
    }
    state = normalize(response)
    assert state.status == RunStatus.REQUIRES_TOOLS
    [call] = state.tool_calls
    assert (call.call_id, call.name) == ("mcpr_1", "mcp:shop:refund")
    assert [h["type"] for h in state.hosted_calls] == ["mcp_list_tools", "mcp_approval_request"]

    approvals = Approvals(fake_redis, _registry())
    pending = {"call_id": call.call_id, "name": call.name, "arguments": call.arguments}
    job = _waiting_job(store, [pending, LOOKUP])
    [asked] = approvals.ask(job, deadline_cap=time.time() + 60)
    assert (asked.kind, asked.server_label, asked.call_id) == ("mcp", "shop", "mcpr_1")

    denied = approvals.decide(job.id, "mcpr_1", False, "not now")
    items = mcp_approvals.responses_input(
        job.pending_calls, [("mcpr_1", denied.output().output), ("call_2", "found")]
    )
    assert items == [
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False,
         "reason": "not now"},
        {"type": "function_call_output", "call_id": "call_2", "output": "found"},
    ]  # fmt: skip

    other = _waiting_job(store, [pending])
    approvals.ask(other, deadline_cap=time.time() + 60)
    approved = approvals.decide(other.id, "mcpr_1", True)
    [item] = mcp_approvals.responses_input(other.pending_calls,
                                           [("mcpr_1", approved.output().output)])  # fmt: skip
    assert item == {"type": "mcp_approval_response", "approval_request_id": "mcpr_1",
                    "approve": True}  # fmt: skip
    # An answer that is not a decision never approves a server's tool.
    [refused] = mcp_approvals.responses_input(other.pending_calls, [("mcpr_1", "oops")])
    assert refused["approve"] is False


def test_a_per_job_list_names_only_the_jobs_tools() -> None:
    from runq.errors import InvalidJobError

    JobSpec(input="x", tools=["refund"], approval_required=["refund"]).validate()
    with pytest.raises(InvalidJobError, match=r"approval_required: names 'refnd'"):
        JobSpec(input="x", tools=["refund"], approval_required=["refnd"]).validate()
    with pytest.raises(InvalidJobError, match="approval_required: must be a list"):
        JobSpec(input="x", tools=["refund"], approval_required="refund").validate()  # type: ignore[arg-type]


def test_runq_status_says_who_decides_a_waiting_job() -> None:
    from runq.producers.cli import status_view

    job = Job.new(JobSpec(input="refund order 7", tools=["refund"]))
    job.status = JobStatus.WAITING_APPROVAL
    job.step = Step.SUBMIT_TOOL_OUTPUTS
    shown = status_view.lines(job, due_at=time.time() + 3600)
    assert shown[0] == "waiting_approval"
    assert f"runq approve {job.id}" in "\n".join(shown)
