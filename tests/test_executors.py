"""Executors on real components: a process pool and Ray (a cluster started here, and a local instance that
``bench run`` starts itself), logging to real ``mlflow server`` processes on 127.0.0.1, read back run by run.

Every ``bench run`` here is a subprocess carrying a unique ``BENCH_TEST_TAG`` in its environment: every
process it starts inherits it, so after it exits the tests check that none is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from benchbench_executors.ray_tasks import _check_cluster
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchbench.cli import cli
from benchbench.deadlines import TrialTimeout, deadline
from benchbench.errors import UsageError
from benchbench.processes import free_port
from benchbench.runner import TrialJob
from benchbench.server import TrackingServer
from benchbench.trial import Settings, Trial

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
TINY = ["--steps", "20", "--n-samples", "50", "--width", "16", "--depth", "1", "--sampler", "langevin:n_steps=10"]
TWELVE = ["-o", "denoising", "-o", "denoising:sigma=0.5", "-b", "torch", "-d", "gaussian", "--seeds", "6", *TINY]
METRICS = {"fisher_divergence", "sm_objective", "mmd", "train_step_ms", "compile_s", "wall_s", "samples_per_s"}


def tagged_env(tag: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(FIXTURES), BENCH_TEST_TAG=tag, RAY_USAGE_STATS_ENABLED="0")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def processes_tagged(tag: str) -> list[str]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("BENCH_TEST_TAG") == tag:
                found.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            continue
    return found


def bench(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``bench ARGS`` in a subprocess in ``cwd`` (where a sqlite store keeps its artifacts); afterwards no
    process it started may be left."""
    tag = uuid.uuid4().hex
    env = tagged_env(tag) | (env_extra or {})
    command = [sys.executable, "-m", "benchbench", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert processes_tagged(tag) == [], "processes left behind"
    return result


def trial_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return [run for run in runs if run.data.tags.get("bench.kind") == "trial"]


def assert_one_complete_run_per_trial(uri: str, experiment: str, names: set[str], steps: int = 20) -> None:
    """Exactly one FINISHED run per trial, and every value a trial logs is there."""
    client = MlflowClient(uri)
    runs = [run for run in trial_runs(uri, experiment) if run.info.run_name in names]
    assert sorted(run.info.run_name for run in runs) == sorted(names)
    assert len({run.data.tags["bench.config_hash"] for run in runs}) == len(names)
    for run in runs:
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags.get("bench.error"))
        assert run.data.tags["bench.status"] == "finished"
    keys = {frozenset(run.data.metrics) for run in runs}
    assert len(keys) == 1 and METRICS <= set(next(iter(keys))), keys  # the same metrics in every run
    for run in runs:
        assert run.data.params["steps"] == str(steps)
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == steps
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"trial_config.json", "loss_curve.png"} <= artifacts


def twelve_names() -> set[str]:
    return {f"{o}/torch/gaussian/seed{s}" for o in ("denoising", "denoising:sigma=0.5") for s in range(6)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server`` (sqlite database, served artifacts) on 127.0.0.1, shared by the module."""
    folder = tmp_path_factory.mktemp("server")
    tracking = TrackingServer(
        f"sqlite:///{folder / 'mlflow.db'}", artifacts_destination=str(folder / "artifacts"), log_path=folder / "log"
    )
    with tracking:
        yield tracking
    assert not tracking.running()


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster (``ray start --head --block``), started and stopped here, with token auth."""
    tag = uuid.uuid4().hex
    # The cluster's token, given to the node and to the driver; without it (a fresh machine has no
    # ~/.ray/auth_token) `ray start` refuses to start in token mode.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
    env = tagged_env(tag) | auth
    port = free_port()
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port)]
    command += ["--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]
    command += ["--dashboard-agent-listen-port", str(free_port())]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail(f"ray start exited with code {process.wait()}")
        yield f"127.0.0.1:{port}", auth
    finally:
        # SIGTERM to `ray start --block` alone shuts the node down in order (measured: ~5 s); signalling the
        # whole tree at once makes each process wait out its own drain timeout (~30 s).
        tree = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        process.terminate()
        process.wait(timeout=60)
        psutil.wait_procs(tree, timeout=30)
    assert processes_tagged(tag) == [], "Ray processes left behind"


def test_process_pool_sweep_logs_every_value_through_a_server(server, tmp_path):
    result = bench(
        "run", *TWELVE, "--executor", "process", "--workers", "2", "--tracking-uri", server.url, cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "12 trials: 12 finished" in result.stdout
    assert_one_complete_run_per_trial(server.url, "benchbench", twelve_names())
    assert server.running()


def test_a_dead_worker_and_timeouts_fail_only_their_trial(server, tmp_path):
    """SIGKILL in one worker (what the out-of-memory killer sends), a trial past its --timeout that stops
    itself, and one deaf to its alarm that the pool kills: each FAILED with its reason, the rest goes on."""
    result = bench(
        "--plugin", "slow_objectives", "run",
        "-o", "dies", "-o", "sleepy:seconds=1", "-o", "deaf", "-o", "denoising", "-b", "torch", "-d", "gaussian",
        *TINY, "--timeout", "8", "--executor", "process", "--workers", "2",
        "--tracking-uri", server.url, "--experiment", "faults", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "4 trials: 1 finished, 3 failed" in result.stdout
    runs = {run.info.run_name: run for run in trial_runs(server.url, "faults")}
    assert len(runs) == 4
    died = runs["dies/torch/gaussian/seed0"]
    assert died.info.status == "FAILED"
    assert died.data.tags["bench.error"] == "worker process died (signal 9, SIGKILL; out of memory?)"
    slow = runs["sleepy:seconds=1/torch/gaussian/seed0"]
    assert slow.info.status == "FAILED"
    assert slow.data.tags["bench.error"] == "timeout: the trial ran longer than its --timeout of 8 s"
    deaf = runs["deaf/torch/gaussian/seed0"]
    assert deaf.info.status == "FAILED" and deaf.data.tags["bench.error"].startswith("timeout: ")
    assert "its worker process was killed" in deaf.data.tags["bench.error"]
    assert runs["denoising/torch/gaussian/seed0"].info.status == "FINISHED"
    assert "FAIL dies/torch/gaussian/seed0  worker process died (signal 9" in result.stderr


def test_ray_cluster_sweep_logs_every_value_through_a_server(server, ray_cluster, tmp_path):
    address, env = ray_cluster
    result = bench(
        "run", *TWELVE, "--executor", "ray", "--address", address, "--tracking-uri", server.url,
        "--experiment", "ray", cwd=tmp_path, env_extra=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "12 trials: 12 finished" in result.stdout
    assert_one_complete_run_per_trial(server.url, "ray", twelve_names())


def test_ray_local_instance_fails_dead_and_late_trials_and_stops_with_the_sweep(server, tmp_path):
    """No --address: ``bench run`` starts a small Ray instance of its own, and it is gone when the sweep ends
    (``bench`` asserts that no process it started is left). A task whose worker is killed and one past its
    timeout end FAILED with their reasons; the other trial finishes."""
    result = bench(
        "--plugin", "slow_objectives", "run", "-o", "sleepy:seconds=2", "-o", "dies", "-o", "denoising",
        "-b", "torch", "-d", "gaussian", *TINY, "--timeout", "20", "--executor", "ray",
        "--tracking-uri", server.url, "--experiment", "ray-local", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    runs = {run.info.run_name: run for run in trial_runs(server.url, "ray-local")}
    timed_out = runs["sleepy:seconds=2/torch/gaussian/seed0"]
    assert timed_out.info.status == "FAILED"
    assert timed_out.data.tags["bench.error"] == "timeout: the trial ran longer than its --timeout of 20 s"
    died = runs["dies/torch/gaussian/seed0"]
    assert died.info.status == "FAILED" and died.data.tags["bench.error"].startswith("Ray worker died (")
    assert_one_complete_run_per_trial(server.url, "ray-local", {"denoising/torch/gaussian/seed0"})


def test_local_executor_enforces_the_timeout_and_disarms_it(tracking_uri, experiment):
    """In-process: the first trial warms the imports up, the second overruns, the third must not inherit its
    alarm (nor a module half-imported when the alarm fired)."""
    result = CliRunner().invoke(
        cli,
        ["--plugin", "slow_objectives", "run", "-o", "denoising", "-o", "sleepy:seconds=0.5",
         "-o", "denoising:sigma=0.5", "-b", "torch", "-d", "gaussian", *TINY, "--timeout", "6",
         "--tracking-uri", tracking_uri, "--experiment", experiment],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    runs = {run.info.run_name: run for run in trial_runs(tracking_uri, experiment)}
    slow = runs["sleepy:seconds=0.5/torch/gaussian/seed0"]
    assert slow.info.status == "FAILED"
    assert slow.data.tags["bench.error"] == "timeout: the trial ran longer than its --timeout of 6 s"
    after = runs["denoising:sigma=0.5/torch/gaussian/seed0"]
    assert after.info.status == "FINISHED", after.data.tags.get("bench.error")


class TwoNodeRay:
    """What ``_check_cluster`` asks Ray: this node's address and the cluster's nodes (here, two)."""

    class util:  # noqa: N801 - mirrors ray.util
        @staticmethod
        def get_node_ip_address() -> str:
            return "10.0.0.1"

    @staticmethod
    def nodes() -> list[dict]:
        return [{"NodeManagerAddress": "10.0.0.1", "Alive": True}, {"NodeManagerAddress": "10.0.0.2", "Alive": True}]


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "http://127.0.0.1:5000", "http://localhost:5000"])
def test_a_cluster_refuses_a_store_its_other_nodes_cannot_reach(uri):
    job = TrialJob(Trial("denoising", {}, "torch", "gaussian", {}, 0, Settings()), uri, "1", "parent")
    with pytest.raises(
        UsageError, match=r"is local to this machine, but the Ray cluster has other nodes \(10\.0\.0\.2\)"
    ):
        _check_cluster(TwoNodeRay, [job])


def test_the_timeout_waits_for_an_import_to_finish():
    """An import cut short would leave a half-initialised module for every later trial in the process."""
    sys.modules.pop("slow_import", None)
    start = time.monotonic()
    with pytest.raises(TrialTimeout), deadline(0.2):
        import slow_import  # noqa: F401 - sleeps 1 s while importing

        time.sleep(5)
    assert sys.modules["slow_import"].DONE
    assert 1.0 <= time.monotonic() - start < 3.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "local", "--workers", "2"], "executor 'local': unknown parameter 'workers'"),
        (["--executor", "process:workers=2", "--workers", "3"], "executor 'process': workers given twice"),
        (["--executor", "process", "--workers", "0"], "parameter workers=0 is out of range"),
        (["--timeout", "0"], "--timeout"),
    ],
)
def test_bad_executor_options_exit_2_before_anything_runs(args, message, tmp_path):
    result = CliRunner().invoke(
        cli, ["run", "-o", "denoising", "-d", "gaussian", *args, "--tracking-uri", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "x.db").exists()
