"""Driving the real ``bench`` command as a user does: subprocesses, their output files, their process trees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

TINY = ["-d", "gaussian:dim=2", "-b", "torch", "--steps", "30", "--n-samples", "20", "--width", "8", "--depth", "1"]
"""The smallest trial that still trains and evaluates: a few seconds, most of it imports."""


def bench_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["OMP_NUM_THREADS"] = "1"
    return env | extra


def run(args: list[str], cwd: Path, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    """``bench ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "benchbench", *args],
        cwd=cwd,
        env=bench_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Started:
    """``bench ARGS`` running in the background, its stdout and stderr in files under ``cwd``."""

    def __init__(self, args: list[str], cwd: Path, name: str = "bench", **env: str) -> None:
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchbench", *args], cwd=cwd, env=bench_env(**env), stdout=out, stderr=err
            )

    def text(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match:
        """The first match of ``pattern`` in the output; fails with the output if it exits or times out first."""
        found = wait_until(lambda: re.search(pattern, self.text()) or self.process.poll() is not None, timeout)
        match = re.search(pattern, self.text())
        assert match, f"no {pattern!r} (exit code {self.process.poll()}):\n{self.text()[-3000:]}"
        assert found
        return match

    def tree(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def finish(self, timeout: float = 240) -> int:
        return self.process.wait(timeout=timeout)


def wait_until(predicate: Callable[[], object], timeout: float, every: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def survivors(processes: list[psutil.Process]) -> list[str]:
    """Those of ``processes`` still running (zombies waiting for a parent count as gone), as readable lines."""
    left = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return left


def error_lines(text: str) -> list[str]:
    """The lines a user would read as the answer."""
    return [line for line in text.splitlines() if line.strip() and not _NOISE.search(line)]


# MLflow's and alembic's logging, and click's usage lines around its one-line "Error: ..." (exit 2 all the same)
_NOISE = re.compile(r" INFO |^Usage: |^Try '.* --help' for help\.$")


def stored_runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return list(client.search_runs([found.experiment_id], max_results=1000)) if found else []


def concurrent_sweeps_run_no_trial_twice(folder: Path, args: list[str], uri: str) -> None:
    """Two ``bench run`` of one sweep started together: each finishes it, or stops with one line because the
    other holds the experiment; either way every trial has exactly one finished run."""
    sweeps = [Started(args, folder, name=f"sweep{i}") for i in range(2)]
    codes = [sweep.finish() for sweep in sweeps]
    for sweep, code in zip(sweeps, codes):
        assert "Traceback" not in sweep.text(), sweep.text()
        if code == 1:
            assert error_lines(sweep.err.read_text())[-1].startswith("bench: error: another sweep is running")
        else:
            assert code == 0, sweep.text()
    assert 0 in codes
    trials = [
        stored
        for stored in stored_runs(uri, args[args.index("--experiment") + 1])
        if stored.data.tags["bench.kind"] == "trial"
    ]
    hashes = [run.data.tags["bench.config_hash"] for run in trials]
    assert len(hashes) == len(set(hashes)) == 2 and {run.info.status for run in trials} == {"FINISHED"}
