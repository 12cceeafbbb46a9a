"""The hand-written pattern runq is compared with: one Celery task per job that blocks.

The task creates a background response, then loops `retrieve` + `time.sleep(1)` until it
ends, running tool calls inline (with runq's example tools, through
`runs.tools.registry.execute`) and sending their outputs in a follow-up response. While
it sleeps, its worker process does nothing else. Started by `bench.run` as

    celery -A bench.naive worker -Q naive --concurrency 2 --pool prefork

with `REDIS_URL` (broker and results) and `OPENAI_BASE_URL` in the environment.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import openai
from celery import Celery

from runq.runs.tools import registry
from runq.runs.tools.registry import load_tool_modules

POLL_SLEEP = 1.0
_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("naive", broker=_url, backend=_url)
app.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"],
    task_default_queue="naive", worker_prefetch_multiplier=1, task_acks_late=True,
    worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
)  # fmt: skip

_client: openai.OpenAI | None = None


def client() -> openai.OpenAI:
    global _client
    if _client is None:
        _client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "sk-bench"),
                                base_url=os.environ["OPENAI_BASE_URL"], max_retries=5)  # fmt: skip
        load_tool_modules(["examples.tools"])
    return _client


@app.task(name="naive.run_job")
def run_job(job_id: str, prompt: str, tools: list[str], script: str | None) -> dict[str, Any]:
    api = client()
    params: dict[str, Any] = {
        "model": "gpt-5-mini", "background": True, "store": True,
        "metadata": {"runq_job_id": job_id, **({"sandbox_script": script} if script else {})},
    }  # fmt: skip
    if tools:
        params["tools"] = registry.openai_tools(tools, "responses")
    response = api.responses.create(input=prompt, **params)
    rounds = 0
    while True:
        while response.status in ("queued", "in_progress"):
            time.sleep(POLL_SLEEP)
            response = api.responses.retrieve(response.id)
        calls = [item for item in response.output if item.type == "function_call"]
        if response.status != "completed" or not calls:
            break
        rounds += 1
        outputs = []
        for call in calls:
            try:
                output = registry.execute(call.name, call.arguments)
            except Exception as exc:  # a tool error goes back to the model, as in runq
                output = json.dumps({"error": str(exc)})
            outputs.append({"type": "function_call_output", "call_id": call.call_id,
                            "output": output})  # fmt: skip
        response = api.responses.create(input=outputs, previous_response_id=response.id, **params)
    status = "succeeded" if response.status == "completed" else "failed"
    return {"job_id": job_id, "status": status, "output_text": response.output_text,
            "rounds": rounds, "response_id": response.id}  # fmt: skip
