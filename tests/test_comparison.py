"""The comparison engine end to end: convergence curves in the store, the sweep's own run holding the comparison,
dataset inputs, convergence plots, and time budgets, through the real CLI on a real sqlite store."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchbench.cli import cli
from benchbench.curves import load_curves
from benchbench.table import load_runs

pytestmark = pytest.mark.slow


def bench(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def runs_of(uri: str, experiment: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("bench.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("bench.kind") == "trial"]
    return client, parents, children


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("comparison")
    uri, experiment = f"sqlite:///{folder / 'mlflow.db'}", "curves"
    result = bench(
        "run", "-o", "denoising", "-o", "sliced", "-b", "torch", "-b", "jax", "-d", "gaussian:dim=2",
        "--seeds", "2", "--steps", "60", "--eval-every", "20", "--n-samples", "100",
        "--tracking-uri", uri, "--experiment", experiment,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return uri, experiment, folder


def test_score_metrics_are_curves_with_the_training_time(sweep):
    uri, experiment, _ = sweep
    client, _, children = runs_of(uri, experiment)
    assert len(children) == 8
    for child in children:
        assert set(child.data.tags["bench.curves"].split(",")) >= {"fisher_divergence", "sm_objective", "train_time_s"}
        fisher = client.get_metric_history(child.info.run_id, "fisher_divergence")
        times = client.get_metric_history(child.info.run_id, "train_time_s")
        assert sorted(m.step for m in fisher) == sorted(m.step for m in times) == [20, 40, 60]
        seconds = [m.value for m in sorted(times, key=lambda m: m.step)]
        assert 0 < seconds[0] < seconds[1] < seconds[2]
        # the last point is the final evaluation, and MLflow's latest value of the metric is that point
        last = max(fisher, key=lambda m: m.step)
        assert child.data.metrics["fisher_divergence"] == pytest.approx(last.value)
        assert child.data.metrics["train_time_s"] == pytest.approx(seconds[-1])
        assert child.data.metrics["steps"] == 60
        assert child.data.tags["bench.threads"]


def test_each_trial_records_its_training_data_as_a_dataset_input(sweep):
    uri, experiment, _ = sweep
    _, _, children = runs_of(uri, experiment)
    digests = {}
    for child in children:
        [dataset_input] = child.inputs.dataset_inputs
        assert dataset_input.dataset.name == "gaussian:dim=2" and dataset_input.dataset.source_type == "benchbench"
        digests.setdefault(child.data.tags["bench.seed"], set()).add(dataset_input.dataset.digest)
    assert all(len(found) == 1 for found in digests.values()), "one digest per seed, whatever the objective"
    assert len({d for found in digests.values() for d in found}) == 2, "the seeds split differently"


def test_the_sweeps_run_holds_the_table_and_plots(sweep):
    uri, experiment, _ = sweep
    client, [parent], _ = runs_of(uri, experiment)
    names = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.md", "comparison.html", "convergence_gaussian_dim_2_fisher_divergence.png"} <= names
    local = client.download_artifacts(parent.info.run_id, "comparison.md")
    table = bench("table", "--tracking-uri", uri, "--experiment", experiment).output
    assert open(local).read() == table, "the attached table is the one bench table regenerates"


def test_bench_table_draws_a_convergence_line_per_objective_and_backend(sweep, tmp_path):
    uri, experiment, _ = sweep
    result = bench("table", "--tracking-uri", uri, "--experiment", experiment, "--plots", str(tmp_path))
    assert result.exit_code == 0, result.output
    written = {p.name for p in tmp_path.iterdir()}
    assert {
        "convergence_gaussian_dim_2_fisher_divergence.png",
        "convergence_gaussian_dim_2_sm_objective.png",
    } <= written
    curves = load_curves(uri, load_runs(uri, experiment))
    lines = set(curves[curves["metric"] == "fisher_divergence"]["line"])
    assert lines == {"denoising / torch", "denoising / jax", "sliced / torch", "sliced / jax"}


def test_a_time_budget_trains_for_that_long_and_says_how_far(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = bench(
        "run", "-o", "denoising", "-b", "torch", "-d", "gaussian:dim=2", "--time-budget", "1.5",
        "--n-samples", "50", "--tracking-uri", uri, "--experiment", "budget",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _, _, [child] = runs_of(uri, "budget")
    metrics = child.data.metrics
    assert 1.5 <= metrics["train_time_s"] < 1.5 + 0.5
    assert metrics["steps"] > 100 and child.data.params["time_budget"] == "1.5"
    assert "steps" in bench("table", "--tracking-uri", uri, "--experiment", "budget", "--metric", "steps").output
