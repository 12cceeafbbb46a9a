"""The file_search tool, as Responses and Assistants declare it, turned into a search.

A tool definition carries the stores to search and how: ``vector_store_ids``,
``max_num_results`` (1-50), ``filters`` (:mod:`.filters`) and ``ranking_options``
(:class:`.retrieval.Ranking`; Assistants put the last two under ``file_search``).
:func:`tool_searcher` validates all of it the way the API does (a 400 naming the
parameter) and returns the one-argument searcher the model calls with the question
(:data:`runq.sandbox.engine.model.Searcher`), so the route modules only have to
hand the tool over. :func:`attach_results` fills ``file_search_call.results`` when
the request's ``include`` asks for them; they stay ``null`` otherwise, as at the API.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from runq.sandbox.engine.errors import bad_request, not_found
from runq.sandbox.engine.filters import validate
from runq.sandbox.engine.retrieval import Ranking, result_items
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.vector_store_objects import search_stores

INCLUDE_RESULTS = "file_search_call.results"
DEFAULT_MAX_RESULTS = 20


def max_results(value: Any, param: str, default: int = DEFAULT_MAX_RESULTS) -> int:
    """``max_num_results``: 1 to 50, or the API's 400."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 50:
        raise bad_request(f"Invalid '{param}': expected an integer from 1 to 50.", param)
    return value


def tool_searcher(
    state: SandboxState,
    tool: dict[str, Any],
    param: str,
    vector_store_ids: list[str] | None = None,
) -> Callable[[str], list[dict[str, Any]]]:
    """The searcher of one file_search tool definition (``param`` names it in errors).

    Responses give ``vector_store_ids`` in the tool; Assistants give them in
    ``tool_resources`` (pass them as ``vector_store_ids``) and nest the options under
    ``file_search``.
    """
    nested = tool.get("file_search")
    options: dict[str, Any] = nested if isinstance(nested, dict) else tool
    prefix = f"{param}.file_search" if options is not tool else param
    if vector_store_ids is None:
        vector_store_ids = tool.get("vector_store_ids") or []
        if not isinstance(vector_store_ids, list):
            raise bad_request(
                f"Invalid '{param}.vector_store_ids': expected an array.",
                f"{param}.vector_store_ids",
            )
        for vs_id in vector_store_ids:
            if vs_id not in state.store.vector_stores:
                raise not_found("vector store", str(vs_id), f"{param}.vector_store_ids")
    limit = max_results(options.get("max_num_results"), f"{prefix}.max_num_results")
    filters = validate(options.get("filters"), f"{prefix}.filters")
    ranking = Ranking.parse(options.get("ranking_options"), f"{prefix}.ranking_options")
    return functools.partial(
        search_stores, state, list(vector_store_ids), limit=limit, filters=filters, ranking=ranking
    )


def wants_results(include: Any) -> bool:
    """Does a request's ``include`` ask for ``file_search_call.results``?"""
    return isinstance(include, list) and INCLUDE_RESULTS in include


def attach_results(
    items: list[dict[str, Any]], hits: list[dict[str, Any]], include: Any
) -> list[dict[str, Any]]:
    """Fill the ``file_search_call`` item's ``results`` when ``include`` asks for them."""
    if wants_results(include):
        for item in items:
            if item.get("type") == "file_search_call":
                item["results"] = result_items(hits)
    return items
