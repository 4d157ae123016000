"""Recovery of lost trials: a worker that died, was killed or overran its timeout leaves its run to be ended here."""

from __future__ import annotations

from benchbench.runner import TrialJob, TrialOutcome, trial_params, trial_tags
from benchbench.tags import CONFIG_HASH, ERROR, SKIP_REASON, STATUS
from benchbench.tracking import environment_tags
from benchbench.trial_store import TrialStore


def record_lost_trial(job: TrialJob, status: str, reason: str, create: bool = True) -> TrialOutcome:
    """The outcome of a trial whose worker is gone (it died, was killed, or overran its timeout and was stopped).

    The trial's run is found by its parent run and config hash. A run the worker left RUNNING is ended with
    ``status`` (failed or killed) and ``reason``; a run it had already ended (it finished while being stopped)
    is reported as it is. With ``create``, a worker that died before creating its run gets one, so the store
    shows the failure and the reason.
    """
    trial = job.trial
    store = TrialStore(job)
    query = f"tags.`mlflow.parentRunId` = '{job.parent_run_id}' and tags.`{CONFIG_HASH}` = '{trial.config_hash}'"
    runs = store("finding the run", "client.search_runs", [job.experiment_id], query)
    running = [run for run in runs if run.info.status == "RUNNING"]
    ended = [run for run in runs if run.info.status != "RUNNING"]
    if ended and not running:
        run = ended[0]
        state = run.data.tags.get(STATUS, run.info.status.lower())
        error = run.data.tags.get(ERROR) or run.data.tags.get(SKIP_REASON)
        return TrialOutcome(trial.run_name, trial.config_hash, state, run.info.run_id, dict(run.data.metrics), error)
    outcome = TrialOutcome(trial.run_name, trial.config_hash, status, None, error=reason)
    if running:
        outcome.run_id = running[0].info.run_id
    elif create:
        tags = trial_tags(trial) | environment_tags()
        outcome.run_id = store(
            "creating the run", "start_run", job.experiment_id, trial.run_name, tags, job.parent_run_id
        )
        store("logging the params", "log", outcome.run_id, params=trial_params(trial))
    else:
        return outcome
    store.end(outcome.run_id, status.upper(), status=status, error=reason)
    return outcome
