"""The sandbox's HTTP API: one route module per API family and the helpers they share.

Holds the Starlette routes (``responses``, ``conversations``, ``chat``, ``assistants``
and ``runs``, ``files``, ``vector_stores``, ``models``, ``admin``), the gateway
middleware in front of them (auth, transport faults, rate limits, accounting) and what
the routes share: request parsing (``http``), the repeated retrieve/list/delete
handlers and cursor pages (``crud``), server-sent events (``sse``) and errors as
responses (``errors``).

May import :mod:`runq.sandbox.engine` and Starlette; never :mod:`runq.sandbox.server`.
"""
