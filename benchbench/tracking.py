"""MLflow tracking through ``MlflowClient``: one parent run per sweep, one child run per trial.

The client API (not the fluent ``mlflow.start_run``) keeps run ids explicit, so a trial can log from
another process or machine given only the tracking URI and its parent's run id.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchbench import __version__
from benchbench.errors import TrackingError
from benchbench.tags import PREFIX

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_STEP_POINTS = 200
# log_batch limits of the MLflow REST API
_BATCH_METRICS, _BATCH_PARAMS, _BATCH_TAGS = 1000, 100, 100
_DATASET_ATTEMPTS = 3


def tracking_uri(explicit: str | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the sqlite store ``./mlflow.db``."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@contextmanager
def _no_retries():
    """Fail fast: the reachability check must not sit through MLflow's minutes of HTTP retries."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Tracker:
    """A connection to one tracking store."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)

    def check(self) -> None:
        """Raise TrackingError, before any training, when the store cannot be reached."""
        try:
            with _no_retries():
                self.client.search_experiments(max_results=1)
        except Exception as error:  # noqa: BLE001 - any failure here means "cannot use this store"
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise TrackingError(f"tracking store {self.uri} is unreachable: {first_line[:300]}") from None

    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(f"experiment {name!r} is deleted in {self.uri}; restore it or pick another name")
            return experiment.experiment_id
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name)
        except MlflowException as error:  # another sweep created it a moment ago (issue 17)
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    def start_run(self, experiment_id: str, name: str, tags: Mapping[str, str], parent_id: str | None = None) -> str:
        tags = dict(tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        return self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def log(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        series: Mapping[str, Iterable[float]] | None = None,
        points: Mapping[str, Iterable[tuple[int, float]]] | None = None,
        step: int = 0,
    ) -> None:
        """Everything in as few ``log_batch`` calls as the API limits allow.

        ``metrics`` are logged at ``step``; ``series`` are step metrics with one value per step (e.g. the training
        loss), subsampled to at most :data:`MAX_STEP_POINTS` points with their original step numbers; ``points``
        are step metrics given as ``(step, value)`` pairs (convergence curves).
        """
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_list = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()]
        metric_list += [Metric(k, float(v), now, s) for k, pairs in (points or {}).items() for s, v in pairs]
        for key, values in (series or {}).items():
            values = list(values)
            stride = max(1, -(-len(values) // MAX_STEP_POINTS))
            steps = list(range(0, len(values), stride))
            if steps and steps[-1] != len(values) - 1:
                steps.append(len(values) - 1)
            metric_list += [Metric(key, float(values[s]), now, s) for s in steps]
        param_list = [Param(k, _text(v, 6000)) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, _text(v, 5000)) for k, v in (tags or {}).items()]
        while metric_list or param_list or tag_list:
            self.client.log_batch(
                run_id,
                metrics=metric_list[:_BATCH_METRICS],
                params=param_list[:_BATCH_PARAMS],
                tags=tag_list[:_BATCH_TAGS],
            )
            metric_list = metric_list[_BATCH_METRICS:]
            param_list = param_list[_BATCH_PARAMS:]
            tag_list = tag_list[_BATCH_TAGS:]

    def log_files(self, run_id: str, files: Mapping[str, str | bytes]) -> None:
        """Artifacts given as ``{file name: text or bytes}``."""
        with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as folder:
            for name, content in files.items():
                path = Path(folder) / name
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
                self.client.log_artifact(run_id, str(path))

    def log_dataset(self, run_id: str, data: Any, trial: Any) -> None:
        """The trial's training data as an MLflow dataset input (name, digest, source), for the UI's Datasets
        column and filter. The digest is of the training array's bytes, so two trials share it exactly when
        they trained on the same numbers."""
        import hashlib

        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        digest = hashlib.sha256(data.train.tobytes()).hexdigest()[:16]
        source = {"dataset": trial.dataset_label or trial.dataset, "params": dict(trial.dataset_params)}
        source["split_seed"] = trial.seed
        profile = {"train_rows": len(data.train), "test_rows": len(data.test), "shape": list(data.shape)}
        dataset = Dataset(
            name=trial.dataset_label or trial.dataset,
            digest=digest,
            source_type="benchbench",
            source=json.dumps(source, default=str),
            profile=json.dumps(profile),
        )
        context = InputTag(key="mlflow.data.context", value="train")
        inputs = [DatasetInput(dataset=dataset, tags=[context])]
        # MLflow looks the dataset up, then inserts it if missing, in one transaction. Two trials of a parallel
        # sweep on the same data can both miss it, and the later insert breaks the store's unique key. The
        # transaction rolls back whole, so the loser tries again and this time finds the winner's row.
        for attempt in range(_DATASET_ATTEMPTS):
            try:
                self.client.log_inputs(run_id, datasets=inputs)
                return
            except MlflowException as error:
                if attempt == _DATASET_ATTEMPTS - 1 or not _lost_an_insert_race(error):
                    raise

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)


def _lost_an_insert_race(error: Exception) -> bool:
    """Whether the store refused a row because another writer inserted the same key first: PostgreSQL says
    "duplicate key value violates unique constraint", SQLite "UNIQUE constraint failed", through a server or not."""
    text = str(error).lower()
    return "unique constraint" in text or "duplicate key" in text


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:limit]


def environment_tags() -> dict[str, str]:
    """Versions and hardware: what a reader needs to trust (or distrust) a number."""
    from importlib import metadata

    tags = {
        "benchbench_version": __version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
    }
    for package in ("torch", "jax", "mlflow", "numpy"):
        try:
            tags[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"{package}_version"] = "not installed"
    commit = _git_commit()
    if commit:
        tags["git_commit"] = commit
    return {PREFIX + k: v for k, v in tags.items()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
