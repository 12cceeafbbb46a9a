"""The simulated backend: everything the sandbox does that is not HTTP.

Holds the deterministic model (``model``, ``tool_policy``, ``retrieval``, ``documents``,
``tokens``, ``transcript``), the objects it creates and how they render and stream
(``*_objects``, ``*_events``, ``run_planner``, ``lifecycle``, ``ids``), and the server's
state (``config``, ``state``, ``store``, ``snapshot``, ``stats``, ``faults``,
``ratelimit``). Errors are OpenAI-shaped data (``errors``), not responses.

Imports nothing outside this package but the standard library and the document parsers
(``pypdf``, ``python-docx``, ``tiktoken``, all imported lazily): no Starlette, so the
model and its objects can be used and tested without a web framework.
"""
