"""Serving the sandbox: the Starlette app assembly, the uvicorn server and the CLI.

``app`` wires the API's routes, middleware and error handlers around a fresh engine
state (and its snapshot file); ``serve`` runs that app with uvicorn in the foreground or
in a thread; ``cli`` is ``runq sandbox``; ``extras`` checks the optional dependencies
before any of them is imported.

May import :mod:`runq.sandbox.api` and :mod:`runq.sandbox.engine`. Nothing is imported
here, so that ``runq.sandbox.server.cli`` loads without Starlette or uvicorn.
"""
