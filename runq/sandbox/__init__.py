"""The sandbox: an offline, OpenAI-compatible server (``runq sandbox``).

A standalone server: nothing here imports any other part of runq, so it runs (and is
tested) on its own. Three layers, each importing only the ones after it:

* :mod:`runq.sandbox.server` starts it: the app assembly, uvicorn, the CLI;
* :mod:`runq.sandbox.api` speaks HTTP: one route module per API family;
* :mod:`runq.sandbox.engine` simulates the backend, with no HTTP in it.

``runq.sandbox.cli`` and ``python -m runq.sandbox`` are the stable entry points.
"""
