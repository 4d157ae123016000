"""The in-process executor: trials one after another, in this process."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from benchbench import TrialJob, TrialOutcome, run_job


def execute(jobs: Sequence[TrialJob], options: Mapping[str, Any]) -> Iterator[TrialOutcome]:
    """``options["step_progress"]``, when given, is called as ``(job, steps_done)`` during training."""
    step_progress = options.get("step_progress")
    for job in jobs:
        progress = (lambda done, job=job: step_progress(job, done)) if step_progress else None
        yield run_job(job, progress)
