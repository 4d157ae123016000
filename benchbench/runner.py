"""Run one trial: load data, train the backend's program in the core's loop, compute metrics, log it to MLflow.

Around it: :mod:`benchbench.deadlines` (its --timeout, Ctrl-C held while it is written),
:mod:`benchbench.trial_store` (its calls to the tracking store), :mod:`benchbench.recovery` (a trial whose worker
is gone).

:func:`run_job` is the unit every executor schedules. It is a module-level function of a picklable
:class:`TrialJob`, so it runs the same in-process, in a worker process or on a cluster node, and it
never raises for a failing trial: the failure is logged on the trial's run (status FAILED, the error
as a tag, the traceback as an artifact) and returned as the outcome. It raises only when the sweep must
stop: Ctrl-C/SIGTERM (KeyboardInterrupt, after ending the run KILLED) and a tracking store that stopped
answering (TrackingError: not the trial's fault, and nothing more can be logged).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from benchbench import training
from benchbench.deadlines import TrialTimeout, deadline, interrupts_deferred, timeout_reason
from benchbench.errors import SkipTrial, TrackingError, TrialFailure
from benchbench.evaluation import EvalContext, compute_metrics, render_reports
from benchbench.plugins import get_plugins
from benchbench.specs import Data, TrainedModel, TrainResult, resolve_ref
from benchbench.tags import (
    BACKEND,
    CONFIG_HASH,
    CURVES,
    DATASET,
    DATASET_FAMILY,
    DEVICE,
    EVAL_ERROR,
    FAILED,
    FINISHED,
    KILLED,
    KIND,
    KIND_TRIAL,
    MEMORY_SOURCE,
    NOTE,
    OBJECTIVE,
    OBJECTIVE_SPEC,
    PREFIX,
    SAMPLER,
    SEED,
    SKIPPED,
    STATUS,
)
from benchbench.tracking import environment_tags
from benchbench.trial import Trial
from benchbench.trial_store import TrialStore


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to run one trial and log it under the sweep's parent run."""

    trial: Trial
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    plugin_modules: tuple[str, ...] = ()
    timeout: float | None = None
    """Seconds for training and evaluation; over it the trial ends FAILED with reason ``timeout``."""
    environment: tuple[tuple[str, str], ...] = ()
    """Variables set in the worker before it logs (the tracking client's bounded retries)."""


@dataclass
class TrialOutcome:
    run_name: str
    config_hash: str
    status: str  # finished | failed | skipped | killed
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


Progress = Callable[[int], None]


@lru_cache(maxsize=8)
def _load_data(dataset: str, params_json: str, seed: int, plugin_modules: tuple[str, ...]) -> Data:
    family = get_plugins(plugin_modules).get("dataset", dataset)
    data = resolve_ref(family.load, f"dataset {dataset!r}")(json.loads(params_json), seed)
    if not isinstance(data, Data):
        raise TrialFailure(f"dataset {dataset!r} returned {type(data).__name__}, expected benchbench.specs.Data")
    return data


CURVE_EXAMPLES = 2000
"""Checkpoint evaluations use the first this-many examples of the test split: a fixed subset, so the points of a
curve are comparable with each other, small enough that evaluating often costs little beside training, and the
whole test split of the synthetic datasets by default (n_test=2000), so a curve's last point is the final value."""
CURVE_IMAGES = 200
"""The same for image data, where an exact trace (sm_objective) costs d = 784 tangent directions an example."""


@dataclass
class Evaluated:
    """A trained and evaluated trial, before it is logged. ``curves`` are ``{metric: [(step, value), ...]}``,
    ``train_time_s`` among them; the last point of each is the final evaluation, on the whole test split."""

    result: TrainResult
    ctx: EvalContext
    metrics: dict[str, float]
    files: dict[str, bytes]
    errors: dict[str, str]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


TIME_ACCOUNTING = ("wall_s", "checkpoint_eval_s", "metrics_s", "sampling_s", "reports_s")
"""Where a trial's wall time went, logged as metrics beside train_time_s and compile_s: the whole trial; the curve
evaluations at checkpoints (inside the training loop, outside its timed region); the final metrics, sampling
included; the sampling alone; the pictures and other reports."""


def run_trial(trial: Trial, plugin_modules: tuple[str, ...] = (), progress: Progress | None = None) -> Evaluated:
    """Train and evaluate one trial without tracking; raises on failure."""
    plugins = get_plugins(plugin_modules)
    objective = plugins.get("objective", trial.objective)
    backend = plugins.get("backend", trial.backend)
    objective.loss_for(backend.loss_key)  # a combination it does not implement is skipped before loading data
    data = _load_data(trial.dataset, json.dumps(dict(trial.dataset_params), sort_keys=True), trial.seed, plugin_modules)
    make_program = resolve_ref(backend.program, f"backend {backend.name!r}")
    program = make_program(trial, data, objective, dict(trial.objective_params))
    metrics = [m for m, _ in plugins.items("metric")]
    curve_metrics = [m for m in metrics if m.curve]
    curves: dict[str, list[tuple[int, float]]] = {}
    subset = replace(data, test=data.test[: CURVE_IMAGES if data.is_image else CURVE_EXAMPLES])

    clock: dict[str, float] = dict.fromkeys(TIME_ACCOUNTING[1:], 0.0)

    def evaluate(model: TrainedModel, step: int, seconds: float) -> None:
        start = time.perf_counter()
        result = TrainResult(model=model, losses=np.zeros(0), steps=step, train_s=seconds, compile_s=0.0)
        ctx = EvalContext(data=subset, result=result, trial=trial, plugins=plugins, seed=trial.seed)
        values, _ = compute_metrics(ctx, curve_metrics)
        # A metric's own value only: its parts (perturbed_fisher_divergence.sigma_0.1, ...) are per-trial details
        # that differ between objectives, not curves to compare.
        points = {m.name: values[m.name] for m in curve_metrics if m.name in values} | {"train_time_s": seconds}
        for key, value in points.items():
            curves.setdefault(key, []).append((step, value))
        clock["checkpoint_eval_s"] += time.perf_counter() - start

    result = training.fit(program, trial, evaluate=evaluate, progress=progress)
    ctx = EvalContext(data=data, result=result, trial=trial, plugins=plugins, seed=trial.seed)
    start = time.perf_counter()
    values, errors = compute_metrics(ctx, metrics)
    clock["metrics_s"] = time.perf_counter() - start
    clock["sampling_s"] = ctx.sampling_s or 0.0
    for key in curves.keys() - {"train_time_s"}:
        if key in values:
            curves[key].append((result.steps, values[key]))
    curves.setdefault("train_time_s", []).append((result.steps, result.train_time_s))
    reports = [r for r, _ in plugins.items("report") if r.every_seed or trial.seed == 0]
    start = time.perf_counter()
    files, report_errors = render_reports(ctx, reports)
    clock["reports_s"] = time.perf_counter() - start
    return Evaluated(result, ctx, values | clock, files, errors | report_errors, curves)


def trial_tags(trial: Trial) -> dict[str, str]:
    return {
        OBJECTIVE: trial.objective,
        BACKEND: trial.backend,
        DATASET: trial.dataset_label or trial.dataset,
        DATASET_FAMILY: trial.dataset,
        OBJECTIVE_SPEC: trial.objective_label or trial.objective,
        SEED: str(trial.seed),
        CONFIG_HASH: trial.config_hash,
        KIND: KIND_TRIAL,
    }


def trial_params(trial: Trial) -> dict[str, Any]:
    config = trial.config()
    params: dict[str, Any] = {
        "objective": trial.objective,
        "backend": trial.backend,
        "dataset": trial.dataset,
        "seed": trial.seed,
    }
    params.update({f"objective.{k}": v for k, v in config["objective_params"].items()})
    params.update({f"dataset.{k}": v for k, v in config["dataset_params"].items()})
    params.update({k: v for k, v in config["settings"].items() if k != "sampler_params"})
    params.update({f"sampler.{k}": v for k, v in config["settings"]["sampler_params"].items()})
    return params


def run_job(job: TrialJob, progress: Progress | None = None) -> TrialOutcome:
    """Run one trial inside its own MLflow child run; failures end the run FAILED, never raise."""
    os.environ.update(dict(job.environment))
    trial, store = job.trial, TrialStore(job)
    tags = trial_tags(trial) | environment_tags()
    run_id = store("creating the run", "start_run", job.experiment_id, trial.run_name, tags, job.parent_run_id)
    outcome = TrialOutcome(trial.run_name, trial.config_hash, FAILED, run_id)
    start = time.perf_counter()
    try:
        store("logging the params", "log", run_id, params=trial_params(trial))
        config = json.dumps(trial.config(), indent=2, default=str)
        store("logging the config", "log_files", run_id, {"trial_config.json": config})
        with deadline(job.timeout):
            evaluated = run_trial(trial, job.plugin_modules, progress)
    except TrackingError:
        raise
    except SkipTrial as skip:
        outcome.status, outcome.error = SKIPPED, str(skip)
        store.end(run_id, "FINISHED", status=SKIPPED, skip_reason=str(skip))
        return outcome
    except KeyboardInterrupt:
        outcome.status, outcome.error = KILLED, "interrupted"
        store.end(run_id, "KILLED", status=KILLED, error="interrupted")
        raise
    except TrialTimeout:
        outcome.error = timeout_reason(job.timeout or 0)
        store.end(run_id, "FAILED", status=FAILED, error=outcome.error)
        return outcome
    except Exception as error:  # noqa: BLE001 - every trial failure is recorded, the sweep goes on
        outcome.error = str(error) if isinstance(error, TrialFailure) else f"{type(error).__name__}: {error}"
        store("logging the traceback", "log_files", run_id, {"traceback.txt": traceback.format_exc()})
        store.end(run_id, "FAILED", status=FAILED, error=outcome.error)
        return outcome
    evaluated.metrics["wall_s"] = time.perf_counter() - start
    with interrupts_deferred():
        _log_evaluated(store, run_id, evaluated)
    outcome.status, outcome.metrics = FINISHED, evaluated.metrics
    return outcome


def _log_evaluated(store: TrialStore, run_id: str, evaluated: Evaluated) -> None:
    result, ctx = evaluated.result, evaluated.ctx
    tags = {STATUS: FINISHED, DEVICE: result.device}
    tags.update({PREFIX + k: v for k, v in result.tags.items()})
    if result.memory_source:
        tags[MEMORY_SOURCE] = result.memory_source
    if ctx.sampler_used:
        tags[SAMPLER] = ctx.sampler_used
    tags[CURVES] = ",".join(sorted(evaluated.curves))
    tags.update({f"{EVAL_ERROR}{k}": v for k, v in evaluated.errors.items()})
    tags.update({f"{NOTE}{k}": v for k, v in ctx.notes.items()})
    # Final values at the last step, so that MLflow's latest value of a curve metric is the final evaluation.
    metrics = {k: v for k, v in evaluated.metrics.items() if k not in evaluated.curves}
    series = {"train_loss": result.losses}
    store(
        "logging the metrics",
        "log",
        run_id,
        metrics=metrics,
        tags=tags,
        series=series,
        points=evaluated.curves,
        step=result.steps,
    )
    store("logging the artifacts", "log_files", run_id, evaluated.files)
    if evaluated.ctx.data is not None:
        store("logging the dataset", "log_dataset", run_id, evaluated.ctx.data, evaluated.ctx.trial)
    store("ending the run", "end", run_id, "FINISHED")


def metric_directions(plugin_modules: tuple[str, ...] = ()) -> Mapping[str, str]:
    """``{metric name: "lower" | "higher"}``: every registered metric, and the time accounting the runner adds."""
    directions = {m.name: m.direction for m, _ in get_plugins(plugin_modules).items("metric")}
    directions.update(dict.fromkeys(TIME_ACCOUNTING, "lower"))
    return directions
