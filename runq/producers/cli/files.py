"""`runq files JOB_ID [--out DIR]`: the files a job's run produced.

Without `--out` it lists them (name, bytes, type, sha256, where they are kept); with
`--out DIR` it writes each into DIR and prints the paths. The bytes are read from the
storage the workers used (Redis, or `RUNQ_FILES_DIR`, which this process must see too)
and checked against their hash. A file over the caps was not kept: it is listed with
the reason, and not written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _size(entry: dict[str, Any]) -> str:
    size = entry.get("bytes")
    return "?" if size is None else f"{size}"


def cmd_files(args: argparse.Namespace) -> int:
    from runq.producers.cli.jobs import _client, _record
    from runq.runs.files.produced import FileGoneError, load

    client = _client("read from")
    job = _record(client, args.job_id)
    if not job.terminal:
        print(f"job {job.id} is {job.status}; its files are kept when it ends "
              f"(wait with: runq result {job.id} --wait)", file=sys.stderr)  # fmt: skip
        return 1
    entries = job.files
    if args.json and not args.out:
        print(json.dumps(entries, indent=2, sort_keys=True))
        return 0
    if not entries:
        print(f"job {job.id} produced no files", file=sys.stderr)
        return 0
    if not args.out:
        for entry in entries:
            if entry.get("stored"):
                print(f"{entry['name']}  {_size(entry)} bytes  {entry['content_type']}  "
                      f"sha256:{entry['sha256']}  [{entry['storage']}]")  # fmt: skip
            else:
                print(f"{entry.get('name')}  {_size(entry)} bytes  not kept: {entry.get('reason')}")
        return 0
    try:
        found = load(job.id, entries, redis=client.redis, settings=client.settings)
    except FileGoneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    written = [str(f.save(out)) for f in found]
    if args.json:
        print(json.dumps(written))
    else:
        print("\n".join(written))
    for entry in entries:
        if not entry.get("stored"):
            print(f"not written: {entry.get('name')} ({entry.get('reason')})", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "files",
        help="list or write the files a job's run produced",
        description="List the files a job's run produced (code interpreter charts, "
        "generated data); with --out, write them into a directory.",
    )
    p.add_argument("job_id", help="the id `runq submit` printed")
    p.add_argument("--out", metavar="DIR", help="write the files into DIR (made if missing)")
    p.add_argument("--json", action="store_true",
                   help="the files' entries as JSON (with --out: the written paths)")  # fmt: skip
    p.set_defaults(func=cmd_files)


def summary(result: dict[str, Any]) -> list[str]:
    """The lines `runq result` prints about a job's files (none when it made none)."""
    entries = result.get("files") or []
    lines = []
    for entry in entries:
        kept = (f"{_size(entry)} bytes, {entry.get('content_type')}" if entry.get("stored")
                else f"not kept: {entry.get('reason')}")  # fmt: skip
        lines.append(f"file: {entry.get('name')} ({kept})")
    if any(entry.get("stored") for entry in entries):
        lines.append(f"write them with: runq files {result['job_id']} --out DIR")
    return lines
