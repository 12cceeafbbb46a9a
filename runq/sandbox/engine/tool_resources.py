"""Vector stores that Assistants create for you: ``vector_stores`` helpers and attachments.

Two Assistants features make a store out of file ids instead of naming one:

- ``tool_resources.file_search.vector_stores: [{file_ids, chunking_strategy,
  metadata}]`` on an assistant or a thread creates one store per helper; the object
  then shows only ``tool_resources.file_search.vector_store_ids`` (the new ids after
  any given ones), as the API does (:func:`create_stores`);
- a message's ``attachments: [{file_id, tools: [{type: "file_search"}]}]`` adds the
  file to the thread's store, creating it on first use and recording it in the
  thread's ``tool_resources`` (:func:`attach_files`).

Both live here, beside the stores, so the Assistants routes only call them.
"""

from __future__ import annotations

from typing import Any

from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.vector_store_objects import add_file, chunking_params, new_store

ATTACHMENT_TOOLS = ("file_search", "code_interpreter")


def create_stores(state: SandboxState, tool_resources: Any, param: str = "tool_resources") -> Any:
    """``tool_resources`` with each ``file_search.vector_stores`` helper made a store.

    Anything without helpers comes back unchanged; a malformed helper is a 400.
    """
    if not isinstance(tool_resources, dict):
        return tool_resources
    search = tool_resources.get("file_search")
    if not isinstance(search, dict) or "vector_stores" not in search:
        return tool_resources
    where = f"{param}.file_search.vector_stores"
    helpers = search.get("vector_stores") or []
    if not isinstance(helpers, list) or not all(isinstance(h, dict) for h in helpers):
        raise bad_request(f"Invalid '{where}': expected an array of objects.", where)
    ids = list(search.get("vector_store_ids") or [])
    for i, helper in enumerate(helpers):
        file_ids = helper.get("file_ids") or []
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise bad_request(
                f"Invalid '{where}[{i}].file_ids': expected an array of file ids.",
                f"{where}[{i}].file_ids",
            )
        for file_id in file_ids:  # every id known before any store is made
            state.store.find("files", file_id, f"{where}[{i}].file_ids")
        chunking = chunking_params(
            helper.get("chunking_strategy"), f"{where}[{i}].chunking_strategy"
        )
        store = new_store(state, metadata=helper.get("metadata"))
        for file_id in file_ids:
            add_file(state, store, file_id, chunking=chunking, param=f"{where}[{i}].file_ids")
        ids.append(store.id)
    return {**tool_resources, "file_search": {"vector_store_ids": ids}}


def attach_files(state: SandboxState, thread: Any, attachments: Any) -> list[dict[str, Any]]:
    """Put a message's file_search attachments in the thread's store; the attachments.

    ``thread`` is a :class:`~runq.sandbox.engine.thread_objects.ThreadRecord`; its
    ``tool_resources`` gain the store when one is created. The return value is the
    message's ``attachments`` as the API shows them.
    """
    if attachments is None:
        return []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise bad_request("Invalid 'attachments': expected an array of objects.", "attachments")
    wanted: list[str] = []
    for i, attachment in enumerate(attachments):
        file_id, tools = attachment.get("file_id"), attachment.get("tools") or []
        if not isinstance(file_id, str):
            raise bad_request(
                f"Missing required parameter: 'attachments[{i}].file_id'.",
                f"attachments[{i}].file_id",
            )
        state.store.find("files", file_id, f"attachments[{i}].file_id")
        kinds = [t.get("type") for t in tools if isinstance(t, dict)]
        if len(kinds) != len(tools) or any(k not in ATTACHMENT_TOOLS for k in kinds):
            raise bad_request(
                f"Invalid 'attachments[{i}].tools': expected tools of type "
                f"{' or '.join(ATTACHMENT_TOOLS)}.",
                f"attachments[{i}].tools",
            )
        if "file_search" in kinds:
            wanted.append(file_id)
    if wanted:
        resources = dict(thread.tool_resources or {})
        ids = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
        store = state.store.vector_stores.get(ids[0]) if ids else None
        if store is None:
            store = new_store(state, name=f"vector store for {thread.id}")
            ids = [store.id, *ids[1:]] if ids else [store.id]
        for file_id in wanted:
            add_file(state, store, file_id)
        resources["file_search"] = {"vector_store_ids": ids}
        thread.tool_resources = resources
    return [{"file_id": a["file_id"], "tools": a.get("tools") or []} for a in attachments]
