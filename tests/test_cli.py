"""The bench command line: listing, the trial matrix, and every bad-input error (exit code 2, one line)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from benchbench.cli import cli


def bench(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_list_objectives_table_and_json():
    table = bench("list")
    assert table.exit_code == 0 and "denoising" in table.output and "torch" in table.output
    rows = json.loads(bench("list", "backends", "--json").output)
    assert {"torch", "jax"} <= {row["name"] for row in rows}
    assert all({"name", "plugin", "version", "description", "status"} <= set(row) for row in rows)


def test_list_does_not_import_torch_jax_or_mlflow(subprocess_env):
    code = (
        "import sys, runpy; sys.argv = ['bench', 'list', 'plugins'];\n"
        "try: runpy.run_module('benchbench', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'jax', 'mlflow', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_dry_run_prints_the_trial_matrix():
    result = bench(
        "run",
        "-o",
        "denoising:sigma=0.5",
        "-b",
        "torch",
        "-d",
        "gaussian:dim=3",
        "-d",
        "gaussian",
        "--seeds",
        "2",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("denoising:sigma=0.5/torch/gaussian:dim=3/seed0 ")
    assert lines[-1] == "4 trials (dry run: nothing trained)"
    hashes = {line.split()[1] for line in lines[:-1]}
    assert len(hashes) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "slicd", "-d", "gaussian"], "unknown objective 'slicd'; valid: "),
        (["-o", "denoising", "-d", "gausian"], "(did you mean 'gaussian'?)"),
        (["-o", "denoising", "-d", "gaussian", "-b", "tourch"], "unknown backend 'tourch'; valid: jax, torch"),
        (["-o", "denoising:sigmaa=1", "-d", "gaussian"], "objective 'denoising': unknown parameter 'sigmaa'"),
        (["-o", "denoising:sigma=-1", "-d", "gaussian"], "parameter sigma='-1' is out of range"),
        (["-o", "denoising", "-d", "gaussian:dim=x"], "dataset 'gaussian': parameter dim='x' is not valid"),
        (["-o", "denoising", "-d", "gaussian", "--steps", "0"], "--steps must be at least 1"),
        (["-o", "denoising", "-d", "gaussian", "--sampler", "langevn"], "unknown sampler 'langevn'"),
        (["-o", "denoising", "-d", "gaussian", "--executor", "nope"], "unknown executor 'nope'; valid: "),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    result = subprocess.run(["bench", "run", *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bench: error: ") and message in lines[0]
    assert not (tmp_path / "mlflow.db").exists()  # nothing was tracked


def test_missing_objective_is_a_usage_error():
    result = bench("run", "-d", "gaussian")
    assert result.exit_code == 2 and "give at least one -o/--objective" in result.output


def test_unreachable_tracking_server_fails_before_training(tmp_path):
    result = subprocess.run(
        [
            "bench",
            "run",
            "-o",
            "denoising",
            "-b",
            "torch",
            "-d",
            "gaussian",
            "--steps",
            "5",
            "--tracking-uri",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert "bench: error: tracking store http://127.0.0.1:9 is unreachable" in result.stderr
    assert "ok  " not in result.stderr and not (tmp_path / "mlruns").exists()
