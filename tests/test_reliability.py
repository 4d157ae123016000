"""Bad input and faults through the real ``bench`` command: one clear line, the right exit code, nothing written
to the store; concurrent sweeps run no trial twice; a sweep killed mid-way leaves no run RUNNING after the next.
"""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bench_cli import TINY, Started, concurrent_sweeps_run_no_trial_twice, error_lines, run, stored_runs, wait_until

from benchbench.store import check_uri

RUN = ["run", "-o", "denoising", *TINY]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Bad data files, as users have them."""
    folder = tmp_path_factory.mktemp("files")
    (folder / "empty.npz").write_bytes(b"")
    (folder / "text.npz").write_text("1.0 2.0\n3.0 4.0\n")
    (folder / "corrupt.npz").write_bytes(b"PK\x03\x04" + os.urandom(64))
    np.savez(folder / "flat.npz", x=np.zeros(50))
    np.save(folder / "array.npy", np.zeros((50, 2)))
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    (folder / "huge-idx").write_bytes(header + b"\0" * 16)
    (folder / "short-idx.gz").write_bytes(gzip.compress(struct.pack(">BBBBII", 0, 0, 0x08, 2, 10, 10) + b"\0" * 7))
    (folder / "afile").write_text("not a folder")
    return folder


BAD_INPUT = {
    # tracking URIs (issue 17, item 1), and a database URI whose driver is not installed
    "malformed-uri": (RUN + ["--tracking-uri", "http://["], "is malformed"),
    "unknown-scheme": (RUN + ["--tracking-uri", "foo://bar"], "is not a tracking store"),
    "a-path-not-a-uri": (RUN + ["--tracking-uri", "not a uri"], "write sqlite:///PATH"),
    "sqlite-under-a-file": (RUN + ["--tracking-uri", "sqlite:///{files}/afile/m.db"], "is a file, not a folder"),
    "sqlite-a-folder": (RUN + ["--tracking-uri", "sqlite:///{files}"], "is a folder"),
    "sqlite-not-a-database": (RUN + ["--tracking-uri", "sqlite:///{files}/afile"], "is not a sqlite database"),
    "sqlite-in-memory": (RUN + ["--tracking-uri", "sqlite://"], "keeps nothing"),
    "port-out-of-range": (RUN + ["--tracking-uri", "http://127.0.0.1:99999"], "Port out of range"),
    "missing-db-driver": (RUN + ["--tracking-uri", "mysql://u@127.0.0.1/x"], "needs the database driver"),
    # names and settings (items 5 and 7)
    "empty-experiment": (RUN + ["--experiment", ""], "the experiment name is empty"),
    "long-experiment": (RUN + ["--experiment", "x" * 501], "MLflow allows at most 500"),
    "lr-inf": (RUN + ["--lr", "inf"], "--lr must be a positive finite number"),
    "timeout-inf": (RUN + ["--timeout", "inf"], "--timeout"),
    "plugin-import": (["--plugin", "no_such_module_xyz", "list"], "--plugin no_such_module_xyz: failed to import"),
    # the user's data files, found when the matrix is built (item 4)
    "npz-missing": (["run", "-o", "denoising", "-d", "npz:path={files}/none.npz"], "no such file"),
    "npz-folder": (["run", "-o", "denoising", "-d", "npz:path={files}"], "is a folder"),
    "npz-empty": (["run", "-o", "denoising", "-d", "npz:path={files}/empty.npz"], "the file is empty"),
    "npz-text": (["run", "-o", "denoising", "-d", "npz:path={files}/text.npz"], "it is a text file"),
    "npz-corrupt": (["run", "-o", "denoising", "-d", "npz:path={files}/corrupt.npz"], "not a readable .npz"),
    "npz-shape": (["run", "-o", "denoising", "-d", "npz:path={files}/flat.npz"], "expected numbers of shape"),
    "npy-not-npz": (["run", "-o", "denoising", "-d", "npz:path={files}/array.npy"], "a single .npy array"),
    "idx-overflow": (["run", "-o", "denoising", "-d", "idx:path={files}/huge-idx"], "corrupt IDX file"),
    "idx-truncated": (["run", "-o", "denoising", "-d", "idx:path={files}/short-idx.gz"], "corrupt IDX file"),
    # servers (item 5, and inputs of our own)
    "server-port": (["server", "--port", "70000"], "70000 is not in the range"),
    "server-uri": (["server", "--backend-store-uri", "foo://bar"], "is not a tracking store"),
    "server-artifacts": (["server", "--artifacts-destination", "foo://x"], "unknown artifact store 'foo'"),
    "server-host": (["server", "--host", "8.8.8.8", "--port", "5999"], "not an address of this machine"),
    "ui-port": (["ui", "--port", "70000"], "70000 is not in the range"),
    "ui-on-a-server": (["ui", "--tracking-uri", "http://127.0.0.1:1"], "serves its own UI"),
    "table-in-an-empty-folder": (["table"], "no tracking store at"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, files, tmp_path):
    args, expected = BAD_INPUT[case]
    result = run([arg.replace("{files}", str(files)) for arg in args], tmp_path)
    lines = error_lines(result.stderr)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir()), "wrote " + ", ".join(p.name for p in tmp_path.iterdir())


def test_unreachable_server_is_one_line_within_seconds(tmp_path):
    start = time.monotonic()
    result = run(["table", "--tracking-uri", "http://127.0.0.1:9"], tmp_path, timeout=60)
    assert time.monotonic() - start < 30  # was ~250 s of retries and several tracebacks
    assert result.returncode == 1 and error_lines(result.stderr) == [
        "bench: error: tracking store http://127.0.0.1:9 is unreachable at 127.0.0.1:9: Connection refused"
    ]


def test_check_uri_accepts_what_a_user_means(tmp_path):
    assert check_uri(f"sqlite:///{tmp_path}/new/sub/m.db") == f"sqlite:///{tmp_path}/new/sub/m.db"
    assert check_uri("sqlite:///relative.db", reach=False) == "sqlite:///relative.db"
    assert check_uri("https://mlflow.example.org", reach=False)


def test_bench_server_on_a_busy_port_says_so_at_once(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        result = run(["server", "--port", str(port)], tmp_path, timeout=60)
    assert time.monotonic() - start < 20  # was ~30 s and a misleading health-check timeout
    assert result.returncode == 2 and f"127.0.0.1:{port} is not free" in result.stderr


@pytest.mark.slow
def test_bench_server_on_every_interface_warns_it_has_no_authentication(tmp_path):
    server = Started(["server", "--host", "0.0.0.0", "--port", "0", "--backend-store-uri", "sqlite:///m.db"], tmp_path)
    try:
        server.wait_for("has no authentication", timeout=60)
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.finish(60)


PLUGIN = """
from benchbench import hookimpl
from benchbench.specs import Objective

@hookimpl
def register_objective(register):  # misspelled: the hook is register_objectives
    pass

@hookimpl
def register_objectives(register):
    register(Objective("denoising", "a copy under a built-in's name", losses={"torch": "x:y"}))
"""


def test_plugin_mistakes_are_said_in_one_line_each(tmp_path):
    (tmp_path / "sloppy_plugin.py").write_text(PLUGIN)
    result = run(["--plugin", "sloppy_plugin", "list", "plugins", "--json"], tmp_path, PYTHONPATH=_path(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 2, lines
    assert "hook implementation 'register_objective' matches no benchbench hook" in lines[0] + lines[1]
    assert "did you mean 'register_objectives'?" in lines[0] + lines[1]
    assert "its objective 'denoising' is ignored: the name belongs to the built-in" in lines[0] + lines[1]
    assert '"status": "conflict"' in result.stdout
    objectives = run(["--plugin", "sloppy_plugin", "list", "objectives"], tmp_path, PYTHONPATH=_path(tmp_path))
    assert "denoising" in objectives.stdout  # the built-in still works


def _path(folder: Path) -> str:
    return os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])


@pytest.mark.slow
def test_two_sweeps_at_once_on_a_new_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    args = ["run", "-o", "denoising", "-o", "sliced", *TINY, "--tracking-uri", uri, "--experiment", "both"]
    concurrent_sweeps_run_no_trial_twice(tmp_path, args, uri)


@pytest.mark.slow
def test_the_next_sweep_closes_runs_a_killed_sweep_left_running(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    killed = Started(["run", "-o", "denoising", *TINY, "--steps", "1000000", "--tracking-uri", uri], tmp_path)

    def trial_running() -> bool:
        """Read with sqlite itself: an MLflow client would race the sweep building the new store's schema."""
        if killed.process.poll() is not None:
            return True
        try:
            with sqlite3.connect(f"file:{tmp_path / 'm.db'}?mode=ro", uri=True) as db:
                query = "select count(*) from tags where key = 'bench.kind' and value = 'trial'"
                return db.execute(query).fetchone()[0] > 0
        except sqlite3.Error:
            return False

    assert wait_until(trial_running, 180, every=1) and killed.process.poll() is None, killed.text()
    os.kill(killed.process.pid, signal.SIGKILL)
    killed.finish()
    result = run(["run", "-o", "denoising", *TINY, "--tracking-uri", uri], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "closed 2 runs left RUNNING by a sweep that died" in result.stderr  # the trial and its sweep
    runs = {run.info.run_id: run for run in stored_runs(uri, "benchbench")}
    assert "RUNNING" not in {run.info.status for run in runs.values()}
    stale = [run for run in runs.values() if run.data.tags.get("bench.error", "").startswith("stale: ")]
    assert {run.data.tags["bench.kind"] for run in stale} == {"trial", "sweep"}
    assert {run.info.status for run in stale} == {"KILLED"}


def test_bench_module_runs_the_guard():
    """The guard is ``python -m benchbench.processes PID CMD``: it returns the command's exit code."""
    result = subprocess.run(
        [sys.executable, "-m", "benchbench.processes", str(os.getpid()), sys.executable, "-c", "raise SystemExit(3)"],
        timeout=60,
    )
    assert result.returncode == 3


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cuda", "gpu"])
def test_an_absent_accelerator_is_bad_input(device, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = run(["run", "-o", "denoising", *TINY, "--device", device], tmp_path)
    assert result.returncode == 2 and error_lines(result.stderr) == [
        f"bench: error: --device {device}: torch sees no CUDA device on this machine"
    ], result.stderr
    assert not list(tmp_path.iterdir())
