"""Run a sweep: one MLflow parent run, its trials through an executor, progress, resume, and the summary.

Resume: a trial is identified by its config hash (tag ``bench.config_hash``). A sweep run again in the same
experiment reuses every trial that already has a FINISHED run there (status finished or skipped), re-runs
those that failed, were killed or were left running, and records the reused run ids on its own parent run
(tags ``bench.reused_runs.0``, ``.1``, ...; see :func:`benchbench.tags.reused_run_ids`), so that the new sweep's
table shows the whole matrix, each trial exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from benchbench.errors import TrackingError, UsageError
from benchbench.params import parse_spec, resolve
from benchbench.plugins import Plugins
from benchbench.runner import TrialJob, TrialOutcome
from benchbench.specs import Executor, resolve_ref
from benchbench.tags import (
    COMPARISON_ERROR,
    CONFIG_HASH,
    DONE,
    ERROR,
    EXECUTOR,
    FAILED,
    FINISHED,
    KILLED,
    KIND,
    KIND_SWEEP,
    KIND_TRIAL,
    SKIPPED,
    STATUS,
    STATUSES,
    SUMMARY,
    reused_tags,
)
from benchbench.tracking import Tracker, environment_tags
from benchbench.trial import Trial

# How the MLflow client of the driver and of every trial talks to a tracking server; a value the user has set
# wins. It retries a failed request with exponential backoff: by default 7 retries, ~4 minutes per request.
# Bounded, a lost server stops the sweep after ~30 s (sleeps 0, 2, 4, 8, 16 s), long enough to ride out a
# server restart. And it would print two "View run at" links to stdout per trial, in the middle of the table.
TRACKING_ENVIRONMENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass
class SweepReport:
    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def summary_line(self, total: int) -> str:
        parts = [f"{len(self.reused)} already done"] if self.reused else []
        parts += [f"{self.count(s)} {s}" for s in STATUSES if self.count(s)]
        missing = total - len(self.outcomes) - len(self.reused)
        if missing:
            parts.append(f"{missing} not run")
        return f"{total} trials: " + ", ".join(parts)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the sweep; ``report`` says what had finished."""

    def __init__(self, report: SweepReport, total: int) -> None:
        super().__init__(report.summary_line(total))
        self.report = report


@dataclass(frozen=True)
class PreviousRun:
    config_hash: str
    run_id: str
    status: str  # the MLflow run status: FINISHED, FAILED, KILLED, RUNNING
    outcome: str  # the bench.status tag: finished, skipped, failed, killed ('' while running)
    start_time: int


def plan_resume(trials: Sequence[Trial], previous: Iterable[PreviousRun]) -> tuple[dict[str, str], set[str]]:
    """``({config hash: reused run id}, {config hashes re-run})`` for the trials of a resumed sweep.

    Reused: the latest FINISHED run whose outcome is finished or skipped. Re-run: trials whose every earlier
    run failed, was killed or never ended (a sweep that lost its tracking server leaves runs RUNNING).
    """
    wanted = {trial.config_hash for trial in trials}
    reused: dict[str, PreviousRun] = {}
    seen: set[str] = set()
    for run in previous:
        if run.config_hash not in wanted:
            continue
        seen.add(run.config_hash)
        if run.status == "FINISHED" and run.outcome in DONE:
            if run.config_hash not in reused or run.start_time > reused[run.config_hash].start_time:
                reused[run.config_hash] = run
    return {h: run.run_id for h, run in reused.items()}, seen - set(reused)


def previous_runs(tracker: Tracker, experiment_id: str) -> Iterator[PreviousRun]:
    """Every trial run of the experiment, page by page."""
    token = None
    while True:
        page = tracker.client.search_runs(
            [experiment_id], f"tags.`{KIND}` = '{KIND_TRIAL}'", max_results=5000, page_token=token
        )
        for run in page:
            tags = run.data.tags
            yield PreviousRun(
                tags.get(CONFIG_HASH, ""),
                run.info.run_id,
                run.info.status,
                tags.get(STATUS, ""),
                run.info.start_time or 0,
            )
        token = page.token
        if not token:
            return


def resolve_executor(plugins: Plugins, spec: str, given: Mapping[str, Any]) -> tuple[Executor, dict[str, Any]]:
    """``NAME[:k=v,...]`` plus options given on their own (``--workers``) as the executor and its typed options."""
    name, raw = parse_spec(spec)
    executor = plugins.get("executor", name)
    for key, value in given.items():
        if value is None:
            continue
        if key in raw:
            raise UsageError(f"executor {name!r}: {key} given twice (--{key} and in --executor {spec})")
        raw[key] = value
    reason = executor.unavailable_reason()
    if reason:
        raise UsageError(f"executor {name!r} is unavailable ({reason})")
    return executor, resolve(f"executor {name!r}", executor.params, raw)


def runs_concurrently(executor: Executor, options: Mapping[str, Any]) -> bool:
    """Whether trials write to the store at the same time: every executor but the in-process one, unless it is
    limited to one worker. sqlite then needs a server in front."""
    return executor.concurrent and options.get("workers") != 1


def run_sweep(
    plugins: Plugins,
    trials: Sequence[Trial],
    tracking_uri: str,
    experiment: str,
    executor: str,
    executor_options: Mapping[str, Any] | None = None,
    console: Console | None = None,
    sweep_params: Mapping[str, Any] | None = None,
    resume: bool = True,
    timeout: float | None = None,
) -> SweepReport:
    """Run every trial under one parent run.

    Ctrl-C or SIGTERM ends running trials KILLED and the parent KILLED, and raises :class:`SweepInterrupted`;
    a tracking store that stops answering raises TrackingError saying what was saved. When trials run
    concurrently on a local sqlite store, a private ``mlflow server`` serves the file for the sweep.
    """
    from benchbench.server import PrivateServer, is_local_sqlite
    from benchbench.store import SweepLock, sqlite_created

    console = console or Console(stderr=True)
    chosen, options = resolve_executor(plugins, executor, executor_options or {})
    execute = resolve_ref(chosen.execute, f"executor {chosen.name!r}")
    defaults = {k: v for k, v in TRACKING_ENVIRONMENT.items() if k not in os.environ}
    with ExitStack() as stack:
        stack.enter_context(_environment(defaults))
        stack.enter_context(_terminate_as_interrupt())
        with sqlite_created(tracking_uri):  # issue 17: two sweeps creating one new sqlite file
            tracker = Tracker(tracking_uri)
            tracker.check()
        experiment_id = tracker.experiment_id(experiment)
        stack.enter_context(SweepLock(tracker, experiment_id, lambda line: console.print(line, highlight=False)))
        reused, rerun = plan_resume(trials, previous_runs(tracker, experiment_id)) if resume else ({}, set())
        if reused or rerun:
            console.print(_resume_line(len(trials), len(reused), len(rerun), experiment), highlight=False)
        todo = [trial for trial in trials if trial.config_hash not in reused]
        server = None
        if todo and runs_concurrently(chosen, options) and is_local_sqlite(tracking_uri):
            server = stack.enter_context(PrivateServer(tracking_uri))
            tracker = Tracker(server.url)
            console.print(
                f"tracking server for {tracking_uri} at {server.url} (private to this sweep)", highlight=False
            )
        parent = _start_parent(tracker, experiment_id, len(trials), chosen.name, sweep_params or {}, reused)
        report = SweepReport(parent, experiment_id, reused=reused)
        environment = tuple(sorted((k, os.environ[k]) for k in TRACKING_ENVIRONMENT))
        jobs = [
            TrialJob(trial, tracker.uri, experiment_id, parent, plugins.extra_modules, timeout, environment)
            for trial in todo
        ]
        try:
            if jobs:
                headline = [m.name for m, _ in plugins.items("metric") if m.headline]
                _execute(execute, jobs, dict(options), report, console, headline)
        except KeyboardInterrupt:
            report.outcomes = _stored_outcomes(tracker, experiment_id, parent)
            _end_parent(tracker, parent, report, len(trials), "KILLED", " (interrupted)")
            raise SweepInterrupted(report, len(trials)) from None
        except TrackingError as error:
            note = server.exit_note() if server else ""
            done = report.count(FINISHED) + report.count(SKIPPED) + len(reused)
            raise TrackingError(
                f"{error}{note}; the sweep stopped. {done} of {len(trials)} trials are finished in the store; "
                "run the same command again to run the rest"
            ) from None
        _log_comparison(tracker, experiment, parent, plugins, console)
        _end_parent(tracker, parent, report, len(trials), "FINISHED")
    return report


def _start_parent(
    tracker: Tracker,
    experiment_id: str,
    total: int,
    executor: str,
    sweep_params: Mapping[str, Any],
    reused: Mapping[str, str],
) -> str:
    tags = {KIND: KIND_SWEEP, EXECUTOR: executor} | environment_tags()
    parent = tracker.start_run(experiment_id, f"sweep-{total}-trials", tags)
    params = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in sweep_params.items()}
    tracker.log(parent, params=params, tags=reused_tags(sorted(reused.values())))
    return parent


def _execute(
    execute: Any, jobs: list[TrialJob], options: dict, report: SweepReport, console: Console, headline: Sequence[str]
) -> None:
    """Drive the executor: a bar over trials, one over steps per running trial, a line per finished trial."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        trial_bar = progress.add_task("trials", total=len(jobs))
        step_bars: dict[str, TaskID] = {}

        def on_steps(job: TrialJob, done: int) -> None:
            name = job.trial.run_name
            if name not in step_bars:
                # under --time-budget without --steps the total is unknown: the bar shows progress without an end
                step_bars[name] = progress.add_task(f"steps of {name}", total=job.trial.settings.steps)
            progress.update(step_bars[name], completed=done)

        outcomes = execute(jobs, options | {"step_progress": on_steps})
        try:
            for outcome in outcomes:
                report.outcomes.append(outcome)
                progress.advance(trial_bar)
                if outcome.run_name in step_bars:
                    progress.remove_task(step_bars.pop(outcome.run_name))
                console.print(_outcome_line(outcome, headline), highlight=False)
        finally:
            outcomes.close()  # an executor stops its running trials in its own `finally`


def _stored_outcomes(tracker: Tracker, experiment_id: str, parent: str) -> list[TrialOutcome]:
    """The sweep's trials as the store has them. After Ctrl-C it knows more than the executor could report:
    a trial that was being written when the signal came is FINISHED there."""
    runs = tracker.client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=50000)
    return [
        TrialOutcome(
            run.info.run_name,
            run.data.tags.get(CONFIG_HASH, ""),
            run.data.tags.get(STATUS, run.info.status.lower()),
            run.info.run_id,
            dict(run.data.metrics),
            run.data.tags.get(ERROR),
        )
        for run in runs
        if run.info.status != "RUNNING"
    ]


def _log_comparison(tracker: Tracker, experiment: str, parent: str, plugins: Plugins, console: Console) -> None:
    """The sweep's table and plots as artifacts of its parent run. Not fatal: every trial is already stored, and
    ``bench table`` regenerates them; a failure is a tag on the parent run and one line."""
    from benchbench.comparison import comparison_files

    try:
        tracker.log_files(parent, comparison_files(tracker.uri, experiment, parent, plugins))
    except Exception as error:  # noqa: BLE001 - the comparison is derived; losing it must not lose the sweep
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        tracker.log(parent, tags={COMPARISON_ERROR: reason})
        console.print(f"the sweep's comparison could not be attached to its run: {reason}", highlight=False)


def _end_parent(tracker: Tracker, parent: str, report: SweepReport, total: int, status: str, note: str = "") -> None:
    counts = {f"n_{s}": report.count(s) for s in (FINISHED, SKIPPED, FAILED)} | {"n_reused": len(report.reused)}
    tracker.log(parent, tags={SUMMARY: report.summary_line(total) + note}, metrics=counts)
    tracker.end(parent, status)


def _resume_line(total: int, reused: int, rerun: int, experiment: str) -> str:
    parts = [f"{reused} of {total} trials already done (reused, not run again)"]
    if rerun:
        parts.append(f"{rerun} failed, killed or left unfinished (run again)")
    if total - reused - rerun:
        parts.append(f"{total - reused - rerun} new")
    return f"resuming experiment {experiment!r}: {', '.join(parts)}; --no-resume runs them all"


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a batch scheduler) stops a sweep the way Ctrl-C does: trials KILLED, exit 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _outcome_line(outcome: TrialOutcome, headline: Sequence[str]) -> str:
    mark = {FINISHED: "ok  ", SKIPPED: "skip", FAILED: "FAIL", KILLED: "kill"}[outcome.status]
    detail = outcome.error or ", ".join(f"{k}={outcome.metrics[k]:.4g}" for k in headline if k in outcome.metrics)
    return f"{mark} {outcome.run_name}  {detail}"
