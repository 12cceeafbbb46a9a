"""The HTTP gateway: `runq gateway` serves runq to any language over HTTP.

`create_app(tokens)` builds the FastAPI application (see `gateway.app`);
`run_gateway(...)` serves it with uvicorn (`gateway.server`).
"""

from runq.producers.gateway.app import create_app
from runq.producers.gateway.auth import parse_tokens

__all__ = ["create_app", "parse_tokens"]
