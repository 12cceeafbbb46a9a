"""The no-queue bound: asyncio + `openai.AsyncOpenAI`, every job at once, no durability.

Run as a subprocess by `bench.run` (so its CPU and memory are measured alone):

    python -m bench.no_queue --base-url URL --jobs N --tool-rounds R --out FILE

Each job creates a background response, polls it after the server's
`openai-poll-after-ms` hint (the same hint runq follows; `--min-interval` when absent),
runs tool calls inline and sends their outputs in a follow-up response. The file gets,
per job, when its final state was seen (epoch seconds) and its status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import httpx
import openai

from runq.runs.tools import registry
from runq.runs.tools.registry import load_tool_modules


async def one_job(api: openai.AsyncOpenAI, job_id: str, prompt: str, tools: list[str],
                  script: str | None, min_interval: float) -> dict[str, Any]:  # fmt: skip
    params: dict[str, Any] = {
        "model": "gpt-5-mini", "background": True, "store": True,
        "metadata": {"runq_job_id": job_id, **({"sandbox_script": script} if script else {})},
    }  # fmt: skip
    if tools:
        params["tools"] = registry.openai_tools(tools, "responses")
    response = await api.responses.create(input=prompt, **params)
    hint: str | None = None
    while True:
        while response.status in ("queued", "in_progress"):
            wait = int(hint) / 1000.0 if hint and hint.isdigit() else min_interval
            await asyncio.sleep(wait)
            raw = await api.responses.with_raw_response.retrieve(response.id)
            hint = raw.headers.get("openai-poll-after-ms")
            response = raw.parse()
        calls = [item for item in response.output if item.type == "function_call"]
        if response.status != "completed" or not calls:
            break
        outputs = []
        for call in calls:
            try:
                output = registry.execute(call.name, call.arguments)
            except Exception as exc:
                output = json.dumps({"error": str(exc)})
            outputs.append({"type": "function_call_output", "call_id": call.call_id,
                            "output": output})  # fmt: skip
        response = await api.responses.create(
            input=outputs, previous_response_id=response.id, **params
        )
        hint = None
    return {"job_id": job_id, "seen_at": time.time(),
            "status": "succeeded" if response.status == "completed" else "failed"}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    load_tool_modules(["examples.tools"])
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=2000)
    api = openai.AsyncOpenAI(
        api_key="sk-bench", base_url=args.base_url, max_retries=5, timeout=120,
        http_client=httpx.AsyncClient(limits=limits, timeout=120),
    )  # fmt: skip
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "2+2"}}]]
                        * args.tool_rounds) if args.tool_rounds else None  # fmt: skip
    tools = ["calculator"] if args.tool_rounds else []
    cpu0 = time.process_time()
    started = time.time()
    jobs = await asyncio.gather(*(
        one_job(api, f"noq-{i}", "What is 2+2?", tools, script, args.min_interval)
        for i in range(args.jobs)
    ), return_exceptions=True)  # fmt: skip
    finished = time.time()
    cpu_s = time.process_time() - cpu0
    ok = [j for j in jobs if isinstance(j, dict)]
    errors = [repr(j) for j in jobs if not isinstance(j, dict)]
    await api.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"started": started, "finished": finished, "cpu_s": cpu_s, "peak_rss_mb": peak_mb,
            "jobs": ok, "errors": errors[:20]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--tool-rounds", type=int, default=1)
    parser.add_argument("--min-interval", type=float, default=0.25)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
