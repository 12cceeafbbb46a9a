"""Bearer tokens of the gateway: `RUNQ_GATEWAY_TOKENS=token:tenant,token2:tenant2`.

Every token belongs to one tenant; a job belongs to the tenant whose token submitted it
(`JobSpec.tenant`), and another tenant asking about it gets 404, as if it did not exist.
"""

from __future__ import annotations

import hmac
import os

from runq.errors import ConfigurationError
from runq.runs.job import TENANT, TENANT_RULE

ENV_VAR = "RUNQ_GATEWAY_TOKENS"
DEMO_TOKEN = "demo"
DEMO_TENANT = "demo"


def parse_tokens(value: str | None) -> dict[str, str]:
    """`token:tenant,token2:tenant2` -> {token: tenant}; a malformed entry is an error."""
    tokens: dict[str, str] = {}
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        token, sep, tenant = entry.partition(":")
        token, tenant = token.strip(), tenant.strip()
        if not sep or not token or not tenant:
            raise ConfigurationError(
                f"{ENV_VAR}: each entry must be token:tenant (got an entry without ':' or "
                "with an empty side)"
            )
        if not TENANT.fullmatch(tenant):
            # Refused here, at start, not as a 422 on that tenant's first job.
            raise ConfigurationError(f"{ENV_VAR}: tenant {tenant!r} must be {TENANT_RULE}")
        if token in tokens and tokens[token] != tenant:
            raise ConfigurationError(f"{ENV_VAR}: a token is listed for two tenants")
        tokens[token] = tenant
    return tokens


def tokens_from_env() -> dict[str, str]:
    return parse_tokens(os.environ.get(ENV_VAR))


def tenant_for(tokens: dict[str, str], presented: str | None) -> str | None:
    """The tenant of a presented token (constant-time comparison), or None."""
    if not presented:
        return None
    found = None
    for token, tenant in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = tenant
    return found
