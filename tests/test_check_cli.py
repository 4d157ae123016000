"""``bench check``: the conformance kit from the command line, one row per objective x backend x check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchbench.cli import cli

ROOT = Path(__file__).resolve().parent.parent

BROKEN_PLUGIN = """
from benchbench import hookimpl
from benchbench.params import Param
from benchbench.specs import Objective

def detached_trace(score_fn, x, generator, n_projections=1):
    import torch
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    s, jv = torch.func.jvp(score_fn, (x,), (v,))
    return (0.5 * s.pow(2).sum(1) + (v * jv).sum(1).detach()).mean()

@hookimpl
def register_objectives(register):
    register(Objective("detached-sm", "the trace term cut from the graph",
                       losses={"torch": "h15_broken:detached_trace"}, params=(Param("n_projections", 1, low=1),)))
"""


def bench(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def broken(tmp_path, monkeypatch) -> str:
    (tmp_path / "h15_broken.py").write_text(textwrap.dedent(BROKEN_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "h15_broken"


def test_a_passing_objective_prints_its_rows_and_exits_0():
    result = bench("check", "sliced", "-b", "torch", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {(r["objective"], r["plugin"], r["backend"]) for r in rows} == {("sliced", "objectives", "torch")}
    checks = {r["check"]: r for r in rows}
    for check in ("declaration", "returns", "gradients", "torch.func", "expectation[linear]", "gradient[nonlinear]",
                  "sensitivity[projection=sphere]", "expectation[linear, n_projections=2]"):  # fmt: skip
        assert checks[check]["status"] == "pass", check
    assert (
        checks["expectation[linear]"]["expected"].startswith("J = ")
        and " +- " in checks["expectation[linear]"]["measured"]
    )


def test_the_table_names_every_check_and_says_how_long_the_kit_took():
    result = bench("check", "denoising", "-b", "torch")
    assert result.exit_code == 0, result.output
    for text in ("expectation[linear]", "gradient[linear]", "sensitivity[sigma=0.2]", "J + bias = ", "skip"):
        assert text in result.output, text
    assert "0 fail" in result.output and "Kit time: denoising: torch " in result.output


def test_a_failing_objective_exits_1_with_a_message_naming_objective_plugin_backend_and_check(broken):
    result = bench("--plugin", broken, "check", "detached-sm")
    assert result.exit_code == 1
    assert (
        "bench: check failed: objective 'detached-sm' of plugin 'h15_broken' (distribution (not installed) -), "
        "torch loss, check gradient[linear]: the mean gradient over 100 draws is not the gradient of J"
    ) in result.output
    assert "│ fail " in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (("check", "slicd"), "bench: error: unknown objective 'slicd'; valid: denoising, denoising-multiscale, "
         "diffusion-ve, diffusion-vp, exact, hutchinson, sliced (did you mean 'sliced'?)"),
        (("check", "sliced", "-b", "jx"), "bench: error: --backend jx: unknown backend 'jx'; valid: jax, torch "
         "(did you mean 'jax'?)"),
    ],
)  # fmt: skip
def test_an_unknown_name_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(cli, list(args), env={"BENCHBENCH_PLUGINS": "objectives,torch,jax"})
    assert result.exit_code == 2
    assert result.output.strip() == message


@pytest.mark.slow
def test_bench_check_passes_every_built_in_and_fd_sliced(tmp_path):
    """The whole kit, as a user runs it: every installed objective, both backends, in a fresh process."""
    source = tmp_path / "benchbench-fdssm"
    shutil.copytree(ROOT / "plugins" / "benchbench-fdssm", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "benchbench", "check", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    objectives = {row["objective"] for row in rows}
    assert {"exact", "sliced", "hutchinson", "denoising", "denoising-multiscale", "fd-sliced"} <= objectives
    assert {(o, row["backend"]) for o in ("fd-sliced",) for row in rows if row["objective"] == o} == {
        ("fd-sliced", "torch"),
        ("fd-sliced", "jax"),
    }
    assert {row["status"] for row in rows} <= {"pass", "skip", "warn"}
