"""Tracking servers: ``bench server`` on a real database, and what a sweep does when its server goes away."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from benchbench.errors import TrackingError
from benchbench.processes import free_port
from benchbench.runner import TrialJob, run_job
from benchbench.server import TrackingServer, is_local_sqlite
from benchbench.trial import Settings, Trial

FIXTURES = Path(__file__).parent / "fixtures"
TINY = ["--steps", "20", "--n-samples", "50", "--width", "16", "--depth", "1", "--sampler", "langevin:n_steps=10"]


def tagged(tag: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(FIXTURES), BENCH_TEST_TAG=tag, **extra)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def leftovers(tag: str) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("BENCH_TEST_TAG") == tag:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def test_server_commands_keep_artifacts_where_the_store_reads_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    served = TrackingServer("sqlite:///mlflow.db", port=5123, artifacts_destination="art").command()
    assert served[1:4] == ["-m", "mlflow", "server"]
    assert served[served.index("--host") + 1] == "127.0.0.1" and served[served.index("--workers") + 1] == "1"
    assert served[served.index("--artifacts-destination") + 1] == str(tmp_path / "art")
    assert "--serve-artifacts" in served
    private = TrackingServer("sqlite:///mlflow.db", serve_artifacts=False).command()
    # the folder MLflow itself uses for a sqlite store without a server: ./mlruns
    assert private[private.index("--default-artifact-root") + 1] == str(tmp_path / "mlruns")
    assert "--no-serve-artifacts" in private
    assert is_local_sqlite("sqlite:///mlflow.db") and not is_local_sqlite("http://127.0.0.1:5000")


def test_a_refused_connection_is_a_tracking_error_not_a_failed_trial(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    trial = Trial("denoising", {}, "torch", "gaussian", {}, 0, Settings(steps=5))
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError) as raised:
        run_job(TrialJob(trial, uri, "0", None))
    assert str(raised.value) == (
        f"tracking store {uri} failed while creating the run of trial denoising/torch/gaussian/seed0: "
        "[Errno 111] Connection refused (after 0 retries)"
    )


@pytest.mark.slow
def test_bench_server_serves_a_database_on_loopback_and_stops_with_its_children(tmp_path):
    tag, port = uuid.uuid4().hex, free_port()
    database = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "benchbench", "server", "--backend-store-uri", database, "--port", str(port)]
    command += ["--artifacts-destination", str(tmp_path / "served")]
    server = subprocess.Popen(command, env=tagged(tag), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if line.startswith("MLflow tracking server for"):
                break
        served = tmp_path / "served"
        assert (
            line
            == f"MLflow tracking server for {database} at http://127.0.0.1:{port} (artifacts served from {served})\n"
        )
        assert next(server.stdout).startswith(f"run sweeps with: bench run --tracking-uri http://127.0.0.1:{port} ")
        listening = {
            conn.laddr.ip
            for pid in leftovers(tag)
            for conn in psutil.Process(pid).net_connections()
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
        }
        assert listening == {"127.0.0.1"}

        client = MlflowClient(f"http://127.0.0.1:{port}")
        run = client.create_run(client.create_experiment("served"))
        client.log_metric(run.info.run_id, "fisher_divergence", 0.25)
        (tmp_path / "note.txt").write_text("through the server")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        assert [p.name for p in served.rglob("note.txt")] == ["note.txt"]
    finally:
        server.send_signal(signal.SIGINT)
    assert server.wait(timeout=60) == 0
    assert "stopping the MLflow tracking server" in server.stdout.read()
    assert leftovers(tag) == []
    stored = MlflowClient(database).get_run(run.info.run_id)  # in the database, read without the server
    assert stored.data.metrics == {"fisher_divergence": 0.25}


@pytest.mark.slow
def test_a_lost_server_stops_the_sweep_and_keeps_what_was_logged(tmp_path):
    database = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = TrackingServer(database, artifacts_destination=str(tmp_path / "art"), log_path=tmp_path / "log").start()
    tag = uuid.uuid4().hex
    command = [sys.executable, "-m", "benchbench", "run", "-o", "denoising", "-b", "torch", "-d", "gaussian"]
    command += ["--seeds", "8", *TINY, "--executor", "process", "--workers", "2", "--tracking-uri", server.url]
    env = tagged(tag, MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        finished = []
        for line in sweep.stderr:
            if line.startswith("ok "):
                finished.append(line.split()[1])
                if len(finished) == 2:
                    break
    finally:
        server.stop()
    lines = sweep.stderr.readlines()
    assert sweep.wait(timeout=120) == 1
    assert leftovers(tag) == []
    finished += [line.split()[1] for line in lines if line.startswith("ok ")]
    error = lines[-1]
    assert re.fullmatch(
        rf"bench: error: tracking store {server.url} failed while \w+ the \w+ of trial "
        r"denoising/torch/gaussian/seed\d: "
        r"\[Errno 111\] Connection refused \(after 2 retries\); the sweep stopped\. "
        rf"{len(finished)} of 8 trials are finished in the store; run the same command again to run the rest\n",
        error,
    ), error

    client = MlflowClient(database)
    runs = client.search_runs([client.get_experiment_by_name("benchbench").experiment_id])
    complete = {
        run.info.run_name for run in runs if run.info.status == "FINISHED" and "fisher_divergence" in run.data.metrics
    }
    assert set(finished) <= complete
    for run in runs:
        if run.info.run_name in finished:
            assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 20
