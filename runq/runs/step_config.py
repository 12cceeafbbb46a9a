"""The timings and switches of the steps (the worker builds them from `Settings`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepConfig:
    poll_interval_min: float = 0.25
    poll_interval_max: float = 5.0
    request_timeout: float = 30.0
    lease_grace: float = 60.0
    tool_errors_fail_job: bool = False
    stream_lock_seconds: float = 10.0  # renewed while the stream runs; short so a crash frees it
    turn_wait: float = 0.5  # seconds between looks while another job has the conversation
    # ... and for a job whose start the end it waits for will send (`runs.gates`): the
    # look is then only the safety net, for a hand-over lost with its worker.
    turn_wait_handed_over: float = 30.0
    deadline_margin: float = 2.0  # a model link is skipped with less time than this left
    # Webhook mode (runs.webhooks): a waiting run is looked at after this long unless its
    # webhook wakes the job first, the wait growing `safety_poll_growth` times after each
    # look that finds the run still going, up to `safety_poll_max`; `webhooks` says this
    # deployment receives them, so jobs in poll mode wait for them too.
    safety_poll_interval: float = 60.0
    safety_poll_max: float = 600.0
    safety_poll_growth: float = 3.0
    webhooks: bool = False

    @property
    def lock_seconds(self) -> float:
        """A step holds its job at most one request plus margin; then others may act."""
        return self.request_timeout + 10.0
