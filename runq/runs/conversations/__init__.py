"""runq's own conversation records: history that survives fallbacks and backend changes.

`ids` (conversation ids, and which conversation a job takes turns on), `record` (the
record and its store), `truncation` (which turns a replay carries),
`replay` (turns rendered per protocol), `history` (what a step does with them),
`migration` (import from an Assistants thread or a JSONL transcript, export).
"""
