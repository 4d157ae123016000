"""Run a sweep: one MLflow parent run, its trials through an executor, progress, and the summary."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchbench.errors import UsageError
from benchbench.plugins import Plugins
from benchbench.runner import TrialJob, TrialOutcome
from benchbench.specs import resolve_ref
from benchbench.tracking import TAG_PREFIX, Tracker, environment_tags
from benchbench.trial import Trial


@dataclass
class SweepReport:
    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def summary_line(self, total: int) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("finished", "skipped", "failed", "killed") if self.count(s)]
        missing = total - len(self.outcomes)
        if missing:
            parts.append(f"{missing} not run")
        return f"{total} trials: " + ", ".join(parts)


def run_sweep(
    plugins: Plugins,
    trials: Sequence[Trial],
    tracking_uri: str,
    experiment: str,
    executor: str = "local",
    executor_options: Mapping[str, Any] | None = None,
    console: Console | None = None,
    sweep_params: Mapping[str, Any] | None = None,
) -> SweepReport:
    """Run every trial under one parent run. Ctrl-C ends the parent KILLED and re-raises."""
    console = console or Console(stderr=True)
    chosen = plugins.get("executor", executor)
    reason = chosen.unavailable_reason()
    if reason:
        raise UsageError(f"executor {executor!r} is unavailable ({reason})")
    execute = resolve_ref(chosen.execute, f"executor {executor!r}")
    tracker = Tracker(tracking_uri)
    tracker.check()
    experiment_id = tracker.experiment_id(experiment)
    parent = tracker.start_run(
        experiment_id,
        f"sweep-{len(trials)}-trials",
        {TAG_PREFIX + "kind": "sweep", TAG_PREFIX + "executor": executor} | environment_tags(),
    )
    tracker.log(
        parent, params={k: json.dumps(v) if not isinstance(v, str) else v for k, v in (sweep_params or {}).items()}
    )
    report = SweepReport(parent, experiment_id)
    jobs = [TrialJob(t, tracking_uri, experiment_id, parent, plugins.extra_modules) for t in trials]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        trial_bar = progress.add_task("trials", total=len(jobs))
        step_bar = progress.add_task("steps", total=trials[0].settings.steps if trials else 1)

        def on_steps(job: TrialJob, done: int) -> None:
            progress.update(step_bar, completed=done, description=f"steps of {job.trial.run_name}")

        options = dict(executor_options or {}, step_progress=on_steps)
        try:
            for outcome in execute(jobs, options):
                report.outcomes.append(outcome)
                progress.advance(trial_bar)
                progress.reset(step_bar)
                console.print(_outcome_line(outcome), highlight=False)
        except KeyboardInterrupt:
            tracker.log(parent, tags={TAG_PREFIX + "summary": report.summary_line(len(jobs)) + " (interrupted)"})
            tracker.end(parent, "KILLED")
            raise
    tracker.log(
        parent,
        tags={TAG_PREFIX + "summary": report.summary_line(len(jobs))},
        metrics={f"n_{s}": report.count(s) for s in ("finished", "skipped", "failed")},
    )
    tracker.end(parent, "FINISHED")
    return report


def _outcome_line(outcome: TrialOutcome) -> str:
    mark = {"finished": "ok  ", "skipped": "skip", "failed": "FAIL", "killed": "kill"}[outcome.status]
    detail = outcome.error or ", ".join(
        f"{k}={outcome.metrics[k]:.4g}" for k in ("fisher_divergence", "train_step_ms") if k in outcome.metrics
    )
    return f"{mark} {outcome.run_name}  {detail}"
