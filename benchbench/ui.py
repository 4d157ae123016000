"""``bench ui``: the MLflow UI on our tracking store, and a clean stop of every process it started.

The UI runs in its own session (``start_new_session``), so a terminal's Ctrl-C reaches only ``bench ui``,
which then stops the UI's whole process tree, and afterwards anything left in the UI's process group (a
process that detached from the tree). SIGINT, SIGTERM and SIGHUP all mean "stop"; a signal that arrives
while the UI is being started is remembered and acted on as soon as the process exists, and a second
Ctrl-C while stopping does not cut the stop short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import psutil

from benchbench.errors import BenchError, UsageError
from benchbench.processes import check_port, free_port, guarded, stop_tree, wait_until_listening
from benchbench.store import check_uri

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# MLflow 3's server also starts a job runner and seven huey consumers (GenAI evaluation jobs, measured with
# mlflow 3.17): eight processes and a /dev/shm folder the UI for browsing runs does not need.
UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


class _StopRequest:
    """Turns the stop signals into KeyboardInterrupt, but only while ``armed``; otherwise it just remembers."""

    def __init__(self) -> None:
        self.requested = False
        self.armed = False

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def arm(self) -> None:
        self.armed = True
        if self.requested:
            self.armed = False
            raise KeyboardInterrupt


def serve(
    tracking_uri: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    echo: Callable[[str], None] = print,
    experiment: str | None = None,
) -> None:
    """Start the UI, print its URL (and that of ``experiment``'s runs), block until Ctrl-C, SIGTERM or SIGHUP;
    then stop everything it started."""
    if tracking_uri.startswith(("http://", "https://")):
        raise UsageError(
            f"tracking URI {tracking_uri!r} is a tracking server, which serves its own UI: open {tracking_uri} in a "
            "browser; bench ui shows a database store (sqlite:///FILE, postgresql://...)"
        )
    check_uri(tracking_uri, "read")
    port = port or free_port()
    check_port(host, port)
    stop = _StopRequest()
    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    process = None
    try:
        process = subprocess.Popen(
            guarded(ui_command(tracking_uri, host, port)), start_new_session=True, env=os.environ | UI_ENVIRONMENT
        )
        stop.arm()
        wait_until_listening(process, host, port, "the MLflow UI")
        url = f"http://{host}:{port}"
        echo(f"MLflow UI for {tracking_uri} at {url}  (Ctrl-C stops it)")
        runs = experiment_runs_url(url, tracking_uri, experiment) if experiment else None
        if runs:
            echo(f"runs of experiment {experiment!r}: {runs}")
        process.wait()
        raise BenchError(f"the MLflow UI exited with code {process.returncode}")
    except KeyboardInterrupt:
        echo("stopping the MLflow UI")
    finally:
        stop.armed = False
        if process is not None:
            stop_tree(process)
            stop_group(process.pid)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def experiment_runs_url(base: str, tracking_uri: str, experiment: str) -> str | None:
    """The page listing the experiment's runs: MLflow 3 opens an experiment on its GenAI overview instead."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri).get_experiment_by_name(experiment)
    return f"{base}/#/experiments/{found.experiment_id}/runs" if found else None


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, whatever is left in process group ``pgid`` (the UI's session)."""
    members = [p for p in psutil.process_iter(["status"]) if _pgid(p) == pgid and p.info["status"] != "zombie"]
    for proc in members:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(members, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None
