"""Comparison tables regenerated from the tracking store, never from memory.

One row per (dataset, objective, backend). Each metric cell is ``mean ± std`` over the finished seeds (the
sample standard deviation, ddof=1); the best mean per dataset and metric is bold in the direction the metric
declares; ``rank`` is the row's mean rank over the shown metrics within its dataset. Trials that failed,
were skipped or killed stay in the table with their reason: a row with no finished trial is still a row.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchbench.errors import UsageError
from benchbench.params import format_spec, parse_spec
from benchbench.plugins import Plugins
from benchbench.tags import (
    BACKEND,
    CONFIG_HASH,
    DATASET,
    DATASET_FAMILY,
    ERROR,
    FAILED,
    FINISHED,
    KILLED,
    KIND,
    KIND_SWEEP,
    KIND_TRIAL,
    OBJECTIVE,
    OBJECTIVE_SPEC,
    PREFIX,
    SKIP_REASON,
    SKIPPED,
    STATUS,
    column,
    reused_run_ids,
)

KEYS = ("dataset", "objective", "backend")
RANK_RULE = (
    "rank: the row's rank within its dataset (1 = best, ties share the better rank) for each shown metric "
    "with a declared direction, averaged over the metrics the row has"
)
ENVIRONMENT_TAGS = (
    "cpu",
    "cpu_count",
    "device",
    "platform",
    "python_version",
    "torch_version",
    "jax_version",
    "numpy_version",
    "mlflow_version",
    "benchbench_version",
    "git_commit",
)
_ARROWS = {"lower": "↓", "higher": "↑"}
_MLFLOW_STATUS = {"FINISHED": FINISHED, "FAILED": FAILED, "KILLED": KILLED}


def load_runs(tracking_uri: str, experiment: str, sweep: str | None = "latest") -> pd.DataFrame:
    """The trial runs of ``experiment`` in the order they started, one per trial identity (config hash).

    ``sweep`` is a parent run id, ``"latest"`` (the sweep started last) or None (every trial of the experiment).
    A sweep's trials are its child runs plus the finished runs of earlier sweeps it reused when resuming (its
    ``bench.reused_runs.*`` tags, read by :func:`benchbench.tags.reused_run_ids`). When the same config hash
    ran more than once (``--all``, or a rerun), the finished run started last stands for it.
    """
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            raise UsageError(f"no experiment {experiment!r} in {tracking_uri}")
        runs = mlflow.search_runs([found.experiment_id], output_format="pandas", max_results=50000)
    finally:
        mlflow.set_tracking_uri(previous)
    if runs.empty or column(KIND) not in runs:
        return runs.iloc[0:0]
    sweeps = runs[runs[column(KIND)] == KIND_SWEEP].sort_values("start_time")
    trials = runs[runs[column(KIND)] == KIND_TRIAL]
    if sweep == "latest":
        sweep = sweeps["run_id"].iloc[-1] if len(sweeps) else None
    if sweep is not None:
        parent = sweeps[sweeps["run_id"] == sweep]
        if parent.empty:
            raise UsageError(f"no sweep run {sweep!r} in experiment {experiment!r}; valid: {', '.join(sweeps.run_id)}")
        reused = reused_run_ids(parent.iloc[0].dropna().to_dict())
        trials = trials[(trials["tags.mlflow.parentRunId"] == sweep) | trials["run_id"].isin(reused)]
    return latest_per_config(trials).sort_values("start_time", kind="stable").reset_index(drop=True)


def trial_status(runs: pd.DataFrame) -> pd.Series:
    """``bench.status`` (finished, failed, skipped, killed); for a run without it (a worker that died before
    logging it), MLflow's own run status, so such a run shows as running or failed rather than vanishing."""
    fallback = runs["status"].map(_MLFLOW_STATUS).fillna("running") if "status" in runs else "running"
    if column(STATUS) not in runs:
        return pd.Series(fallback, index=runs.index)
    return runs[column(STATUS)].fillna(fallback)


def latest_per_config(trials: pd.DataFrame) -> pd.DataFrame:
    """One run per ``bench.config_hash``: a finished one if any, the one started last among equals."""
    if trials.empty or column(CONFIG_HASH) not in trials:
        return trials
    finished = (trial_status(trials) == FINISHED).astype(int)
    order = trials.assign(_finished=finished).sort_values(["_finished", "start_time"])
    keyed = order[column(CONFIG_HASH)].notna()
    kept = pd.concat([order[keyed].drop_duplicates(column(CONFIG_HASH), keep="last"), order[~keyed]])
    return kept.drop(columns="_finished").sort_index()


def select(
    runs: pd.DataFrame, objectives: Sequence[str] = (), backends: Sequence[str] = (), datasets: Sequence[str] = ()
) -> pd.DataFrame:
    """Keep the runs matching every given filter. A name matches a whole family (``gaussian``, ``denoising``) or
    one labelled choice (``gaussian:dim=16,cond=10``, its keys in any order, as ``bench run`` takes it)."""
    keep = pd.Series(True, index=runs.index)
    for wanted, tags in (
        (objectives, (OBJECTIVE, OBJECTIVE_SPEC)),
        (backends, (BACKEND,)),
        (datasets, (DATASET_FAMILY, DATASET)),
    ):
        if wanted:
            labels = {format_spec(*parse_spec(text)) for text in wanted}
            present = [runs[column(tag)] for tag in tags if column(tag) in runs]
            keep &= np.logical_or.reduce([values.isin(labels) for values in present]) if present else False
    return runs[keep]


def summarise(runs: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (dataset, objective, backend): ``n`` finished seeds, ``status``, ``rank``, mean/std/n per metric."""
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=[*KEYS, "n", "status", "rank"])
    keyed = runs.assign(
        dataset=runs[column(DATASET)], objective=runs[column(OBJECTIVE_SPEC)], backend=runs[column(BACKEND)]
    )
    for key, group in keyed.groupby(list(KEYS), sort=True):
        status = trial_status(group)
        finished = group[status == FINISHED]
        row = dict(zip(KEYS, key), n=len(finished), status=_status_text(group, status))
        for metric in metrics:
            key = f"metrics.{metric}"
            values = finished[key].dropna().to_numpy(float) if key in finished else np.array([])
            row[f"{metric}.mean"] = values.mean() if values.size else np.nan
            row[f"{metric}.std"] = values.std(ddof=1) if values.size > 1 else (0.0 if values.size else np.nan)
            row[f"{metric}.n"] = values.size
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["rank"] = mean_rank(summary, metrics, directions or {})
    return summary


def _status_text(group: pd.DataFrame, status: pd.Series) -> str:
    """``ok``, or each unfinished status with its count and the first reason its runs recorded."""
    parts = []
    for name, reason_tag in ((SKIPPED, SKIP_REASON), (FAILED, ERROR), (KILLED, ERROR), ("running", "")):
        chosen = group[status == name]
        if chosen.empty:
            continue
        key = column(reason_tag) if reason_tag else ""
        reasons = chosen[key].dropna() if key in chosen else ()
        reason = " ".join(str(reasons.iloc[0]).split()) if len(reasons) else ""  # one line, whatever was raised
        if name == SKIPPED and reason:
            parts.append(f"skipped: {reason}")
        else:
            parts.append(f"{len(chosen)} {name}" + (f" ({reason[:80]})" if reason else ""))
    return "; ".join(parts) if parts else "ok"


def mean_rank(summary: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, str]) -> pd.Series:
    """See :data:`RANK_RULE`; NaN for a row with no ranked metric (nothing finished)."""
    ranked = [
        summary[f"{m}.mean"].groupby(summary["dataset"]).rank(method="min", ascending=directions[m] == "lower")
        for m in metrics
        if m in directions and f"{m}.mean" in summary
    ]
    if not ranked:
        return pd.Series(np.nan, index=summary.index)
    return pd.concat(ranked, axis=1).mean(axis=1, skipna=True)


def best_rows(summary: pd.DataFrame, metric: str, direction: str) -> set[int]:
    """Index labels of the best mean per dataset for ``metric`` in its direction (every tied row)."""
    best: set[int] = set()
    column = f"{metric}.mean"
    for _, group in summary.groupby("dataset"):
        values = group[column].dropna()
        if values.empty:
            continue
        target = values.min() if direction == "lower" else values.max()
        best.update(values.index[np.isclose(values, target, rtol=1e-12, atol=0)])
    return best


def environment(runs: pd.DataFrame) -> dict[str, list[str]]:
    """The hardware and versions the runs recorded (``bench.cpu``, ``bench.torch_version``, ...): distinct values."""
    found = {}
    for name in ENVIRONMENT_TAGS:
        key = column(PREFIX + name)
        if key in runs:
            values = sorted({str(v) for v in runs[key].dropna()})
            if values:
                found[name] = values
    return found


@dataclass
class Table:
    """A summary ready to render: which metrics are shown, their directions, the bold cells and the provenance."""

    summary: pd.DataFrame
    metrics: list[str]
    directions: Mapping[str, str]
    environment: dict[str, list[str]] = field(default_factory=dict)
    sweeps: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.best = {m: best_rows(self.summary, m, self.directions[m]) for m in self.metrics if m in self.directions}

    @classmethod
    def from_runs(cls, runs: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, str]) -> Table:
        """Metrics no row has a value for are left out (they rank no row, so the rank is the same)."""
        summary = summarise(runs, metrics, directions)
        shown = [m for m in metrics if f"{m}.n" in summary and summary[f"{m}.n"].sum() > 0]
        sweeps = sorted(set(runs["tags.mlflow.parentRunId"].dropna())) if "tags.mlflow.parentRunId" in runs else []
        return cls(summary, shown, directions, environment(runs), sweeps)

    def header(self) -> list[str]:
        labels = [f"{m} {_ARROWS.get(self.directions.get(m, ''), '')}".strip() for m in self.metrics]
        return [*KEYS, "n", *labels, "rank", "status"]

    def cells(self) -> list[list[tuple[str, bool]]]:
        """Each row as (text, bold) cells in :meth:`header` order."""
        rows = []
        for index, row in self.summary.iterrows():
            cells = [(str(row[k]), False) for k in KEYS] + [(str(row["n"]), False)]
            for metric in self.metrics:
                text = format_cell(row[f"{metric}.mean"], row[f"{metric}.std"], row[f"{metric}.n"], row["n"])
                cells.append((text, index in self.best.get(metric, ()) and text != "–"))
            cells.append(("–" if pd.isna(row["rank"]) else f"{row['rank']:.3g}", False))
            cells.append((str(row["status"]), False))
            rows.append(cells)
        return rows

    def legend(self) -> list[str]:
        lines = [
            "Cells: mean ± std over the n finished seeds ((n=k): the metric exists for k of them). "
            "Bold: best per dataset (↓ lower, ↑ higher is better). " + RANK_RULE + ".",
        ]
        if self.environment:
            lines.append("Measured on: " + environment_text(self.environment) + ".")
        return lines


def environment_text(found: Mapping[str, list[str]]) -> str:
    """``cpu Intel Xeon; cores 2; device cpu; ...; torch 2.13.0; ...; git_commit 9970320273a6``."""
    parts = []
    for name, values in found.items():
        label = {"cpu_count": "cores"}.get(name, name.removesuffix("_version"))
        shown = [v[:12] for v in values] if name == "git_commit" else values
        parts.append(f"{label} {', '.join(shown)}")
    return "; ".join(parts)


def format_cell(mean: float, std: float, n: int, finished: int | None = None) -> str:
    if n == 0 or np.isnan(mean):
        return "–"
    text = f"{mean:.4g} ± {std:.2g}" if n > 1 else f"{mean:.4g}"
    return text + (f" (n={n})" if finished is not None and n < finished else "")


def to_markdown(table: Table) -> str:
    header = table.header()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for cells in table.cells():
        texts = [(f"**{text}**" if bold else text).replace("|", "/") for text, bold in cells]
        lines.append("| " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(table.legend()) + "\n"


def to_html(table: Table) -> str:
    """A standalone, well-formed (XHTML-parsable) page: the table, then the legend."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in table.header())
    body = "\n".join(
        "<tr>" + "".join(f"<td>{'<strong>' + esc(t) + '</strong>' if b else esc(t)}</td>" for t, b in cells) + "</tr>"
        for cells in table.cells()
    )
    legend = "\n".join(f"<p>{esc(line)}</p>" for line in table.legend())
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8" /><title>benchbench results</title>\n'
        "<style>table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px}</style></head>\n"
        f'<body>\n<table class="benchbench">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n'
        f"{legend}\n</body>\n</html>\n"
    )


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "±": r"$\pm$",
    "–": "--",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(table: Table) -> str:
    """A booktabs ``tabular`` (``\\usepackage{booktabs}``); best cells in ``\\textbf``, the legend as comments."""
    header = table.header()
    spec = "lll" + "r" * (len(header) - 4) + "l"
    rows = [" & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for cells in table.cells():
        texts = [rf"\textbf{{{latex_escape(t)}}}" if b else latex_escape(t) for t, b in cells]
        rows.append(" & ".join(texts) + r" \\")
    comments = [f"% {line}" for line in table.legend()]
    return "\n".join([*comments, rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *rows, r"\bottomrule", r"\end{tabular}"])


def _number(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def records(table: Table) -> list[dict]:
    """The rows as plain dicts: numbers unrounded, NaN as None, ``best`` per metric."""
    out = []
    for index, row in table.summary.iterrows():
        record = {k: row[k] for k in KEYS} | {"n": int(row["n"]), "status": row["status"], "rank": _number(row["rank"])}
        record["metrics"] = {
            m: {
                "mean": _number(row[f"{m}.mean"]),
                "std": _number(row[f"{m}.std"]),
                "n": int(row[f"{m}.n"]),
                "best": index in table.best.get(m, ()),
            }
            for m in table.metrics
        }
        out.append(record)
    return out


def to_json(table: Table) -> str:
    document = {
        "metrics": table.metrics,
        "directions": {m: table.directions.get(m) for m in table.metrics},
        "rank": RANK_RULE,
        "sweeps": table.sweeps,
        "environment": table.environment,
        "rows": records(table),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def to_csv(table: Table) -> str:
    """Tidy: one line per row, ``METRIC.mean``, ``METRIC.std``, ``METRIC.n`` and ``METRIC.best`` columns."""
    columns = [*KEYS, "n", "status", "rank"] + [f"{m}.{p}" for m in table.metrics for p in ("mean", "std", "n", "best")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records(table):
        line = [record[k] for k in (*KEYS, "n", "status", "rank")]
        for m in table.metrics:
            line += [record["metrics"][m][p] for p in ("mean", "std", "n", "best")]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in line])
    return buffer.getvalue()


RENDERERS = {"md": to_markdown, "csv": to_csv, "html": to_html, "latex": to_latex, "json": to_json}


def render(table: Table, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise UsageError(f"unknown table format {fmt!r}; valid: {', '.join(RENDERERS)}")
    return RENDERERS[fmt](table)


def build_table(
    uri: str,
    experiment: str,
    sweep: str | None,
    plugins: Plugins,
    metrics: Sequence[str] = (),
    objectives: Sequence[str] = (),
    backends: Sequence[str] = (),
    datasets: Sequence[str] = (),
):
    """The selected trial runs and their :class:`benchbench.table.Table`; bad names and empty selections raise."""
    from benchbench.params import unknown_name
    from benchbench.runner import metric_directions

    directions = metric_directions(plugins.extra_modules)
    runs = load_runs(uri, experiment, sweep)
    logged = {column.removeprefix("metrics.") for column in runs.columns if column.startswith("metrics.")}
    for metric in metrics:
        if metric not in directions and metric not in logged:
            raise unknown_name("metric", metric, set(directions) | logged)
    chosen = select(runs, objectives, backends, datasets)
    if chosen.empty:
        where = {"latest": "the latest sweep", None: "any sweep"}.get(sweep, f"sweep {sweep}")
        given = (("objective", objectives), ("backend", backends), ("dataset", datasets))
        filters = ", ".join(f"--{name} {' '.join(values)}" for name, values in given if values)
        raise UsageError(
            f"no trial runs in {where} of experiment {experiment!r} ({uri})" + (f" match {filters}" if filters else "")
        )
    headline = [m.name for m, _ in plugins.items("metric") if m.headline]
    return chosen, Table.from_runs(chosen, list(metrics or headline), directions)


def slug(label: str) -> str:
    """A file-name-safe form of a dataset label such as ``gaussian:dim=16,cond=10``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_") or "dataset"
