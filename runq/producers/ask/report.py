"""What one `runq ask` did, and the error that stops it on Ctrl-C.

`AskReport` carries the questions, their job ids, the results collected so far and the
counters the command prints last (`runq ask: documents=6 ... reused_results=10`): the
counters say what a re-run reused, which is how a user (and the tests) see that a second
run uploaded nothing and asked nothing of the backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runq.errors import RunqError
from runq.producers.ask.corpus import Corpus


class AskInterrupted(RunqError):
    """Ctrl-C while waiting: the jobs keep running; the same command collects them."""

    def __init__(self, report: AskReport) -> None:
        super().__init__("interrupted")
        self.report = report


@dataclass
class AskReport:
    """What one `runq ask` did; the counters say what a re-run reused."""

    corpus: Corpus
    questions: list[str]  # with `per_file`, the one prompt asked of every document
    per_file: bool = False  # one job per document (`--per-file`), not per question
    fields: tuple[str, ...] = ()  # the output schema's top-level fields (`--schema`)
    job_ids: list[str] = field(default_factory=list)
    submitted: int = 0
    reused_results: int = 0
    in_flight: int = 0  # found running from an earlier invocation
    retried: int = 0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> result
    ingestion_failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return sum(r["status"] == "succeeded" for r in self.results.values())

    @property
    def failed(self) -> int:
        return sum(r["status"] != "succeeded" for r in self.results.values())

    @property
    def pending(self) -> int:
        return len(self.job_ids) - len(self.results)

    def counters(self) -> dict[str, Any]:
        c = self.corpus
        return {
            "documents": len(c.documents),
            "skipped": len(c.skipped),
            "uploaded": c.uploaded,
            "reused_uploads": c.reused_uploads,
            # The store's id: `runq ask --vector-store ID` asks it again without the files.
            "vector_store": c.vector_store_id,
            "vector_store_reused": c.vector_store_reused,
            "questions": len(self.questions),
            **(self._per_file_counters() if self.per_file else {}),
            "submitted": self.submitted,
            "reused_results": self.reused_results,
            "in_flight": self.in_flight,
            "retried": self.retried,
            "succeeded": self.done,
            "failed": self.failed,
            "pending": self.pending,
            "elapsed_s": round(self.elapsed, 3),
        }

    def cost_lines(self) -> list[str]:
        """What the answers cost and on which tiers (`runs.tiers`), and what `auto` chose
        and why; nothing for results from before runq priced them."""
        costs = [r["cost"] for r in self.results.values() if r.get("cost")]
        tiers: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for result in self.results.values():
            tier = result.get("tier") or {}
            chosen = tier.get("chosen") or "standard"
            tiers[chosen] = tiers.get(chosen, 0) + 1
            if tier.get("requested") == "auto" and tier.get("reason"):
                reasons[tier["reason"]] = reasons.get(tier["reason"], 0) + 1
        lines = []
        if costs:
            shown = " ".join(f"{t}={n}" for t, n in sorted(tiers.items()))
            if all(c.get("usd") is not None for c in costs):
                usd = sum(c["usd"] for c in costs)
                standard = sum(c["standard_usd"] for c in costs)
                lines.append(f"cost: ${usd:.6f} (on standard: ${standard:.6f}); tiers: {shown}")
            else:
                lines.append(f"cost: unknown (a model is not in the price table); tiers: {shown}")
        lines += [f"tier auto ({n} job(s)): {why}" for why, n in reasons.items()]
        return lines

    def _per_file_counters(self) -> dict[str, Any]:
        c = self.corpus
        return {"per_file": len(c.documents), "stores_created": c.stores_created,
                "stores_reused": c.stores_reused}  # fmt: skip
