"""Run one trial: load data, train through the backend, compute metrics, log it all to MLflow.

:func:`run_job` is the unit every executor schedules. It is a module-level function of a picklable
:class:`TrialJob`, so it runs the same in-process, in a worker process or on a cluster node, and it
never raises for a failing trial: the failure is logged on the trial's run (status FAILED, the error
as a tag, the traceback as an artifact) and returned as the outcome.
"""

from __future__ import annotations

import io
import json
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from benchbench.errors import SkipTrial, TrialFailure
from benchbench.evaluation import EvalContext, compute_metrics, render_reports
from benchbench.plugins import get_plugins
from benchbench.specs import Data, TrainResult, resolve_ref
from benchbench.tracking import TAG_PREFIX, Tracker, environment_tags
from benchbench.trial import Trial


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to run one trial and log it under the sweep's parent run."""

    trial: Trial
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    plugin_modules: tuple[str, ...] = ()


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


@dataclass
class Evaluated:
    """A trained and evaluated trial, before it is logged."""

    result: TrainResult
    ctx: EvalContext
    metrics: dict[str, float]
    files: dict[str, bytes]
    errors: dict[str, str]


def run_trial(trial: Trial, plugin_modules: tuple[str, ...] = (), progress: Progress | None = None) -> Evaluated:
    """Train and evaluate one trial without tracking; raises on failure."""
    plugins = get_plugins(plugin_modules)
    objective = plugins.get("objective", trial.objective)
    backend = plugins.get("backend", trial.backend)
    objective.loss_for(trial.backend)  # a combination it does not implement is skipped before loading data
    data = _load_data(trial.dataset, json.dumps(dict(trial.dataset_params), sort_keys=True), trial.seed, plugin_modules)
    train = resolve_ref(backend.train, f"backend {backend.name!r}")
    result = train(trial, data, objective, dict(trial.objective_params), progress or (lambda done: None))
    _check_losses(result.losses, trial)
    ctx = EvalContext(data=data, result=result, trial=trial, plugins=plugins, seed=trial.seed)
    metrics, errors = compute_metrics(ctx, [m for m, _ in plugins.items("metric")])
    metrics.update({k: float(v) for k, v in result.extra_metrics.items()})
    files, report_errors = render_reports(ctx, [r for r, _ in plugins.items("report")])
    files["loss_curve.png"] = loss_curve_png(result.losses, trial.run_name)
    return Evaluated(result, ctx, metrics, files, errors | report_errors)


def _check_losses(losses: np.ndarray, trial: Trial) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise TrialFailure(f"{trial.run_name}: loss became {losses[bad[0]]} at step {bad[0]}")


def trial_tags(trial: Trial) -> dict[str, str]:
    return {
        TAG_PREFIX + "objective": trial.objective,
        TAG_PREFIX + "backend": trial.backend,
        TAG_PREFIX + "dataset": trial.dataset_label or trial.dataset,
        TAG_PREFIX + "dataset_family": trial.dataset,
        TAG_PREFIX + "objective_spec": trial.objective_label or trial.objective,
        TAG_PREFIX + "seed": str(trial.seed),
        TAG_PREFIX + "config_hash": trial.config_hash,
        TAG_PREFIX + "kind": "trial",
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
    trial = job.trial
    tracker = Tracker(job.tracking_uri)
    tags = trial_tags(trial) | environment_tags()
    run_id = tracker.start_run(job.experiment_id, trial.run_name, tags, parent_id=job.parent_run_id)
    outcome = TrialOutcome(trial.run_name, trial.config_hash, "failed", run_id)
    tracker.log(run_id, params=trial_params(trial))
    tracker.log_files(run_id, {"trial_config.json": json.dumps(trial.config(), indent=2, default=str)})
    start = time.perf_counter()
    try:
        evaluated = run_trial(trial, job.plugin_modules, progress)
    except SkipTrial as skip:
        outcome.status, outcome.error = "skipped", str(skip)
        tracker.log(run_id, tags={TAG_PREFIX + "status": "skipped", TAG_PREFIX + "skip_reason": str(skip)})
        tracker.end(run_id, "FINISHED")
        return outcome
    except KeyboardInterrupt:
        outcome.status, outcome.error = "killed", "interrupted"
        tracker.log(run_id, tags={TAG_PREFIX + "status": "killed", TAG_PREFIX + "error": "interrupted"})
        tracker.end(run_id, "KILLED")
        raise
    except Exception as error:  # noqa: BLE001 - every trial failure is recorded, the sweep goes on
        message = f"{type(error).__name__}: {error}" if not isinstance(error, TrialFailure) else str(error)
        outcome.error = message
        tracker.log(run_id, tags={TAG_PREFIX + "status": "failed", TAG_PREFIX + "error": message})
        tracker.log_files(run_id, {"traceback.txt": traceback.format_exc()})
        tracker.end(run_id, "FAILED")
        return outcome
    result, ctx, metrics = evaluated.result, evaluated.ctx, evaluated.metrics
    metrics["wall_s"] = time.perf_counter() - start
    extra_tags = {TAG_PREFIX + "status": "finished", TAG_PREFIX + "device": result.device}
    if result.memory_source:
        extra_tags[TAG_PREFIX + "memory_source"] = result.memory_source
    if ctx.sampler_used:
        extra_tags[TAG_PREFIX + "sampler"] = ctx.sampler_used
    extra_tags.update({f"{TAG_PREFIX}eval_error.{k}": v for k, v in evaluated.errors.items()})
    extra_tags.update({f"{TAG_PREFIX}note.{k}": v for k, v in ctx.notes.items()})
    tracker.log(run_id, metrics=metrics, tags=extra_tags, series={"train_loss": result.losses})
    tracker.log_files(run_id, evaluated.files)
    tracker.end(run_id, "FINISHED")
    outcome.status, outcome.metrics = "finished", metrics
    return outcome


def loss_curve_png(losses: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(np.arange(len(losses)), losses, lw=0.8)
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.title.set_fontsize(8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def metric_directions(plugin_modules: tuple[str, ...] = ()) -> Mapping[str, str]:
    """``{metric name: "lower" | "higher"}``: every registered metric, and ``wall_s`` that the runner adds."""
    directions = {m.name: m.direction for m, _ in get_plugins(plugin_modules).items("metric")}
    directions["wall_s"] = "lower"
    return directions
