"""`runq conversations import|export`: move conversations into and out of runq.

    runq conversations import --thread thread_abc        # from the configured server
    runq conversations import --thread thread_abc --link assistants:gpt-4o
    runq conversations import --jsonl chat.jsonl [--id my-chat]
    runq conversations export rqc_... [-o chat.jsonl]

An import prints the new conversation's id; `runq submit --conversation ID` continues
it on any backend. A thread is read from the Assistants-speaking server of runq's own
settings (OPENAI_BASE_URL and OPENAI_API_KEY, or a configured chain's assistants link
named by `--link`): the command chooses a thread, never a host or a key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_import(args: argparse.Namespace) -> int:
    from runq.producers.cli.jobs import _client

    transcript = None
    if args.jsonl is not None:
        try:
            transcript = Path(args.jsonl).read_text(encoding="utf-8")
        except OSError as err:
            print(f"runq: cannot read {args.jsonl}: {err.strerror}", file=sys.stderr)
            return 2
    client = _client("write the conversation to")
    conversation = client.import_conversation(
        thread_id=args.thread, transcript=transcript, conversation=args.id,
        tenant=args.tenant, link=args.link,
    )  # fmt: skip
    print(conversation)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from runq.producers.cli.jobs import _client

    text = _client("read the conversation from").export_conversation(args.id, args.tenant)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("conversations", help="import or export a conversation (history)",
                       description="Move conversations into runq (from an Assistants thread "
                       "or a JSONL transcript) and out of it (JSONL).")  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="a thread or a JSONL transcript -> a conversation")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--thread", metavar="THREAD_ID",
                        help="an Assistants thread on the configured server")  # fmt: skip
    source.add_argument("--jsonl", metavar="FILE",
                        help="a transcript: one JSON turn a line (role, text, ...)")  # fmt: skip
    imp.add_argument("--link", metavar="NAME",
                     help="with --thread: the configured assistants link to read it from, "
                     "e.g. assistants:gpt-4o (default: OPENAI_BASE_URL)")  # fmt: skip
    imp.add_argument("--id", metavar="ID", help="the conversation's id (default: a new one)")
    imp.add_argument("--tenant", metavar="NAME", help="the tenant it belongs to (default: none)")
    imp.set_defaults(func=cmd_import)
    exp = actions.add_parser("export", help="a conversation -> a JSONL transcript")
    exp.add_argument("id", help="the conversation's id (a job's result names it)")
    exp.add_argument("--tenant", metavar="NAME", help="the tenant it belongs to (default: none)")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    exp.set_defaults(func=cmd_export)
