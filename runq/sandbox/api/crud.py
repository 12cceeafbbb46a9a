"""The handler shapes every API family repeats: by id or 404, a page, a delete.

Files, conversations, assistants, threads, vector stores and responses are each a store
table addressed by one path parameter, and their retrieve, list and delete handlers
were written out once per family, with the same 404, the same cursor page and the same
``{"id", "object": "<kind>.deleted", "deleted": true}`` body. :class:`Collection` is
that shape once; the route modules keep only what differs (creation, filters, nested
objects).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from runq.sandbox.api.http import get_state, ok
from runq.sandbox.engine.errors import bad_request, not_found

T = TypeVar("T")


def _as_is(rec: Any) -> Any:
    return rec


@dataclass(frozen=True)
class Collection(Generic[T]):
    """One store table served by id: its lookup and its retrieve/list/delete handlers.

    ``kind`` names the table (``Store.KINDS``), ``id_param`` the path parameter holding
    the id, ``deleted_object`` the ``object`` of the delete body (``"file"``,
    ``"thread.deleted"``...), and ``render`` turns a record into its JSON object.
    """

    kind: str
    id_param: str
    deleted_object: str
    render: Callable[[T], Any] = _as_is

    def table(self, request: Request) -> dict[str, T]:
        return get_state(request).store.table(self.kind)

    def get(self, request: Request) -> T:
        """The record named by the request's path, or the real API's 404."""
        rec: T = get_state(request).store.find(self.kind, request.path_params[self.id_param])
        return rec

    async def retrieve(self, request: Request) -> Response:
        return ok(self.render(self.get(request)))

    async def list(self, request: Request) -> Response:
        """Every record, newest first by default, as a cursor page."""
        return ok(page([self.render(rec) for rec in self.table(request).values()], request))

    async def delete(self, request: Request) -> Response:
        object_id = request.path_params[self.id_param]
        self.get(request)
        del self.table(request)[object_id]
        return ok(deleted(object_id, self.deleted_object))


def find_in(table: Mapping[str, T], object_id: str, noun: str) -> T:
    """An object nested in another (a vector store's file, a batch), or a 404 naming it."""
    rec = table.get(object_id)
    if rec is None:
        raise not_found(noun, object_id)
    return rec


def deleted(object_id: str, object_type: str) -> dict[str, Any]:
    """The body of a successful delete."""
    return {"id": object_id, "object": object_type, "deleted": True}


def page(
    items: list[dict[str, Any]], request: Request, *, default_order: str = "desc"
) -> dict[str, Any]:
    """A cursor page (``limit``, ``order``, ``after``, ``before``) in OpenAI's list shape.

    ``items`` must be in creation order (oldest first).
    """
    q = request.query_params
    order = q.get("order", default_order)
    if order not in ("asc", "desc"):
        raise bad_request("Invalid 'order': expected 'asc' or 'desc'.", "order")
    try:
        limit = int(q.get("limit", "20"))
    except ValueError as exc:
        raise bad_request("Invalid 'limit': expected an integer.", "limit") from exc
    if not 1 <= limit <= 100:
        raise bad_request("Invalid 'limit': expected 1 to 100.", "limit")
    seq = list(items) if order == "asc" else list(reversed(items))
    ids = [item["id"] for item in seq]
    after, before = q.get("after"), q.get("before")
    if after:
        seq = seq[ids.index(after) + 1 :] if after in ids else []
    if before:
        ids = [item["id"] for item in seq]
        seq = seq[: ids.index(before)] if before in ids else seq
    chunk = seq[:limit]
    return {
        "object": "list",
        "data": chunk,
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
        "has_more": len(seq) > limit,
    }
