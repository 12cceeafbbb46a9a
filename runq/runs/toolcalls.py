"""One tool call of a round, and the crash-safe fan-in that ends the round.

Each call of a round runs as its own task. Its output is stored under
`(job, round, call_id)` with HSETNX, so a redelivered task finds the output and does not
run the tool again. The store and the count are one Lua script: the call whose output
is the round's last to be stored, and only that one, learns that it completed the
round — even if several tasks run twice, concurrently — and schedules the submit step.
A repeat stores nothing, so it completes nothing.

Non-idempotent tools get one more guard: a "started" mark set before the tool runs. A
task that finds the mark but no output knows an earlier attempt died mid-call; rather
than run the tool a second time it reports the interruption to the model.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from runq.errors import ToolError
from runq.runs import keys, lua
from runq.runs.error_codes import ToolErrorCode
from runq.runs.events import EventLog
from runq.runs.metrics import Metrics
from runq.runs.tools import ToolRegistry, error_output

log = structlog.get_logger("runq.tools")
_STARTED = "\x00started"
# An idempotent tool that raised or timed out may succeed when called again.
_WORTH_RETRYING = frozenset({ToolErrorCode.TOOL_RAISED, ToolErrorCode.TOOL_TIMEOUT})


@dataclass(frozen=True)
class ToolCall:
    """Everything a tool task needs, carried in its (JSON) arguments."""

    job_id: str
    round: int
    call_id: str
    name: str
    arguments: str
    expected: int  # calls in this round: the fan-in completes at this count


@dataclass(frozen=True)
class StoredOutput:
    output: str
    error: str | None  # the ToolError code, or None when the tool ran fine
    seconds: float = 0.0

    def dumps(self) -> str:
        return json.dumps({"output": self.output, "error": self.error, "seconds": self.seconds})

    @classmethod
    def loads(cls, raw: bytes | str) -> StoredOutput:
        data = json.loads(raw)
        return cls(data["output"], data.get("error"), float(data.get("seconds", 0.0)))


class ToolCalls:
    """Runs tool calls once and tells which call completed its round."""

    def __init__(
        self,
        client: redis.Redis,
        registry: ToolRegistry,
        events: EventLog,
        *,
        ttl: int = 24 * 3600,
        metrics: Metrics | None = None,
    ) -> None:
        self.redis = client
        self.metrics = metrics
        self.registry = registry
        self.events = events
        self.ttl = ttl
        self._store_and_count = lua.register(client, "toolcalls_store_and_count")

    def run(
        self,
        call: ToolCall,
        allowed: list[str] | None,
        cancelled: bool = False,
        given: StoredOutput | None = None,
    ) -> bool:
        """Execute (at most once) and store the call; True if it completed the round.

        `given`: the call's output without running the tool (a call a person denied)."""
        out_key = keys.tool_output(call.job_id, call.round)
        raw = self.redis.hget(out_key, call.call_id)
        if raw is None:
            stored = given if given is not None else self._execute(call, allowed, cancelled)
            # The call's metrics and its event: one round trip. Not a transaction: each
            # write stands alone (a MULTI/EXEC around them cost two commands a call).
            pipe = self.redis.pipeline(transaction=False)
            if self.metrics is not None:
                self.metrics.tool_call(
                    name=call.name, seconds=stored.seconds, error=stored.error, pipe=pipe
                )
            self.events.queue(
                pipe,
                call.job_id,
                {
                    "type": "tool.output",
                    "round": call.round,
                    "call_id": call.call_id,
                    "name": call.name,
                    "output": stored.output,
                    "error": stored.error,
                    "seconds": round(stored.seconds, 4),
                },
            )
            pipe.execute()
            raw = stored.dumps()
        completed = self._store_and_count(
            keys=[out_key],
            args=[call.call_id, raw, call.expected, self.ttl],
        )
        return bool(int(completed))

    def outputs(self, job_id: str, round_no: int) -> dict[str, StoredOutput]:
        raw = self.redis.hgetall(keys.tool_output(job_id, round_no))
        return {
            k.decode() if isinstance(k, bytes) else k: StoredOutput.loads(v) for k, v in raw.items()
        }

    def _execute(self, call: ToolCall, allowed: list[str] | None, cancelled: bool) -> StoredOutput:
        started = time.perf_counter()
        try:
            if cancelled:
                raise ToolError(
                    "the job was cancelled; the tool did not run", code=ToolErrorCode.CANCELLED
                )
            if allowed is not None and call.name not in allowed:
                raise ToolError(
                    f"tool {call.name!r} is not enabled for this job "
                    f"(enabled: {', '.join(allowed) or 'none'})",
                    code=ToolErrorCode.UNKNOWN_TOOL,
                )
            spec = self.registry.get(call.name)
            arguments = self.registry.parse_arguments(call.name, call.arguments)
            if spec.idempotent:
                output = self._with_retries(spec.retries, call.name, arguments)
            else:
                output = self._run_once(call, arguments)
            log.info("tool.succeeded", job_id=call.job_id, tool=call.name, call_id=call.call_id)
            return StoredOutput(output, None, time.perf_counter() - started)
        except ToolError as err:
            log.warning(
                "tool.failed",
                job_id=call.job_id,
                tool=call.name,
                call_id=call.call_id,
                code=err.code,
                reason=str(err),
            )
            return StoredOutput(error_output(err), err.code, time.perf_counter() - started)

    def _with_retries(self, retries: int, name: str, arguments: dict[str, Any]) -> str:
        for attempt in range(retries + 1):
            try:
                return self.registry.execute(name, arguments)
            except ToolError as err:
                if err.code not in _WORTH_RETRYING or attempt == retries:
                    raise
        raise AssertionError("unreachable")

    def _run_once(self, call: ToolCall, arguments: dict[str, Any]) -> str:
        """A non-idempotent tool's effect happens at most once per job.

        The same tool with the same arguments in the same job (a redelivered task, or a
        run restarted after a failure that asks again) gets the stored output. A "started"
        mark without an output means an earlier attempt died mid-call: the model is told,
        and the tool is not run again. Never retried (a timed-out thread may still run).
        """
        key = keys.tool_effects(call.job_id)
        effect = hashlib.sha256(
            json.dumps([call.name, arguments], sort_keys=True, default=str).encode()
        ).hexdigest()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(key, effect, _STARTED)
        pipe.hget(key, effect)
        pipe.expire(key, self.ttl)
        first, state, _ = pipe.execute()
        if not first:
            if state is not None and state.decode() != _STARTED:
                return str(state.decode())
            raise ToolError(
                f"an earlier attempt of non-idempotent tool {call.name!r} was interrupted; "
                "it is not run twice",
                code=ToolErrorCode.TOOL_INTERRUPTED,
            )
        try:
            output = self.registry.execute(call.name, arguments)
        except ToolError:
            self.redis.hdel(key, effect)  # it failed before any effect: a new call may try
            raise
        self.redis.hset(key, effect, output)
        return output
