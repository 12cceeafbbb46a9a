"""The gateway's endpoints. Configuration (tokens, heartbeat, demo) lives on `app.state`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from runq.errors import (
    ApprovalDecidedError,
    ApprovalNotFoundError,
    BudgetExceededError,
    JobAlreadyEndedError,
    JobNotFoundError,
)
from runq.producers.client.aio import AsyncClient, AsyncJobHandle
from runq.producers.gateway import auth, page
from runq.producers.gateway.limits import StreamSlot
from runq.producers.gateway.models import (
    CONVERSATION_ID_PATTERN,
    IDEMPOTENCY_KEY_CHARS,
    JOB_ID_PATTERN,
    STREAM_ID_PATTERN,
    ApprovalDecision,
    ApprovalList,
    ApprovalView,
    CancelAccepted,
    ConversationCreated,
    ConversationImport,
    ConversationView,
    Health,
    JobCreated,
    JobList,
    JobListed,
    JobRequest,
    JobView,
    Links,
    Problem,
)
from runq.producers.gateway.sse import job_events
from runq.producers.webhooks import endpoint as webhook_endpoint
from runq.runs import model_settings
from runq.runs.job import Job, JobStatus

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="a token from RUNQ_GATEWAY_TOKENS")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown bearer token"},
    404: {"model": Problem, "description": "no such job for this tenant"},
    503: {"model": Problem, "description": "Redis cannot be reached; retry after Retry-After"},
}
TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {"model": Problem, "description": "too many open event streams; retry after Retry-After"}
}
CREATED_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {"model": JobCreated, "description": "the Idempotency-Key matched an earlier job"},
    409: {"model": Problem, "description": "the Idempotency-Key names a different job"},
    429: {
        "model": Problem,
        "description": "the tenant's budget (over: fail) has no room; retry after Retry-After",
    },
}
MAX_LISTED = 200
EVENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    **TOO_MANY,
    200: {"content": {"text/event-stream": {}}, "description": "the job's events (SSE)"},
}


def invalid(field: str, message: str) -> JSONResponse:
    """422 in FastAPI's validation shape, `loc` naming the body field."""
    detail = [{"loc": ["body", field], "msg": message, "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


def over_budget(exc: BudgetExceededError, owner: str) -> JSONResponse:
    """429 with `Retry-After` (seconds to the budget's next period) and its state: all of
    it for the tenant's own budget, only its name and reset for a batch's, which other
    tenants' jobs may share."""
    state = exc.state
    if state.get("scope") != owner:
        state = {k: state[k] for k in ("scope", "period", "resets_at", "over") if k in state}
    return JSONResponse(
        {"detail": str(exc), "budget": state},
        status_code=429,
        headers={"Retry-After": str(max(1, round(exc.retry_after)))},
    )


def client_of(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client


async def tenant(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    found = auth.tenant_for(request.app.state.tokens, creds.credentials if creds else None)
    if found is None:
        raise HTTPException(
            401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return found


Tenant = Annotated[str, Depends(tenant)]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN)]


async def owned_job(request: Request, job_id: str, owner: str) -> Job:
    """The job if it belongs to `owner`; 404 otherwise (whether it exists is not revealed)."""
    try:
        job = await client_of(request).load(job_id)
    except JobNotFoundError:
        job = None
    if job is None or job.spec.tenant != owner:
        raise HTTPException(404, f"no job {job_id}")
    return job


def _links(job_id: str) -> Links:
    base = f"/v1/jobs/{job_id}"
    return Links(self=base, events=f"{base}/events", cancel=f"{base}/cancel")


@router.post("/v1/jobs", status_code=201, response_model=JobCreated, responses=CREATED_RESPONSES)
async def submit(
    body: JobRequest,
    request: Request,
    owner: Tenant,
    idempotency_key: Annotated[
        str, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_CHARS)
    ] = "",
) -> Any:
    """Submit a job for the token's tenant; a repeated `Idempotency-Key` returns the first job.

    The same key with a different body answers 409; a tool no worker has answers 422.
    """
    options = body.model_dump(exclude_none=True, exclude={"input", "output_schema", "files"})
    if body.files is not None:
        options["files"] = [upload.decoded() for upload in body.files]  # staged by the client
    given = body.model_dump(include={"input"})["input"]  # message fields as sent, nulls too
    if body.output_schema is not None:
        options["output_schema"] = body.output_schema  # as sent: a schema's nulls count
    client = client_of(request)
    derived = {"safety_identifier": model_settings.tenant_safety_identifier(owner)}
    backend = body.backend or client.settings.backend
    if (
        client.settings.safety_identifier_from_tenant
        and body.safety_identifier is None
        and not model_settings.unsupported(backend, derived)  # Assistants have no such field
    ):
        options.update(derived)
    try:
        handle = await client.submit(
            given, idempotency_key=idempotency_key or None, tenant=owner, **options
        )
    except BudgetExceededError as exc:
        return over_budget(exc, owner)
    created = JobCreated(
        job_id=handle.id,
        status=await handle.status(),
        created=handle.created,
        links=_links(handle.id),
    )
    return JSONResponse(created.model_dump(), status_code=201 if handle.created else 200)


@router.get("/v1/jobs", response_model=JobList, responses=ERRORS)
async def list_jobs(
    request: Request,
    owner: Tenant,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 20,
) -> Any:
    """The tenant's recent jobs, newest first (jobs whose record expired are not listed)."""
    found = await client_of(request).jobs(status=status, limit=limit, tenant=owner)
    listed = [JobListed(**{**s.to_dict(), "links": _links(s.job_id)}) for s in found]
    return JobList(jobs=listed)


@router.get("/v1/jobs/{job_id}", response_model=JobView, responses=ERRORS)
async def get_job(job_id: JobId, request: Request, owner: Tenant) -> Any:
    """The job's status and, once it ended, its result."""
    job = await owned_job(request, job_id, owner)
    return {**job.result(), "metadata": dict(job.spec.metadata)}


@router.get(
    "/v1/jobs/{job_id}/events", responses=EVENT_RESPONSES, response_class=EventSourceResponse
)
async def events(
    job_id: JobId,
    request: Request,
    owner: Tenant,
    # Plain `str` with an empty default (not `str | None`): headers are never null, and an
    # `anyOf [string, null]` in the description invites clients to send "null".
    last_event_id: Annotated[str, Header(alias="Last-Event-ID", pattern=STREAM_ID_PATTERN)] = "",
    after: Annotated[str, Query(pattern=STREAM_ID_PATTERN)] = "",
) -> Any:
    """Events after `Last-Event-ID` (or `?after=`), live; the stream ends after `job.final`.

    `id:` is the Redis stream id; heartbeats are SSE comments (`: ping`).
    """
    state = request.app.state
    slot = state.stream_slots.acquire(owner)  # 429 naming the limit when full
    try:
        job = await owned_job(request, job_id, owner)
    except BaseException:
        slot.release()
        raise
    start = last_event_id or after or "0-0"
    stream = job_events(client_of(request), state.hub, job, start, request.is_disconnected)
    return EventSourceResponse(
        _holding(slot, stream),
        ping=state.heartbeat,
        ping_message_factory=_ping,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),  # also when the stream never started
    )


async def _holding(slot: StreamSlot, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`stream`, releasing its slot the moment it ends (the client left, or job.final)."""
    try:
        async for message in stream:
            yield message
    finally:
        slot.release()


def _ping() -> ServerSentEvent:
    """The heartbeat docs/gateway.md promises: the comment line `: ping`."""
    return ServerSentEvent(comment="ping")


CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": Problem, "description": "the job had already succeeded or failed"},
}


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    responses=CANCEL_RESPONSES,
)
async def cancel(job_id: JobId, request: Request, owner: Tenant) -> Any:
    """Ask the job to stop: it ends `cancelled` within a second, its run cancelled too.

    `status` is what the job was doing. Cancelling a cancelled job again is accepted
    (`cancel_requested` false: nothing more to do); a job that already succeeded or
    failed answers 409 saying how it ended — its result stands.
    """
    await owned_job(request, job_id, owner)
    try:
        status = await AsyncJobHandle(job_id, client_of(request)).cancel()
    except JobAlreadyEndedError as ended:
        raise HTTPException(409, str(ended)) from None
    except JobNotFoundError:  # it expired since: as for any job that is not there
        raise HTTPException(404, f"no job {job_id}") from None
    requested = status != JobStatus.CANCELLED
    return CancelAccepted(job_id=job_id, status=status, cancel_requested=requested)


# -- approvals (runq.runs.approvals) ------------------------------------------------------
CallId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]
DECIDE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": Problem, "description": "decided before, or the job has ended"},
}


@router.get("/v1/jobs/{job_id}/approvals", response_model=ApprovalList, responses=ERRORS)
async def list_approvals(job_id: JobId, request: Request, owner: Tenant) -> Any:
    """The job's tool calls that wait (`pending`) or waited for a person, oldest first."""
    await owned_job(request, job_id, owner)
    found = await AsyncJobHandle(job_id, client_of(request)).approvals()
    return ApprovalList(approvals=[ApprovalView(**a) for a in found])


@router.post("/v1/jobs/{job_id}/approvals/{call_id}", response_model=ApprovalView,
             responses=DECIDE_RESPONSES)  # fmt: skip
async def decide_approval(
    job_id: JobId, call_id: CallId, body: ApprovalDecision, request: Request, owner: Tenant
) -> Any:
    """Approve or deny a waiting tool call of the tenant's job; the job resumes. A denial's
    `reason` reaches the model as the tool's output. Decided once: again answers 409."""
    await owned_job(request, job_id, owner)
    handle = AsyncJobHandle(job_id, client_of(request))
    try:
        if body.approve:
            decided = await handle.approve(call_id)
        else:
            decided = await handle.deny(call_id, body.reason)
    except ApprovalNotFoundError:
        raise HTTPException(404, f"no tool call {call_id} waits in job {job_id}") from None
    except JobNotFoundError:
        raise HTTPException(404, f"no job {job_id}") from None
    except (ApprovalDecidedError, JobAlreadyEndedError) as err:
        raise HTTPException(409, str(err)) from None
    return ApprovalView(**decided)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(request: Request) -> Any:
    """200 when Redis answers, 503 otherwise."""
    try:
        ok = await client_of(request).ping()
    except Exception:  # any Redis failure means "unavailable", never a 500
        ok = False
    body = Health(status="ok" if ok else "unavailable", redis=ok)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    demo = bool(request.app.state.demo)
    return HTMLResponse(page.render(demo_token=auth.DEMO_TOKEN if demo else ""))


WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a webhook-* header missing, or no event signed"},
    401: {"model": Problem, "description": "a forged or stale signature"},
    413: {"model": Problem, "description": "a body over RUNQ_GATEWAY_MAX_BODY_BYTES"},
    503: {"model": Problem, "description": "no webhook secret here, or Redis unreachable: retry"},
}


@router.post(webhook_endpoint.PATH, responses=WEBHOOK_RESPONSES)
async def openai_webhook(request: Request) -> Any:
    """OpenAI's webhooks (webhook mode, docs/webhooks.md): authenticated by the delivery's
    signature with `OPENAI_WEBHOOK_SECRET`, not by a tenant's token; it only wakes the
    job whose run ended, and answers nothing about it."""
    client = client_of(request)

    def receiver() -> Any:
        built = getattr(request.app.state, "webhook_receiver", None)
        if built is None:
            from runq.producers.webhooks.receiver import build_receiver

            built = request.app.state.webhook_receiver = build_receiver(client.sync)
        return built

    return await webhook_endpoint.receive_openai_webhook(
        request, receiver, client.settings.gateway_max_body_bytes
    )


# -- conversations (runq.runs.conversations) ----------------------------------------------
# A thread import reads from the deployment's Assistants server, and a thread id proves
# no ownership: the gateway imports transcripts only; an operator imports threads with
# `runq conversations import --thread`.
ConversationId = Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN)]


@router.post("/v1/conversations", status_code=201, response_model=ConversationCreated,
             responses=ERRORS)  # fmt: skip
async def import_conversation(body: ConversationImport, request: Request, owner: Tenant) -> Any:
    """A new conversation of the token's tenant from a transcript; jobs continue it with
    `conversation` on any backend."""
    client = client_of(request)
    conversation = await client.import_conversation(
        transcript=body.transcript, conversation=body.conversation, tenant=owner
    )
    text = await client.export_conversation(conversation, owner)
    turns = sum(1 for line in text.splitlines() if '"role":"system"' not in line)
    return ConversationCreated(conversation=conversation, turns=turns)


@router.get("/v1/conversations/{conversation}", response_model=ConversationView,
            responses=ERRORS)  # fmt: skip
async def export_conversation(conversation: ConversationId, request: Request, owner: Tenant) -> Any:
    """The conversation's transcript; another tenant's is not found (404)."""
    try:
        text = await client_of(request).export_conversation(conversation, owner)
    except JobNotFoundError:
        raise HTTPException(404, f"no conversation {conversation}") from None
    lines = [json.loads(line) for line in text.splitlines() if line]
    return ConversationView(conversation=conversation, transcript=lines)
