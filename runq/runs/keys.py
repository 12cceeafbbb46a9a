"""Every Redis key and queue name runq uses, in one place.

All keys share the `runq:` prefix so an operator can find (and back up, or flush)
runq's data with one pattern, and so several runq deployments can share a Redis
by changing `PREFIX`.
"""

from __future__ import annotations

PREFIX = "runq"

# Queue names live with the Celery configuration (config.celery): config imports nothing
# of ours, and Celery routing is where queues are decided.


def job(job_id: str) -> str:
    """The job record (JSON): spec, status, handles, counters, result."""
    return f"{PREFIX}:job:{job_id}"


def job_lock(job_id: str) -> str:
    """Short lease owned by the task currently acting on the job."""
    return f"{PREFIX}:lock:{job_id}"


def cancel(job_id: str) -> str:
    """Set when a producer asks to cancel; the job's next step honours it."""
    return f"{PREFIX}:cancel:{job_id}"


def events(job_id: str) -> str:
    """The job's event stream (a Redis Stream)."""
    return f"{PREFIX}:events:{job_id}"


def stream_seq(job_id: str) -> str:
    """Hash run id -> last `sequence_number` already forwarded (where a stream resumes)."""
    return f"{PREFIX}:seq:{job_id}"


def idempotency(tenant: str | None, key: str) -> str:
    """Hash: the job a producer's idempotency key created (`job`) and the fingerprint of
    the spec it was asked with (`fingerprint`), so a reuse for another job is refused.

    No two (tenant, key) pairs share a name: the tenant is length-prefixed (`5.acme`),
    and no tenant at all is `-`, which no prefixed tenant starts with. So tenant `acme:x`
    with key `k` is not tenant `acme` with key `x:k`, and a tenant called `default` is
    not a producer that set none.
    """
    scope = "-" if tenant is None else f"{len(tenant)}.{tenant}"
    return f"{PREFIX}:idem:{scope}:{key}"


def jobs_index() -> str:
    """Sorted set of every job id, scored by creation time: `runq jobs` lists it."""
    return f"{PREFIX}:jobs"


def leases() -> str:
    """Sorted set of non-terminal job ids scored by when their lease expires."""
    return f"{PREFIX}:leases"


def delayed() -> str:
    """Sorted set of `job_id|step|token` scored by when the step is due (long waits)."""
    return f"{PREFIX}:delayed"


def looks() -> str:
    """Hash of job id -> safety looks at its run not yet added to its record's `polls`
    (`runs.looks`: a look writes no record; the job's end adds them up)."""
    return f"{PREFIX}:looks"


def wakes() -> str:
    """List of `job_id|step|token`: steps due now that a worker runs in-process
    (`runs.wakes`), not through a Celery message."""
    return f"{PREFIX}:wakes"


def wake_stop(runner_id: str) -> str:
    """List one wake runner waits on beside `wakes()`: a push there ends its `BRPOP` at
    once when its worker stops, instead of after the wait's timeout."""
    return f"{PREFIX}:wakes:stop:{runner_id}"


def webhook_seen(webhook_id: str) -> str:
    """Set (with a TTL past the signature's tolerance) once a delivery was taken in: a
    replay of the same `webhook-id` finds it and is refused (runs.webhooks)."""
    return f"{PREFIX}:webhook:seen:{webhook_id}"


def webhook_response(response_id: str) -> str:
    """The job whose run is this background response (a webhook names only the response).

    Holds `early` when a delivery came before the job's step wrote it: that step then
    polls at once instead of waiting for the safety poll (runs.webhooks)."""
    return f"{PREFIX}:webhook:resp:{response_id}"


def webhook_batch(backend_batch_id: str) -> str:
    """runq's own id of the batch the backend knows as this (a `batch.*` webhook names
    only the backend's id): written when the batcher adopts the batch; `early` when its
    delivery came first (the batcher then looks at that batch at once)."""
    return f"{PREFIX}:webhook:batch:{backend_batch_id}"


def sweeper_lock() -> str:
    """Held for one sweep interval by the worker that sweeps (one sweep fleet-wide)."""
    return f"{PREFIX}:sweeper"


def tool_output(job_id: str, round_no: int) -> str:
    """Hash of call_id -> stored tool output for one tool round of a job."""
    return f"{PREFIX}:tools:{job_id}:{round_no}"


def tool_effects(job_id: str) -> str:
    """Hash of effect id -> state ("started" or the stored output) of non-idempotent calls.

    Keyed by the job and the call's tool and arguments, not by round or call id: a run
    restarted after a failure asks again with new call ids, and must not repeat the effect.
    """
    return f"{PREFIX}:effects:{job_id}"


def conversation_lock(conversation: str) -> str:
    """Serialises jobs that continue the same conversation or thread."""
    return f"{PREFIX}:conv:{conversation}"


def conversation_queue(conversation: str, tenant: str | None) -> str:
    """Sorted set of one tenant's jobs that will take turns on a conversation or thread,
    scored by submission time: the turn lock goes to them in that order
    (`JobStore.take_conversation`). Per tenant, so that another tenant's job naming the
    conversation (it fails at the history, which is not its own) never holds a place in
    the owner's line."""
    return f"{PREFIX}:convq:{tenant or ''}:{conversation}"


def turn_next(job_id: str) -> str:
    """`job_id|token` of each start that waits for `job_id` to end (the next in its
    conversation's line, a continuation), comma-separated: the commit that ends `job_id`
    reads them, and that step starts the waiting jobs at once (`JobStore.wait_for_end`,
    `EndingWrites.next_turns`)."""
    return f"{PREFIX}:turnnext:{job_id}"


def approvals(job_id: str) -> str:
    """Hash of call_id -> the tool calls of a job that wait for a person (`runs.approvals`)."""
    return f"{PREFIX}:approvals:{job_id}"


def interrupted(job_id: str) -> str:
    """The jobs `job_id` interrupted on its conversation (`runs.multitask`), until its turn."""
    return f"{PREFIX}:interrupted:{job_id}"


def rate_bucket(link: str) -> str:
    """Token bucket state (requests and tokens) for one backend link."""
    return f"{PREFIX}:rl:{link}"


def breaker(link: str) -> str:
    """Circuit breaker state for one backend link."""
    return f"{PREFIX}:cb:{link}"


def answer_cache(fingerprint: str) -> str:
    """The answer of an earlier identical job (the `cache` fallback link)."""
    return f"{PREFIX}:cache:{fingerprint}"


def upload_cache(content_hash: str) -> str:
    """File id of an already uploaded document, by content hash."""
    return f"{PREFIX}:upload:{content_hash}"


def tenant_jobs(tenant: str) -> str:
    """Sorted set of the ids of one tenant's jobs, scored by creation time."""
    return f"{PREFIX}:tenant:{tenant}"


def tool_catalog() -> str:
    """Hash tool name -> its description (JSON), published by every worker."""
    return f"{PREFIX}:toolcatalog"


def tool_catalog_seen() -> str:
    """Hash tool name -> when a worker last published it (unix time; runs.tool_catalog)."""
    return f"{PREFIX}:toolcatalog:seen"


def chain_catalog() -> str:
    """Hash chain name -> when a worker last published it (unix time; runs.chain_catalog)."""
    return f"{PREFIX}:chaincatalog:seen"


def legacy_chain_catalog() -> str:
    """The set of chain names earlier releases kept, without times: deleted by workers."""
    return f"{PREFIX}:chaincatalog"


def metrics() -> str:
    """Hash of metric series -> value, shared by every worker process (runs.metrics)."""
    return f"{PREFIX}:metrics"


def vector_store_cache(fingerprint: str) -> str:
    """Vector store id already built for one set of file ids (fingerprint of the sorted ids)."""
    return f"{PREFIX}:vs:{fingerprint}"


def vector_store_failures(store_id: str) -> str:
    """The files a vector store failed to ingest (JSON [[file id, error], ...])."""
    return f"{PREFIX}:vs-failed:{store_id}"


def input_file(tenant: str | None, sha256: str) -> str:
    """An input file's bytes, staged by the producer until a worker uploads them to the
    backend. Scoped by tenant (as `idempotency`): a job names its files by content hash,
    and must not reach another tenant's file by guessing one."""
    scope = "-" if tenant is None else f"{len(tenant)}.{tenant}"
    return f"{PREFIX}:input:{scope}:{sha256}"


def job_file(job_id: str, sha256: str) -> str:
    """The bytes of a file a job's run produced (Redis file storage, `runs.files`)."""
    return f"{PREFIX}:file:{job_id}:{sha256}"


def conversation(conversation_id: str) -> str:
    """runq's own record of a conversation (JSON): turns, instructions, backend handles."""
    return f"{PREFIX}:conversation:{conversation_id}"


# Fair admission between tenants and budgets (runs.fairness, runs.budgets).
def fair(name: str) -> str:
    """Admission state: `lanes` (tenants with waiting jobs), `state` (the round-robin's
    place and the lanes' pauses), `waiting`, `admitted`, `inflight`, `running`, `slots`
    (the workers' heartbeats), `policy` (the window, caps, rates and budgets the workers
    admit by, for admission at the push)."""
    return f"{PREFIX}:fair:{name}"


def fair_lane_prefix() -> str:
    """Prefix of each tenant's list of waiting job ids, oldest first."""
    return f"{PREFIX}:fair:wait:"


def budget(scope: str, period: str) -> str:
    """Hash of one budget's spend and reservations in one period (USD and tokens)."""
    return f"{PREFIX}:budget:{scope}:{period}"


def budget_reservations() -> str:
    """Hash job id -> the budget reservation it holds until it ends (JSON)."""
    return f"{PREFIX}:budget:reservations"


def batch_groups() -> str:
    """Hash group id -> what the batcher needs to send its lines (JSON: the chain name
    and link index, resolved in the worker's configuration; the endpoint URL path)."""
    return f"{PREFIX}:batchq:groups"


def batch_queue(group: str) -> str:
    """Sorted set of the custom ids of lines waiting to be batched, by when they came."""
    return f"{PREFIX}:batchq:{group}"


def batch_queue_lines(group: str) -> str:
    """Hash custom id -> JSONL line of the requests waiting in `batch_queue(group)`."""
    return f"{PREFIX}:batchq:{group}:lines"


def batch(batch_id: str) -> str:
    """Hash: one batch's life (status, file id, the backend's batch id, its intent)."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_lines(batch_id: str) -> str:
    """Hash custom id -> JSONL line of the requests in one batch."""
    return f"{PREFIX}:batch:{batch_id}:lines"


def batches_open() -> str:
    """Set of the batches the batcher still moves on (created, polled, results fanned)."""
    return f"{PREFIX}:batches:open"


def batch_outcome(custom_id: str) -> str:
    """A batch line's result (JSON), read by the job's `batch` step."""
    return f"{PREFIX}:batch:line:{custom_id}"


def batcher_lock() -> str:
    """Held (with a lease) by the one worker running the batcher right now."""
    return f"{PREFIX}:batcher:lock"


def batcher_tick() -> str:
    """Set for one tick interval by the worker that sent the batcher's task."""
    return f"{PREFIX}:batcher:tick"
