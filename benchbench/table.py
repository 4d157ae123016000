"""Comparison tables regenerated from the tracking store, never from memory.

One row per (dataset, objective, backend); each metric cell is ``mean ± std`` over seeds, the best
per dataset in bold in the metric's declared direction; trials that failed or were skipped stay in
the table with their reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from benchbench.errors import UsageError
from benchbench.tracking import TAG_PREFIX

DEFAULT_METRICS = (
    "fisher_divergence",
    "sm_objective",
    "mmd",
    "train_step_ms",
    "train_steps_per_s",
    "peak_memory_mb",
)
KEYS = ("dataset", "objective", "backend")
_T = "tags." + TAG_PREFIX


def load_runs(tracking_uri: str, experiment: str, sweep: str | None = "latest") -> pd.DataFrame:
    """The trial runs of ``experiment``: of one sweep (a parent run id, or ``"latest"``) or all (None)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise UsageError(f"no experiment {experiment!r} in {tracking_uri}")
    runs = mlflow.search_runs([found.experiment_id], output_format="pandas", max_results=50000)
    if runs.empty or f"{_T}kind" not in runs:
        return runs.iloc[0:0]
    if sweep == "latest":
        sweeps = runs[runs[f"{_T}kind"] == "sweep"].sort_values("start_time")
        sweep = sweeps["run_id"].iloc[-1] if len(sweeps) else None
    trials = runs[runs[f"{_T}kind"] == "trial"]
    if sweep is not None:
        trials = trials[trials["tags.mlflow.parentRunId"] == sweep]
    return trials.reset_index(drop=True)


def summarise(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (dataset, objective, backend) with ``n``, ``status`` and mean/std per metric."""
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=[*KEYS, "n", "status"])
    keyed = runs.assign(
        dataset=runs[f"{_T}dataset"], objective=runs[f"{_T}objective_spec"], backend=runs[f"{_T}backend"]
    )
    for key, group in keyed.groupby(list(KEYS), sort=True):
        status = group[f"{_T}status"].fillna("running")
        finished = group[status == "finished"]
        row = dict(zip(KEYS, key), n=len(finished), status=_status_text(group, status))
        for metric in metrics:
            column = f"metrics.{metric}"
            values = finished[column].dropna().to_numpy(float) if column in finished else np.array([])
            row[f"{metric}.mean"] = values.mean() if values.size else np.nan
            row[f"{metric}.std"] = values.std(ddof=1) if values.size > 1 else (0.0 if values.size else np.nan)
            row[f"{metric}.n"] = values.size
        rows.append(row)
    return pd.DataFrame(rows)


def _status_text(group: pd.DataFrame, status: pd.Series) -> str:
    counts = status.value_counts()
    if counts.get("skipped"):
        reason = group.loc[status == "skipped", f"{_T}skip_reason"].iloc[0]
        return f"skipped: {reason}"
    parts = [f"{counts[name]} {name}" for name in ("failed", "killed", "running") if counts.get(name)]
    if counts.get("failed"):
        error = str(group.loc[status == "failed", f"{_T}error"].iloc[0])
        parts[0] += f" ({error[:80]})"
    return "; ".join(parts) if parts else "ok"


def best_rows(summary: pd.DataFrame, metric: str, direction: str) -> set[int]:
    """Index labels of the best mean per dataset for ``metric`` in its direction."""
    best: set[int] = set()
    column = f"{metric}.mean"
    for _, group in summary.groupby("dataset"):
        values = group[column].dropna()
        if values.empty:
            continue
        target = values.min() if direction == "lower" else values.max()
        best.update(values.index[np.isclose(values, target, rtol=1e-12, atol=0)])
    return best


def format_cell(mean: float, std: float, n: int) -> str:
    if n == 0 or np.isnan(mean):
        return "–"
    return f"{mean:.4g} ± {std:.2g}" if n > 1 else f"{mean:.4g}"


def to_markdown(summary: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, str]) -> str:
    shown = [m for m in metrics if f"{m}.n" in summary and summary[f"{m}.n"].sum() > 0]
    arrows = {"lower": "↓", "higher": "↑"}
    header = [*KEYS, "n", *(f"{m} {arrows.get(directions.get(m, ''), '')}".strip() for m in shown), "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    bold = {m: best_rows(summary, m, directions[m]) for m in shown if m in directions}
    for index, row in summary.iterrows():
        cells = [str(row[k]) for k in KEYS] + [str(row["n"])]
        for metric in shown:
            text = format_cell(row[f"{metric}.mean"], row[f"{metric}.std"], row[f"{metric}.n"])
            cells.append(f"**{text}**" if index in bold.get(metric, ()) and text != "–" else text)
        cells.append(str(row["status"]).replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
