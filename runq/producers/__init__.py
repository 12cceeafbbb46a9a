"""Producers: the Python API (`submit`, `JobHandle`), the `runq` CLI, batch Q&A, the gateway."""

from runq.producers.api import Client, JobHandle, get_job, submit

__all__ = ["Client", "JobHandle", "get_job", "submit"]
