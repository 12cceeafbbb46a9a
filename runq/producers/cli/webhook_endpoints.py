"""`runq webhooks register|list|rotate|test|remove`: the backend's webhook endpoints.

    runq webhooks register https://runq.example.com/v1/webhooks/openai
    runq webhooks list
    runq webhooks rotate whe_... --keep-old
    runq webhooks test whe_... [--event response.completed]
    runq webhooks remove whe_...

`register` and `rotate` get a signing secret that the backend shows only then: it goes
to a 0600 file (`--secret-file`, default `RUNQ_HOME/webhooks/signing_secret`) that the
receiver reads with `OPENAI_WEBHOOK_SECRET_FILE`, or to stdout with `--print-secret`
(for a secrets manager); never both, never a log line. `runq webhooks` with no action
still serves the receiver.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECRET_FILE = "signing_secret"  # under RUNQ_HOME/webhooks


def _at_backend(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """The backend's refusal or absence as one line naming it, not a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        import openai

        from runq.errors import RunqError

        try:
            return command(args)
        except openai.APIStatusError as err:
            message = err.body.get("message") if isinstance(err.body, dict) else None
            raise RunqError(
                f"the backend refused ({err.status_code}): {message or err.message}"
            ) from None
        except openai.APIConnectionError as err:
            raise RunqError(f"cannot reach the backend: {err}") from None

    return run


@_at_backend
def cmd_register(args: argparse.Namespace) -> int:
    from runq.producers.webhooks import endpoints

    client, settings = _backend()
    kinds = _event_types(args.events)
    endpoint = endpoints.register(client, args.url, name=args.name, event_types=kinds)
    print(f"registered {endpoint.id}: {endpoint.url} ({', '.join(endpoint.event_types)})")
    return _keep_secret(args, settings, endpoint.signing_secret)


@_at_backend
def cmd_rotate(args: argparse.Namespace) -> int:
    from runq.producers.webhooks import endpoints

    client, settings = _backend()
    endpoint = endpoints.rotate(client, args.endpoint_id, keep_old=args.keep_old)
    grace = "the old secret stays valid for 24 hours" if args.keep_old else "the old one stops now"
    print(f"rotated the secret of {endpoint.id}; {grace}")
    return _keep_secret(args, settings, endpoint.signing_secret)


@_at_backend
def cmd_list(args: argparse.Namespace) -> int:
    client, _ = _backend()
    found = list(client.webhooks.list())
    if args.json:
        print(json.dumps([item.model_dump(mode="json") for item in found], indent=2))
        return 0
    if not found:
        print("no webhook endpoints")
    for item in found:
        print(f"{item.id}  {item.url}  {item.name}  {', '.join(item.event_types)}")
    return 0


@_at_backend
def cmd_test(args: argparse.Namespace) -> int:
    client, _ = _backend()
    result = client.webhooks.test(args.endpoint_id, event_type=args.event)
    ok = 200 <= result.status_code < 300
    hint = "" if ok else " (the receiver refused it: is its secret this endpoint's?)"
    print(f"{result.event_type} to {result.webhook_endpoint_id}: HTTP {result.status_code}{hint}")
    return 0 if ok else 1


@_at_backend
def cmd_remove(args: argparse.Namespace) -> int:
    client, _ = _backend()
    client.webhooks.delete(args.endpoint_id)
    print(f"removed {args.endpoint_id}")
    return 0


def _backend() -> tuple[Any, Any]:
    from runq.config.settings import get_settings
    from runq.producers.webhooks.endpoints import backend_client

    settings = get_settings()
    return backend_client(settings), settings


def _event_types(wanted: str) -> tuple[str, ...]:
    """`response`, `batch` or exact types, comma separated, among those runq consumes."""
    from runq.errors import ConfigurationError
    from runq.producers.webhooks.endpoints import RUNQ_EVENT_TYPES

    chosen: list[str] = []
    for part in (p.strip() for p in wanted.split(",") if p.strip()):
        matches = [t for t in RUNQ_EVENT_TYPES if t == part or t.split(".")[0] == part]
        if not matches:
            raise ConfigurationError(
                f"--events: {part!r} is none of runq's events (response, batch, or one of "
                + ", ".join(RUNQ_EVENT_TYPES)
                + ")"
            )
        chosen += [t for t in matches if t not in chosen]
    if not chosen:
        raise ConfigurationError("--events: name at least one event (response, batch)")
    return tuple(chosen)


def _keep_secret(args: argparse.Namespace, settings: Any, secret: str) -> int:
    from runq.producers.webhooks.endpoints import write_secret

    if args.print_secret:
        print(secret)
        return 0
    path = Path(args.secret_file) if args.secret_file else settings.home / "webhooks" / SECRET_FILE
    write_secret(path, secret)
    print(f"signing secret written to {path} (mode 0600); the receiver reads it with "
          f"OPENAI_WEBHOOK_SECRET_FILE={path}", file=sys.stderr)  # fmt: skip
    return 0


def add_actions(parser: argparse.ArgumentParser) -> None:
    """The endpoint actions under `runq webhooks` (which serves when given none)."""
    from runq.producers.webhooks.endpoints import DEFAULT_NAME

    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    reg = actions.add_parser(
        "register",
        help="register a receiver URL at the backend",
        description="Register URL for runq's events at the backend (OPENAI_BASE_URL, or "
        "OpenAI) and keep its signing secret.",
    )
    reg.add_argument("url", help="where the backend posts, e.g. https://HOST/v1/webhooks/openai")
    reg.add_argument("--name", default=DEFAULT_NAME, help="the endpoint's name (default: runq)")
    reg.add_argument("--events", default="response,batch",
                     help="response, batch, or exact types, comma separated "
                     "(default: response,batch)")  # fmt: skip
    _secret_options(reg)
    reg.set_defaults(func=cmd_register)

    rot = actions.add_parser("rotate", help="give an endpoint a new signing secret")
    rot.add_argument("endpoint_id", help="the endpoint's id (whe_...; `runq webhooks list`)")
    rot.add_argument("--keep-old", action="store_true",
                     help="the backend signs with the old secret too for 24 hours, so "
                     "receivers not yet given the new one keep verifying")  # fmt: skip
    _secret_options(rot)
    rot.set_defaults(func=cmd_rotate)

    lst = actions.add_parser("list", help="the backend's webhook endpoints")
    lst.add_argument("--json", action="store_true", help="as JSON")
    lst.set_defaults(func=cmd_list)

    tst = actions.add_parser("test", help="have the backend send a signed sample delivery")
    tst.add_argument("endpoint_id", help="the endpoint's id")
    tst.add_argument("--event", default="response.completed",
                     help="the sample's event type (default: response.completed)")  # fmt: skip
    tst.set_defaults(func=cmd_test)

    rem = actions.add_parser("remove", help="delete an endpoint at the backend")
    rem.add_argument("endpoint_id", help="the endpoint's id")
    rem.set_defaults(func=cmd_remove)


def _secret_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--secret-file", metavar="PATH",
                       help="where to keep the signing secret, mode 0600 (default: "
                       "RUNQ_HOME/webhooks/signing_secret)")  # fmt: skip
    where.add_argument("--print-secret", action="store_true",
                       help="print the secret to stdout instead of writing a file")  # fmt: skip
