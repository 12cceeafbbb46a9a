"""Webhook endpoints API routes: register, read, change, rotate, test and remove endpoints.

The shapes are those of ``openai``'s ``client.webhooks`` (``create``, ``retrieve``,
``update``, ``list``, ``delete``, ``rotate_secret``, ``test`` and
``event_types.list``); the endpoints themselves live in
:mod:`runq.sandbox.engine.webhook_endpoints` and the sender delivers to them
(:mod:`runq.sandbox.engine.webhooks`). The signing secret is in the body of ``create``
and ``rotate_secret`` only; every other answer shows its hint.

``test`` sends one signed sample event (built by ``sample_data`` of
:mod:`runq.sandbox.engine.webhook_event_types`) at once, off the event loop, in a single
attempt that the delivery counters do not see, and answers the receiver's status; a
receiver that cannot be reached is a 400 saying why (connection refused, timed out...).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.crud import deleted, page
from runq.sandbox.api.http import get_state, ok, opt_bool, read_json
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.webhook_endpoints import url_problem
from runq.sandbox.engine.webhook_event_types import EVENT_TYPES, sample_data
from runq.sandbox.engine.webhook_http import UNREACHABLE, post_signed, why_unreachable
from runq.sandbox.engine.webhook_signing import event_body

ENDPOINT_PARAMS = ("url", "name", "event_types")
ID_PARAM = "webhook_endpoint_id"  # the path parameter of the routes on one endpoint


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise bad_request("Invalid type for 'url': expected a string.", "url", "invalid_type")
    problem = url_problem(value)
    if problem:
        raise bad_request(f"Invalid 'url': {problem}.", "url", "invalid_value")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise bad_request("Invalid type for 'name': expected a string.", "name", "invalid_type")
    if not value.strip():
        raise bad_request("Invalid 'name': expected a non-empty string.", "name", "empty_string")
    return value


def _event_type(value: Any, param: str) -> str:
    if value not in EVENT_TYPES:
        raise bad_request(
            f"Invalid '{param}': unknown event type {value!r}. "
            "GET /v1/webhook_event_types lists the supported types.",
            param,
            "invalid_value",
        )
    return str(value)


def _event_types(value: Any) -> list[str]:
    """A non-empty list of known types, repeats collapsed (first occurrence kept)."""
    if not isinstance(value, list):
        raise bad_request(
            "Invalid type for 'event_types': expected an array.", "event_types", "invalid_type"
        )
    if not value:
        raise bad_request(
            "Invalid 'event_types': expected at least one event type.",
            "event_types",
            "empty_array",
        )
    checked = [_event_type(v, f"event_types[{i}]") for i, v in enumerate(value)]
    return list(dict.fromkeys(checked))


def _required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise bad_request(f"Missing required parameter: '{name}'.", name)
    return body[name]


async def create_endpoint(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    validation.known_parameters(body, ENDPOINT_PARAMS)
    url = _url(_required(body, "url"))
    name = _name(_required(body, "name"))
    event_types = _event_types(_required(body, "event_types"))
    was_enabled = state.webhooks.enabled
    endpoint = state.webhook_endpoints.create(url, name, event_types)
    if not was_enabled:  # responses created while nobody listened are announced too
        state.webhooks.watch_in_flight(state.store.responses.values())
    return ok(endpoint.with_secret())


async def retrieve_endpoint(request: Request) -> Response:
    endpoint = get_state(request).webhook_endpoints.find(request.path_params[ID_PARAM])
    return ok(endpoint.to_json())


async def update_endpoint(request: Request) -> Response:
    state = get_state(request)
    endpoint_id = request.path_params[ID_PARAM]
    state.webhook_endpoints.find(endpoint_id)  # an unknown id is a 404 before a bad body
    body = await read_json(request)
    validation.known_parameters(body, ENDPOINT_PARAMS)
    given = {k: v for k, v in body.items() if v is not None}
    endpoint = state.webhook_endpoints.update(
        endpoint_id,
        url=_url(given["url"]) if "url" in given else None,
        name=_name(given["name"]) if "name" in given else None,
        event_types=_event_types(given["event_types"]) if "event_types" in given else None,
    )
    return ok(endpoint.to_json())


async def list_endpoints(request: Request) -> Response:
    """Newest first, ``after`` and ``limit`` as every cursor page."""
    endpoints = get_state(request).webhook_endpoints.in_order()
    return ok(page([e.to_json() for e in endpoints], request))


async def delete_endpoint(request: Request) -> Response:
    endpoint_id = request.path_params[ID_PARAM]
    get_state(request).webhook_endpoints.delete(endpoint_id)
    return ok(deleted(endpoint_id, "webhook_endpoint.deleted"))


async def rotate_secret(request: Request) -> Response:
    state = get_state(request)
    endpoint_id = request.path_params[ID_PARAM]
    state.webhook_endpoints.find(endpoint_id)
    body = await read_json(request)
    keep_param = "keep_old_secret_active_for_24_hours"
    validation.known_parameters(body, (keep_param,))
    keep_old = opt_bool(body, keep_param, False)
    return ok(state.webhook_endpoints.rotate(endpoint_id, keep_old).with_secret())


async def send_test_event(request: Request) -> Response:
    """One sample delivery now; its HTTP status, or a 400 if nothing answered."""
    registry = get_state(request).webhook_endpoints
    endpoint_id = request.path_params[ID_PARAM]
    registry.find(endpoint_id)
    body = await read_json(request)
    validation.known_parameters(body, ("event_type",))
    event_type = _event_type(_required(body, "event_type"), "event_type")
    endpoint = registry.find(endpoint_id)  # as it is now, after reading the body
    keys = endpoint.keys(registry.clock())
    payload = event_body(event_type, sample_data(event_type), int(time.time()))
    try:
        status = await asyncio.to_thread(post_signed, endpoint.url, keys, new_id("wh"), payload)
    except UNREACHABLE as exc:
        raise bad_request(
            f"The test event could not be delivered to webhook endpoint '{endpoint_id}': "
            f"{why_unreachable(exc)}.",
            code="webhook_endpoint_unreachable",
        ) from None
    return ok(
        {
            "object": "webhook_endpoint.test",
            "webhook_endpoint_id": endpoint_id,
            "event_type": event_type,
            "status_code": status,
            "success": True,
        }
    )


async def list_event_types(request: Request) -> Response:
    return ok({"object": "list", "data": list(EVENT_TYPES)})


ENDPOINT_PATH = "/v1/webhook_endpoints/{webhook_endpoint_id}"
routes = [
    Route("/v1/webhook_endpoints", create_endpoint, methods=["POST"]),
    Route("/v1/webhook_endpoints", list_endpoints, methods=["GET"]),
    Route(ENDPOINT_PATH, retrieve_endpoint, methods=["GET"]),
    Route(ENDPOINT_PATH, update_endpoint, methods=["POST"]),
    Route(ENDPOINT_PATH, delete_endpoint, methods=["DELETE"]),
    Route(ENDPOINT_PATH + "/rotate_secret", rotate_secret, methods=["POST"]),
    Route(ENDPOINT_PATH + "/test", send_test_event, methods=["POST"]),
    Route("/v1/webhook_event_types", list_event_types, methods=["GET"]),
]
