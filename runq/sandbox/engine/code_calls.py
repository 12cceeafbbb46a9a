"""What the code interpreter did in one model step, rendered for Responses and Assistants.

A :class:`CodeTurn` holds the executions (:class:`CodeCall`, each with the container
files it produced) and the answer text, where each produced file is linked as
``[name](sandbox:/mnt/data/name)``, the way the real model cites generated files:

- Responses: one ``code_interpreter_call`` item per execution (``code``,
  ``container_id``, ``status``, and ``outputs`` - logs, and each PNG as an image
  ``url`` (a ``data:`` URL) - only when ``include`` lists
  ``code_interpreter_call.outputs``, ``null`` otherwise, as at the API), then the
  message, whose ``output_text`` carries a ``container_file_citation`` per link;
- Assistants: a ``tool_calls`` run step with ``code_interpreter`` calls (``input``,
  ``outputs`` logs and ``image.file_id``), and a message whose content starts with an
  ``image_file`` part per image and whose text has a ``file_path`` annotation per
  link; the files are copied to the Files API (``purpose: "assistants_output"``).
"""

from __future__ import annotations

import base64
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.code_runner import Execution
from runq.sandbox.engine.containers import ContainerFile, ContainerRecord
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.model import Reply, Segment
from runq.sandbox.engine.state import SandboxState

INCLUDE_OUTPUTS = "code_interpreter_call.outputs"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class CodeCall:
    id: str
    code: str
    container: ContainerRecord
    execution: Execution
    files: list[ContainerFile]  # produced by this execution
    images: dict[str, bytes] = field(default_factory=dict)  # container file id -> PNG bytes

    @property
    def logs(self) -> str:
        """What the tool shows: the output, and why the runner stopped the code."""
        logs, error = self.execution.logs, self.execution.error
        if error is not None and error not in logs:
            logs = (logs.rstrip("\n") + "\n" if logs.strip() else "") + error
        return logs


@dataclass
class Link:
    start: int
    end: int
    file: ContainerFile


@dataclass
class CodeTurn:
    calls: list[CodeCall]
    text: str
    links: list[Link] = field(default_factory=list)

    @classmethod
    def build(cls, calls: list[CodeCall], answer: str) -> CodeTurn:
        """The answer, followed by a link to every file the calls produced."""
        text, links = answer, []
        files = [f for call in calls for f in call.files]
        if files:
            text += "\n\nFiles:"
            for cfile in files:
                text += " "
                start = len(text)
                text += f"[{cfile.name}](sandbox:{cfile.path})"
                links.append(Link(start, len(text), cfile))
        return cls(calls, text, links)

    def reply(self) -> Reply:
        return Reply(segments=[Segment(self.text)])

    # -- Responses ---------------------------------------------------------------------
    def response_items(self, include: Any) -> list[dict[str, Any]]:
        wanted = isinstance(include, list) and INCLUDE_OUTPUTS in include
        items = []
        for call in self.calls:
            outputs: list[dict[str, Any]] | None = None
            if wanted:
                outputs = [{"type": "logs", "logs": call.logs}] if call.logs else []
                for data in call.images.values():
                    url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                    outputs.append({"type": "image", "url": url})
            items.append(
                {
                    "type": "code_interpreter_call",
                    "id": call.id,
                    "status": "completed" if call.execution.ok else "failed",
                    "container_id": call.container.id,
                    "code": call.code,
                    "outputs": outputs,
                }
            )
        return items

    def citations(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "container_file_citation",
                "container_id": link.file.container_id,
                "file_id": link.file.id,
                "filename": posixpath.basename(link.file.name),
                "start_index": link.start,
                "end_index": link.end,
            }
            for link in self.links
        ]

    def attach(self, items: list[dict[str, Any]], include: Any) -> None:
        """Put the calls before the answer in a response's ``items``, and cite the files."""
        for item in items:
            if item.get("type") == "message":
                for part in item["content"]:
                    if part.get("type") == "output_text":  # a cut answer cites what it kept
                        kept = len(part["text"])
                        cited = [c for c in self.citations() if c["end_index"] <= kept]
                        part["annotations"] = cited
        at = next((i for i, item in enumerate(items) if item.get("type") == "message"), 0)
        items[at:at] = self.response_items(include)

    # -- Assistants --------------------------------------------------------------------
    def assistants_tool_calls(self, file_ids: dict[str, str]) -> list[dict[str, Any]]:
        """The run step's ``code_interpreter`` calls (``file_ids``: container file id ->
        Files API id)."""
        calls = []
        for call in self.calls:
            outputs: list[dict[str, Any]] = []
            if call.logs:
                outputs.append({"type": "logs", "logs": call.logs})
            for cfile_id in call.images:
                outputs.append({"type": "image", "image": {"file_id": file_ids[cfile_id]}})
            calls.append(
                {
                    "id": call.id,
                    "type": "code_interpreter",
                    "code_interpreter": {"input": call.code, "outputs": outputs},
                }
            )
        return calls

    def assistants_content(self, file_ids: dict[str, str]) -> list[dict[str, Any]]:
        """The message content: an ``image_file`` per image, then the text with a
        ``file_path`` annotation on each ``sandbox:`` link."""
        parts: list[dict[str, Any]] = [
            {"type": "image_file", "image_file": {"file_id": file_ids[cfile_id]}}
            for call in self.calls
            for cfile_id in call.images
        ]
        annotations = []
        for link in self.links:
            target = f"sandbox:{link.file.path}"
            start = self.text.index(target, link.start)
            annotations.append(
                {
                    "type": "file_path",
                    "text": target,
                    "start_index": start,
                    "end_index": start + len(target),
                    "file_path": {"file_id": file_ids[link.file.id]},
                }
            )
        parts.append({"type": "text", "text": {"value": self.text, "annotations": annotations}})
        return parts


def publish_files(state: SandboxState, turn: CodeTurn) -> dict[str, str]:
    """Copy the files a run's code produced to the Files API; container file id -> file id."""
    ids: dict[str, str] = {}
    for call in turn.calls:
        for cfile in call.files:
            data = state.containers.read(call.container, cfile)
            upload = FileRecord(
                new_id("file"), cfile.name, "assistants_output", int(time.time()), data
            )
            state.store.files[upload.id] = upload
            ids[cfile.id] = upload.id
    return ids
