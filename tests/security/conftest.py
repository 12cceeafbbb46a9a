"""Security tests: the core on fakeredis (the unit fixtures), and real workers on a real
Redis with the sandbox over HTTP (the integration fixtures), as each test needs.

The fixtures are defined once, in tests/unit and tests/integration; importing them here
makes them visible to this folder's tests.
"""

from __future__ import annotations

from tests.integration.conftest import sandbox  # noqa: F401
from tests.unit.conftest import backend, fake_redis, scheduler, store  # noqa: F401
