"""``bench table``: numbers equal the logged metrics, bold follows the declared direction, every format parses,
failed and skipped trials stay visible, sweep selection (latest, --all, reused runs), plots, and results/."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from benchbench.cli import cli
from benchbench.params import parse_spec
from benchbench.plots import pareto_front, training_seconds
from benchbench.plugins import get_plugins
from benchbench.runner import metric_directions
from benchbench.table import latex_escape
from benchbench.tags import reused_tags

RESULTS = Path(__file__).resolve().parents[1] / "results"
_CLOCK = [1_700_000_000_000]


def bench(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _now() -> int:
    _CLOCK[0] += 1000  # distinct, increasing start times: "latest sweep" must not depend on a millisecond race
    return _CLOCK[0]


class Store:
    """Synthetic trial runs logged straight through MlflowClient, with exactly known numbers."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.client = MlflowClient(uri)
        self.uri, self.name = uri, experiment
        self.experiment_id = self.client.create_experiment(experiment)

    def sweep(self, tags: dict[str, str] | None = None) -> str:
        tags = {"bench.kind": "sweep"} | (tags or {})
        return self.client.create_run(self.experiment_id, run_name="sweep", tags=tags, start_time=_now()).info.run_id

    def trial(
        self,
        parent: str | None,
        objective: str = "denoising",
        dataset: str = "gaussian:dim=2",
        backend: str = "torch",
        seed: int = 0,
        metrics: dict[str, float] | None = None,
        status: str | None = "finished",
        end: str | None = "FINISHED",
        **tags: str,
    ) -> str:
        name = f"{objective}/{backend}/{dataset}/seed{seed}"
        all_tags = {
            "bench.kind": "trial",
            "bench.objective": parse_spec(objective)[0],
            "bench.objective_spec": objective,
            "bench.dataset": dataset,
            "bench.dataset_family": parse_spec(dataset)[0],
            "bench.backend": backend,
            "bench.config_hash": tags.pop("config_hash", name),
            "bench.cpu": "Test CPU",
            "bench.torch_version": "2.13.0",
        } | {f"bench.{k}": v for k, v in tags.items()}
        if status:
            all_tags["bench.status"] = status
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags, start_time=_now()).info.run_id
        params = {"seed": seed, "steps": 100} | {f"dataset.{k}": v for k, v in parse_spec(dataset)[1].items()}
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        if end:
            self.client.set_terminated(run_id, end)
        return run_id

    def table(self, *args: str) -> str:
        result = bench("table", "--tracking-uri", self.uri, "--experiment", self.name, *args)
        assert result.exit_code == 0, result.output
        return result.output


def md_rows(text: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """Parse a markdown table into {(dataset, objective, backend): {header: cell}}."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    assert set(lines[1].strip("|").split("|")) == {"---"}
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        row = dict(zip(header, cells))
        rows[(row["dataset"], row["objective"], row["backend"])] = row
    return rows


# -- two objectives on two datasets, three metrics with both directions --------------------------------------
A1 = {"fisher_divergence": 1.0, "train_steps_per_s": 100.0, "train_step_ms": 8.0, "compile_s": 1.0, "train_time_s": 0.8}
A2 = {"fisher_divergence": 3.0, "train_steps_per_s": 120.0, "train_step_ms": 9.0, "compile_s": 1.0, "train_time_s": 0.9}
B1 = {"fisher_divergence": 0.5, "train_steps_per_s": 50.0, "train_step_ms": 20.0, "compile_s": 2.0, "train_time_s": 2.0}
B2 = {"fisher_divergence": 0.7, "train_steps_per_s": 60.0, "train_step_ms": 21.0, "compile_s": 2.0, "train_time_s": 2.1}
METRICS = ("--metric", "fisher_divergence", "--metric", "train_steps_per_s", "--metric", "train_step_ms")


@pytest.fixture
def two_objectives(tracking_uri, experiment) -> Store:
    store = Store(tracking_uri, experiment)
    parent = store.sweep()
    for seed, (a, b) in enumerate([(A1, B1), (A2, B2)]):
        store.trial(parent, "denoising", seed=seed, metrics=a)
        store.trial(parent, "denoising:sigma=0.5", seed=seed, metrics=b)
        # on the second dataset the roles swap, so bold is decided per dataset
        store.trial(parent, "denoising", "gaussian:dim=16", seed=seed, metrics={"fisher_divergence": 5.0 + seed})
        store.trial(
            parent, "denoising:sigma=0.5", "gaussian:dim=16", seed=seed, metrics={"fisher_divergence": 9.0, "wall_s": 3}
        )
    return store


def test_cells_are_the_logged_numbers_and_bold_follows_the_declared_direction(two_objectives):
    rows = md_rows(two_objectives.table(*METRICS))
    a, b = rows[("gaussian:dim=2", "denoising", "torch")], rows[("gaussian:dim=2", "denoising:sigma=0.5", "torch")]
    fisher_a = np.array([A1["fisher_divergence"], A2["fisher_divergence"]])
    assert a["fisher_divergence ↓"] == f"{fisher_a.mean():.4g} ± {fisher_a.std(ddof=1):.2g}" == "2 ± 1.4"
    assert b["fisher_divergence ↓"] == "**0.6 ± 0.14**"  # lower is better: B
    assert a["train_steps_per_s ↑"] == "**110 ± 14**" and b["train_steps_per_s ↑"] == "55 ± 7.1"  # higher: A
    assert a["train_step_ms ↓"] == "**8.5 ± 0.71**" and b["train_step_ms ↓"] == "20.5 ± 0.71"
    assert a["n"] == b["n"] == "2" and a["status"] == b["status"] == "ok"
    # rank: A is 2nd, 1st, 1st -> 4/3; B is 1st, 2nd, 2nd -> 5/3
    assert (a["rank"], b["rank"]) == ("1.33", "1.67")
    big_a, big_b = (
        rows[("gaussian:dim=16", "denoising", "torch")],
        rows[("gaussian:dim=16", "denoising:sigma=0.5", "torch")],
    )
    assert big_a["fisher_divergence ↓"] == "**5.5 ± 0.71**" and big_b["fisher_divergence ↓"] == "9 ± 0"
    assert big_a["train_steps_per_s ↑"] == "–" and (big_a["rank"], big_b["rank"]) == ("1", "2")


def test_csv_and_json_carry_the_unrounded_numbers(two_objectives):
    directions = metric_directions()
    table = list(csv.DictReader(io.StringIO(two_objectives.table(*METRICS, "--format", "csv"))))
    document = json.loads(two_objectives.table(*METRICS, "--format", "json"))
    assert document["directions"] == {m: directions[m] for m in document["metrics"]}
    assert len(table) == len(document["rows"]) == 4
    for line, record in zip(table, document["rows"]):
        assert line["objective"] == record["objective"] and int(line["n"]) == record["n"] == 2
        for metric, stats in record["metrics"].items():
            if stats["n"]:
                assert float(line[f"{metric}.mean"]) == stats["mean"]
                assert line[f"{metric}.best"] == str(stats["best"])
    by_objective = {r["objective"]: r for r in document["rows"] if r["dataset"] == "gaussian:dim=2"}
    exact = by_objective["denoising:sigma=0.5"]["metrics"]["fisher_divergence"]
    assert exact == {"mean": pytest.approx(0.6, abs=1e-15), "std": np.std([0.5, 0.7], ddof=1), "n": 2, "best": True}
    assert document["environment"] == {"cpu": ["Test CPU"], "torch_version": ["2.13.0"]}


class _Balance(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.cells: list[list[tuple[str, bool]]] = []
        self.strong = False

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if tag == "tr":
            self.cells.append([])
        if tag == "td":
            self.cells[-1].append(("", False))
        self.strong |= tag == "strong"

    def handle_startendtag(self, tag, attrs):
        assert tag in self.VOID, f"self-closing <{tag} />"

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"
        self.strong = self.strong and tag != "strong"

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("td", "strong") and self.cells and self.cells[-1]:
            text, bold = self.cells[-1][-1]
            self.cells[-1][-1] = (text + data, bold or self.strong)


def test_html_is_well_formed_and_marks_the_best_cells(two_objectives):
    page = two_objectives.table(*METRICS, "--format", "html")
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    root = ET.fromstring(page.split("\n", 1)[1])  # strict XML parse of everything after the doctype
    table = root.find(".//table")
    header = [th.text for th in table.findall("./thead/tr/th")]
    assert header[:4] == ["dataset", "objective", "backend", "n"] and header[-2:] == ["rank", "status"]
    body = [row for row in parser.cells if row]
    assert len(body) == 4 and all(len(row) == len(header) for row in body)
    fisher = header.index("fisher_divergence ↓")
    bold = {(row[0][0], row[1][0]) for row in body if row[fisher][1]}
    assert bold == {("gaussian:dim=2", "denoising:sigma=0.5"), ("gaussian:dim=16", "denoising")}


def test_latex_environments_balance_and_rows_have_every_column(two_objectives):
    text = two_objectives.table(*METRICS, "--format", "latex")
    body = [line for line in text.splitlines() if not line.startswith("%")]
    assert re.findall(r"\\(begin|end)\{(\w+)\}", "\n".join(body)) == [("begin", "tabular"), ("end", "tabular")]
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", text).group(1)
    rows = [line for line in body if line.endswith(r"\\")]
    assert len(rows) == 1 + 4  # header and four rows
    for row in rows:
        assert len(re.findall(r"(?<!\\)&", row)) == len(spec) - 1, row
        assert row.count("{") == row.count("}")
    assert r"\textbf{0.6 $\pm$ 0.14}" in text and r"fisher\_divergence $\downarrow$" in text
    assert latex_escape("a_b & 50% {x}") == r"a\_b \& 50\% \{x\}"


def test_failed_skipped_killed_and_running_trials_are_rows_with_their_reason(tracking_uri, experiment):
    store = Store(tracking_uri, experiment)
    parent = store.sweep()
    store.trial(parent, "raises", status="failed", end="FAILED", error="RuntimeError: boom\n  second line")
    store.trial(parent, "raises", seed=1, status="failed", end="FAILED", error="RuntimeError: other")
    store.trial(parent, "sliced", backend="jax", status="skipped", skip_reason="objective 'sliced' has no jax loss")
    store.trial(parent, "denoising", seed=0, metrics={"fisher_divergence": 0.25})
    store.trial(parent, "denoising", seed=1, status="killed", end="KILLED", error="interrupted")
    store.trial(parent, "exact", status=None, end=None)  # a worker that died before logging its status
    rows = md_rows(store.table("--metric", "fisher_divergence"))
    # the first failure's reason, on one line
    assert rows[("gaussian:dim=2", "raises", "torch")]["status"] == "2 failed (RuntimeError: boom second line)"
    assert rows[("gaussian:dim=2", "raises", "torch")]["fisher_divergence ↓"] == "–"
    skipped = rows[("gaussian:dim=2", "sliced", "jax")]
    assert skipped["status"] == "skipped: objective 'sliced' has no jax loss" and skipped["n"] == "0"
    mixed = rows[("gaussian:dim=2", "denoising", "torch")]
    assert (mixed["n"], mixed["status"], mixed["fisher_divergence ↓"]) == ("1", "1 killed (interrupted)", "**0.25**")
    assert rows[("gaussian:dim=2", "exact", "torch")]["status"] == "1 running"
    assert rows[("gaussian:dim=2", "raises", "torch")]["rank"] == "–"


def test_latest_sweep_all_sweeps_and_runs_a_resumed_sweep_reused(tracking_uri, experiment):
    store = Store(tracking_uri, experiment)
    first = store.sweep()
    reused = store.trial(first, "denoising", seed=0, metrics={"fisher_divergence": 1.0}, config_hash="h0")
    store.trial(first, "denoising", seed=1, status="failed", end="FAILED", error="boom", config_hash="h1")
    second = store.sweep(reused_tags([reused]))
    store.trial(second, "denoising", seed=1, metrics={"fisher_divergence": 3.0}, config_hash="h1")
    store.trial(second, "sliced", metrics={"fisher_divergence": 7.0}, config_hash="s0")
    latest = md_rows(store.table("--metric", "fisher_divergence"))
    assert latest[("gaussian:dim=2", "denoising", "torch")]["fisher_divergence ↓"] == "**2 ± 1.4**"  # reused + new
    assert latest[("gaussian:dim=2", "denoising", "torch")]["status"] == "ok"
    only_first = md_rows(store.table("--metric", "fisher_divergence", "--sweep", first))
    assert only_first[("gaussian:dim=2", "denoising", "torch")]["status"] == "1 failed (boom)"
    assert set(only_first) == {("gaussian:dim=2", "denoising", "torch")}
    # --all: one run per config hash, the finished rerun standing for the failed first attempt
    every = md_rows(store.table("--metric", "fisher_divergence", "--all"))
    assert every[("gaussian:dim=2", "denoising", "torch")]["n"] == "2" and len(every) == 2
    assert (
        "no sweep run 'nope'"
        in bench("table", "--tracking-uri", tracking_uri, "--experiment", experiment, "--sweep", "nope").output
    )


def test_filters_match_families_and_labels_in_any_key_order(tracking_uri, experiment):
    store = Store(tracking_uri, experiment)
    parent = store.sweep()
    for objective in ("denoising", "denoising:sigma=0.5", "sliced"):
        for dataset in ("gaussian:cond=10,dim=16", "gmm"):
            store.trial(parent, objective, dataset, metrics={"fisher_divergence": 1.0})
    keys = set(md_rows(store.table("-o", "denoising", "-d", "gaussian:dim=16,cond=10")))
    assert keys == {("gaussian:cond=10,dim=16", o, "torch") for o in ("denoising", "denoising:sigma=0.5")}
    keys = set(md_rows(store.table("-o", "denoising:sigma=0.5", "-o", "sliced", "-d", "gmm")))
    assert keys == {("gmm", "denoising:sigma=0.5", "torch"), ("gmm", "sliced", "torch")}
    empty = bench("table", "--tracking-uri", tracking_uri, "--experiment", experiment, "-b", "jax")
    assert empty.exit_code == 2
    assert f"no trial runs in the latest sweep of experiment '{experiment}'" in empty.output
    assert "match --backend jax" in empty.output


def test_bad_metric_and_missing_experiment_are_usage_errors(two_objectives):
    result = bench(
        "table",
        "--tracking-uri",
        two_objectives.uri,
        "--experiment",
        two_objectives.name,
        "--metric",
        "fisher_divergense",
    )
    assert result.exit_code == 2 and "unknown metric 'fisher_divergense'" in result.output
    assert "did you mean 'fisher_divergence'" in result.output
    result = bench("table", "--tracking-uri", two_objectives.uri, "--experiment", "no-such-experiment")
    assert result.exit_code == 2 and "no experiment 'no-such-experiment'" in result.output


def test_plots_are_written_as_png_per_dataset(two_objectives, tmp_path):
    two_objectives.table(*METRICS, "--plots", str(tmp_path / "plots"))
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == [
        "bars_gaussian_dim_16.png",
        "bars_gaussian_dim_2.png",
        "pareto_gaussian_dim_16.png",
        "pareto_gaussian_dim_2.png",
        "scaling.png",
    ]
    for path in (tmp_path / "plots").iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_training_time_is_compile_plus_training_seconds_else_wall_time():
    runs = pd.DataFrame(
        {
            "metrics.compile_s": [0.5, np.nan],
            "metrics.train_time_s": [1.25, np.nan],
            "metrics.wall_s": [9.0, 4.0],
        }
    )
    assert training_seconds(runs).tolist() == pytest.approx([0.5 + 1.25, 4.0])


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (0.5, 9.0), (5.0, 1.0)]
    assert pareto_front(points) == [(0.5, 9.0), (1.0, 5.0), (2.0, 3.0), (4.0, 1.0)]


@pytest.mark.slow
def test_a_real_sweep_with_a_failed_trial_still_tables(tracking_uri, experiment, tmp_path):
    run = bench(
        "--plugin", "failing_objectives", "run", "-o", "raises", "-o", "denoising", "-b", "torch",
        "-d", "gaussian:dim=2", "--steps", "30", "--width", "16", "--depth", "1",
        "--n-samples", "64", "--sampler", "langevin:n_steps=10",
        "--tracking-uri", tracking_uri, "--experiment", experiment,
    )  # fmt: skip
    assert run.exit_code == 1 and "1 failed" in run.output
    for fmt in ("md", "csv", "html", "latex", "json"):
        out = tmp_path / f"table.{fmt}"
        result = bench(
            "--plugin", "failing_objectives", "table", "--tracking-uri", tracking_uri, "--experiment", experiment,
            "--format", fmt, "--output", str(out), "--plots", str(tmp_path / "plots"),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    rows = md_rows((tmp_path / "table.md").read_text())
    assert (
        rows[("gaussian:dim=2", "raises", "torch")]["status"] == "1 failed (RuntimeError: this objective always raises)"
    )
    finished = rows[("gaussian:dim=2", "denoising", "torch")]
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    [trained] = client.search_runs([exp.experiment_id], "attributes.run_name = 'denoising/torch/gaussian:dim=2/seed0'")
    assert finished["fisher_divergence ↓"] == f"**{trained.data.metrics['fisher_divergence']:.4g}**"
    document = json.loads((tmp_path / "table.json").read_text())
    assert document["environment"]["cpu"] == [trained.data.tags["bench.cpu"]]
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"pareto_gaussian_dim_2.png", "scaling.png"}


# -- results/: regenerated by one command, from a real run ---------------------------------------------------
def test_committed_results_parse_and_name_only_registered_things():
    readme = (RESULTS / "README.md").read_text()
    command = re.search(r"```(?:bash|sh)?\n(.+?)\n```", readme, re.S).group(1).strip()
    assert command == "results/regenerate.sh" and (RESULTS / "regenerate.sh").stat().st_mode & 0o111
    rows = md_rows((RESULTS / "table.md").read_text())
    assert rows, "results/table.md has no rows"
    plugins = get_plugins()
    directions = metric_directions()
    header = next(iter(rows.values())).keys()
    metrics = [
        h.rsplit(" ", 1)[0] for h in header if h not in ("dataset", "objective", "backend", "n", "rank", "status")
    ]
    assert metrics and set(metrics) <= set(directions)
    for dataset, objective, backend in rows:
        assert parse_spec(objective)[0] in plugins.names("objective"), objective
        assert backend in plugins.names("backend") and parse_spec(dataset)[0] in plugins.names("dataset")
    document = json.loads((RESULTS / "table.json").read_text())
    assert {(r["dataset"], r["objective"], r["backend"]) for r in document["rows"]} == set(rows)
    assert document["environment"]["cpu"] and document["environment"]["benchbench_version"]
    for record in document["rows"]:
        for metric, stats in record["metrics"].items():
            cell = rows[(record["dataset"], record["objective"], record["backend"])][
                f"{metric} {'↓' if directions[metric] == 'lower' else '↑'}"
            ]
            if stats["n"]:
                assert cell.strip("*").startswith(f"{stats['mean']:.4g}"), (cell, stats)
                assert cell.startswith("**") == stats["best"]
    plots = {p.name for p in (RESULTS / "plots").iterdir()}
    assert {f"bars_{re.sub(r'[^A-Za-z0-9.-]+', '_', d)}.png" for d, _, _ in rows} <= plots
