"""End to end: real sweeps against a real sqlite MLflow store, read back run by run."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchbench.cli import cli

pytestmark = pytest.mark.slow


def bench(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def runs_of(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("bench.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("bench.kind") == "trial"]
    return client, parents, children


def test_sweep_is_tracked_and_tabled_from_the_store(tracking_uri, experiment):
    result = bench(
        "run",
        "-o",
        "denoising",
        "-o",
        "denoising:sigma=0.5",
        "-b",
        "torch",
        "-d",
        "gaussian:dim=3",
        "--seeds",
        "2",
        "--steps",
        "60",
        "--tracking-uri",
        tracking_uri,
        "--experiment",
        experiment,
    )
    assert result.exit_code == 0, result.output
    assert "4 trials: 4 finished" in result.output

    client, parents, children = runs_of(tracking_uri, experiment)
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.info.run_name for c in children} == {
        f"{o}/torch/gaussian:dim=3/seed{s}" for o in ("denoising", "denoising:sigma=0.5") for s in (0, 1)
    }
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert re.fullmatch(r"[0-9a-f]{16}", tags["bench.config_hash"])
        assert tags["bench.objective"] == "denoising" and tags["bench.backend"] == "torch"
        assert tags["bench.torch_version"].startswith("2.") and tags["bench.cpu"]
        assert tags["bench.device"] == "cpu"
        assert params["objective.sigma"] in ("0.1", "0.5") and params["dataset.dim"] == "3"
        assert params["steps"] == "60" and params["batch_size"] == "128" and params["seed"] in ("0", "1")
        for name in ("fisher_divergence", "train_steps_per_s", "train_examples_per_s", "compile_s", "wall_s"):
            assert metrics[name] == metrics[name] and metrics[name] >= 0  # present and not NaN
        assert metrics["train_examples_per_s"] == pytest.approx(128 * metrics["train_steps_per_s"])
        # where the wall time went: the parts are measured apart and fit inside it
        parts = ("train_time_s", "compile_s", "checkpoint_eval_s", "metrics_s", "reports_s")
        assert all(metrics[part] > 0 for part in parts)
        assert sum(metrics[part] for part in parts) < metrics["wall_s"]
        assert 0 < metrics["sampling_s"] < metrics["metrics_s"]
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert len(history) == 60 and history[-1].step == 59
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"trial_config.json", "loss_curve.png"} <= artifacts
        config = json.loads(open(client.download_artifacts(child.info.run_id, "trial_config.json")).read())
        assert config["objective_params"]["sigma"] == float(params["objective.sigma"])

    table = bench("table", "--tracking-uri", tracking_uri, "--experiment", experiment)
    assert table.exit_code == 0
    assert table.output in result.output  # the sweep ends by printing the very table the store regenerates
    row = next(line for line in table.output.splitlines() if "| denoising:sigma=0.5 |" in line)
    values = sorted(c.data.metrics["fisher_divergence"] for c in children if c.data.params["objective.sigma"] == "0.5")
    mean = sum(values) / 2
    assert f"{mean:.4g}" in row


def test_loss_history_is_subsampled_to_about_200_points(tracking_uri, experiment):
    result = bench(
        "run",
        "-o",
        "denoising",
        "-b",
        "torch",
        "-d",
        "gaussian",
        "--steps",
        "1000",
        "--tracking-uri",
        tracking_uri,
        "--experiment",
        experiment,
    )
    assert result.exit_code == 0, result.output
    client, _, children = runs_of(tracking_uri, experiment)
    history = client.get_metric_history(children[0].info.run_id, "train_loss")
    assert 190 <= len(history) <= 201 and history[-1].step == 999


def test_failed_and_skipped_trials_are_recorded_and_the_sweep_goes_on(tracking_uri, experiment):
    result = bench(
        "--plugin",
        "failing_objectives",
        "run",
        "-o",
        "nan-loss",
        "-o",
        "raises",
        "-o",
        "wrong-shape",
        "-o",
        "denoising",
        "-b",
        "torch",
        "-b",
        "jax",
        "-d",
        "gaussian",
        "--steps",
        "60",
        "--tracking-uri",
        tracking_uri,
        "--experiment",
        experiment,
    )
    assert result.exit_code == 1
    client, parents, children = runs_of(tracking_uri, experiment)
    by_name = {c.info.run_name: c for c in children}
    assert len(children) == 8 and parents[0].info.status == "FINISHED"

    nan = by_name["nan-loss/torch/gaussian/seed0"]
    assert nan.info.status == "FAILED"
    assert re.search(r"loss became nan at step \d+", nan.data.tags["bench.error"])
    traceback = open(client.download_artifacts(nan.info.run_id, "traceback.txt")).read()
    assert "TrialFailure" in traceback

    raised = by_name["raises/torch/gaussian/seed0"]
    assert raised.info.status == "FAILED"
    assert raised.data.tags["bench.error"] == "RuntimeError: this objective always raises"

    shape = by_name["wrong-shape/torch/gaussian/seed0"]
    assert "objective 'wrong-shape' (torch loss) returned Tensor of shape (128,)" in shape.data.tags["bench.error"]

    skipped = by_name["raises/jax/gaussian/seed0"]
    assert skipped.data.tags["bench.status"] == "skipped"
    assert "has no jax implementation" in skipped.data.tags["bench.skip_reason"]
    assert by_name["denoising/torch/gaussian/seed0"].info.status == "FINISHED"

    assert "3 failed" in result.output
    table = bench("table", "--tracking-uri", tracking_uri, "--experiment", experiment).output
    assert "| gaussian | nan-loss | torch | 0 |" in table and "1 failed (TrialFailure" not in table
    assert "1 failed" in next(line for line in table.splitlines() if "| nan-loss | torch |" in line)
    assert "skipped: objective 'raises' has no jax implementation" in table
