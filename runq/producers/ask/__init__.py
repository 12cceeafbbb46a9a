"""Batch document Q&A: `runq ask DOCS... --questions FILE --out results.jsonl`.

- `batch`: one `runq ask` from start to end (plan, prepare, submit, wait);
- `corpus`: find the documents, upload each content once, build one vector store;
- `output`: the results as rows, files (jsonl, csv, md) and the printed table;
- `command`: the `runq ask` subcommand.

Nothing is imported here: the `runq` command registers `ask` on every start, and only
`runq ask` itself needs the modules above.
"""
