"""Backend adapters behind one interface (`Backend`), chosen per job."""

from __future__ import annotations

from typing import Any

from runq.errors import ConfigurationError
from runq.runs import hosted_tools, model_settings
from runq.runs.backends.assistants import AssistantsBackend
from runq.runs.backends.base import Backend, RunState, ToolCallRequest
from runq.runs.backends.chat import ChatBackend
from runq.runs.backends.client import get_client
from runq.runs.backends.responses import ResponsesBackend
from runq.runs.chains import Link
from runq.runs.files.inputs import InputFiles
from runq.runs.job import Job
from runq.runs.tools import ToolRegistry

__all__ = ["Backend", "BackendFactory", "RunState", "ToolCallRequest"]


class BackendFactory:
    """Builds the adapter for a job's link from the worker's endpoint settings and tools.

    The link comes from the worker's own configuration (`LinkServices.chain`), never
    from the job record: its `base_url` and `api_key_env` are the operator's, and a
    link without them uses the worker's `OPENAI_BASE_URL` and key.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        timeout: float,
        registry: ToolRegistry,
        inputs: InputFiles | None = None,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.registry = registry
        self.inputs = inputs  # where producers staged the jobs' input files

    def __call__(self, job: Job, link: Link) -> Backend:
        base_url = link.base_url or self.base_url
        api_key = link.api_key(self.api_key)
        client = get_client(base_url, api_key, self.timeout)
        name = link.backend
        adapter = ADAPTERS.get(name)
        if adapter is None:
            raise ConfigurationError(f"backend {name!r} is not available in this worker")
        # A link's backend may lack a setting the job asks for (a chain's fallback on
        # another protocol): it is unusable for this job, and skipped with the reason.
        values = model_settings.effective(job.spec, link.settings)
        for setting, why in model_settings.unsupported(name, values):
            raise ConfigurationError(f"link {link.name} cannot carry {setting}: {why}")
        for tool, why in hosted_tools.unsupported(name, job.spec.hosted_tools):
            raise ConfigurationError(f"link {link.name} cannot run the hosted tool {tool}: {why}")
        tools = self.registry.openai_tools(job.spec.tools, name) if job.spec.tools else []
        options: dict[str, Any] = {"settings": link.settings}
        if name != "chat":  # Chat runs no hosted tools, so takes no input files for them
            options["inputs"] = self.inputs
        return adapter(client, tools, **options)


ADAPTERS: dict[str, type[ResponsesBackend] | type[AssistantsBackend] | type[ChatBackend]] = {
    "responses": ResponsesBackend,
    "assistants": AssistantsBackend,
    "chat": ChatBackend,
}
