"""A trial's calls to the tracking store, and what a failing store is reported as.

The MLflow client retries each request with bounded backoff (see benchbench.sweep.TRACKING_ENVIRONMENT); after
that, any failure is a TrackingError naming the store and the trial, which stops the sweep rather than being
recorded as the trial's own failure.
"""

from __future__ import annotations

import os
import re
from typing import Any

from benchbench.errors import TrackingError
from benchbench.tags import PREFIX
from benchbench.tracking import Tracker


class TrialStore:
    """The trial's tracking calls. Any failure (after the client's own bounded retries) is a TrackingError
    naming the store and the trial: it stops the sweep instead of being recorded as the trial's failure."""

    def __init__(self, job: Any) -> None:
        """``job``: a :class:`benchbench.TrialJob` (its tracking URI and trial)."""
        self.uri, self.run_name = job.tracking_uri, job.trial.run_name
        self.tracker = Tracker(job.tracking_uri)

    def __call__(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` of the Tracker (``"log"``), or of its MlflowClient (``"client.search_runs"``)."""
        target: Any = self.tracker
        for part in method.split("."):
            target = getattr(target, part)
        try:
            return target(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - whatever the client raised, the store is unusable
            raise TrackingError(
                f"tracking store {self.uri} failed while {what} of trial {self.run_name}: {cause(error)}"
            ) from error

    def end(self, run_id: str, run_status: str, /, **outcome: str) -> None:
        """Tag the outcome (``bench.status``, ``bench.error``, ...) and end the run with MLflow ``run_status``."""
        self("ending the run", "log", run_id, tags={PREFIX + key: value for key, value in outcome.items()})
        self("ending the run", "end", run_id, run_status)


def cause(error: Exception) -> str:
    """One short line: the socket error under MLflow's and urllib3's wrapping, with the retries it survived."""
    text = str(error).strip()
    socket_error = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if "Max retries exceeded" in text and socket_error:
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
        return f"{socket_error.group(0).strip()} (after {retries} retries)"
    lines = text.splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]
