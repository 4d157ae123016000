"""No process outlives ``bench run``, ``bench server`` or ``bench ui``, even killed with SIGKILL (which runs no
cleanup): every child server runs under a guard that watches its parent (benchbench.processes), and trial
workers exit when their driver is gone. Each test kills the real command and checks with psutil."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from bench_cli import TINY, Started, survivors, wait_until

pytestmark = pytest.mark.slow

GONE_WITHIN_S = 20  # the guard reacts at once (PR_SET_PDEATHSIG); MLflow's server takes a few s over SIGTERM


def _kill_and_check(started: Started, tree: list) -> None:
    assert tree, "the command started no child process"
    os.kill(started.process.pid, signal.SIGKILL)
    started.finish()
    wait_until(lambda: not survivors(tree), GONE_WITHIN_S)
    assert not survivors(tree), "left running after SIGKILL:\n" + "\n".join(survivors(tree))


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_sigkill_of_bench_server_leaves_no_mlflow_server(tmp_path):
    server = Started(["server", "--port", "0", "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}"], tmp_path)
    port = int(server.wait_for(r"at http://127\.0\.0\.1:(\d+)").group(1))
    _kill_and_check(server, server.tree())
    assert _refused(port)


def test_sigkill_of_a_process_pool_sweep_leaves_no_server_no_worker_and_no_traceback(tmp_path):
    args = ["run", "-o", "denoising", "-o", "sliced", *TINY, "--steps", "1000000", "--executor", "process"]
    sweep = Started(args, tmp_path)
    port = int(sweep.wait_for(r"at http://127\.0\.0\.1:(\d+) \(private").group(1))

    def both_training() -> bool:  # the forkserver and one forked worker per trial
        return sum("multiprocessing.forkserver" in " ".join(p.cmdline()) for p in sweep.tree()) >= 3

    assert wait_until(both_training, 180), sweep.text()
    wait_until(lambda: "steps" in sweep.text(), 5)
    _kill_and_check(sweep, sweep.tree())
    assert _refused(port)
    assert "Traceback" not in sweep.text() and "BrokenPipeError" not in sweep.text(), sweep.text()


def test_sigkill_of_bench_ui_leaves_no_ui(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    MlflowClient(uri).search_experiments()  # builds the store's schema
    ui = Started(["ui", "--port", "0", "--tracking-uri", uri], tmp_path)
    port = int(ui.wait_for(r"at http://127\.0\.0\.1:(\d+)").group(1))
    _kill_and_check(ui, ui.tree())
    assert _refused(port)
