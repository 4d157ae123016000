"""The result plots of ``bench table --plots DIR``, drawn from the same runs as the table (PNG, Agg).

- ``convergence_<dataset>_<metric>.png``: each score metric against training time and against steps, from the
  checkpoints of training (see :mod:`benchbench.curves`).
- ``pareto_<dataset>.png``: score quality against training time, one point per seed, a large marker per
  (objective, backend) mean, and the Pareto front of those means (nothing both faster and better).
- ``scaling.png``: training step time against the dataset dimension (param ``dataset.dim``), per objective
  and backend.
- ``bars_<dataset>.png``: one bar chart per shown metric; the best bar (declared direction) highlighted,
  rows without a value labelled with their status (skipped, failed) instead of a silent gap.

Figures are built with :class:`matplotlib.figure.Figure`, not pyplot, so no global backend or figure
registry is touched (``savefig`` renders PNG with Agg).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchbench.curves import convergence_figures
from benchbench.table import Table, slug, trial_status
from benchbench.tags import BACKEND, DATASET, FINISHED, OBJECTIVE_SPEC, column

MARKERS = ("o", "s", "^", "D", "v", "P")


def training_seconds(runs: pd.DataFrame) -> pd.Series:
    """``compile_s + train_time_s``: what training cost (the first step, warm-up and timed steps), evaluation
    excluded. ``wall_s`` (which adds data loading, sampling and metrics) stands in for runs without them."""
    wall = runs["metrics.wall_s"] if "metrics.wall_s" in runs else pd.Series(np.nan, index=runs.index)
    if not {"metrics.compile_s", "metrics.train_time_s"} <= set(runs.columns):
        return wall
    return (runs["metrics.compile_s"] + runs["metrics.train_time_s"]).fillna(wall)


def write_plots(
    runs: pd.DataFrame,
    table: Table,
    folder: str | Path,
    curves: pd.DataFrame | None = None,
    quality: Sequence[str] = (),
) -> list[Path]:
    """Every plot the runs allow, written into ``folder``; the paths written, in order. ``curves``: the
    checkpoint points of the runs (:func:`benchbench.curves.load_curves`), for the convergence plots; ``quality``:
    the score metrics a Pareto view may use, in order of preference (the first the runs have)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    finished = runs[trial_status(runs) == FINISHED] if not runs.empty else runs
    figures: list[tuple[str, Figure]] = []
    if curves is not None and not curves.empty:
        figures += convergence_figures(curves[curves["run_id"].isin(finished["run_id"])])
    for dataset in sorted(runs[column(DATASET)].dropna().unique()) if not runs.empty else ():
        figure = pareto_figure(finished[finished[column(DATASET)] == dataset], dataset, quality)
        if figure is not None:
            figures.append((f"pareto_{slug(dataset)}.png", figure))
    scaling = scaling_figure(finished)
    if scaling is not None:
        figures.append(("scaling.png", scaling))
    for dataset, rows in table.summary.groupby("dataset", sort=True):
        figure = bars_figure(rows, table, dataset)
        if figure is not None:
            figures.append((f"bars_{slug(dataset)}.png", figure))
    written = []
    for name, figure in figures:
        path = folder / name
        figure.savefig(path, format="png", metadata={"Software": None})
        written.append(path)
    return written


def _styles(labels: list[str]) -> dict[str, str]:
    colors = [f"C{i % 10}" for i in range(len(labels))]
    return dict(zip(labels, colors))


def _log_if_wide(set_scale, values: pd.Series, base: int = 10) -> None:
    """Log scale where the values span more than a factor 20 (below that, log ticks only clutter the axis)."""
    if (values > 0).all() and values.max() >= 20 * values.min():
        set_scale("log", base=base)


def pareto_figure(runs: pd.DataFrame, dataset: str, metrics: Sequence[str]) -> Figure | None:
    """Quality (the first of ``metrics`` the runs have: Fisher divergence where the true score is known, else the
    held-out SM objective) vs training time."""
    quality = next((m for m in metrics if runs.get(f"metrics.{m}", pd.Series()).notna().any()), None)
    if quality is None:
        return None
    points = runs.assign(
        time=training_seconds(runs), quality=runs[f"metrics.{quality}"], objective=runs[column(OBJECTIVE_SPEC)]
    ).dropna(subset=["time", "quality"])
    if points.empty:
        return None
    colors = _styles(sorted(points["objective"].unique()))
    markers = dict(zip(sorted(points[column(BACKEND)].unique()), MARKERS * 4))
    figure = Figure(figsize=(6.4, 4.4), dpi=110)
    ax = figure.add_subplot()
    means = []
    for (objective, backend), group in points.groupby(["objective", column(BACKEND)], sort=True):
        style = dict(color=colors[objective], marker=markers[backend])
        ax.scatter(group["time"], group["quality"], s=14, alpha=0.45, linewidths=0, **style)
        mean = (group["time"].mean(), group["quality"].mean())
        ax.scatter(*mean, s=70, edgecolors="black", linewidths=0.6, label=f"{objective} / {backend}", **style)
        means.append(mean)
    front = pareto_front(means)
    ax.step(*zip(*front), where="post", color="grey", lw=0.8, ls="--", label="Pareto front (means)")
    _log_if_wide(ax.set_xscale, points["time"])
    _log_if_wide(ax.set_yscale, points["quality"])
    ax.set(xlabel="training time [s] (compile + timed steps)", ylabel=f"{quality} (lower is better)")
    ax.set_title(f"{dataset}: quality vs training time", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both time and quality (both lower is better), by increasing time."""
    front: list[tuple[float, float]] = []
    for time, quality in sorted(points):
        if not front or quality < front[-1][1]:
            front.append((time, quality))
    return front


def scaling_figure(runs: pd.DataFrame) -> Figure | None:
    """Step time vs dimension; datasets of the same dimension are pooled (the step cost depends on d, not on p)."""
    if runs.empty or "params.dataset.dim" not in runs or "metrics.train_step_ms" not in runs:
        return None
    points = runs.assign(
        dim=pd.to_numeric(runs["params.dataset.dim"], errors="coerce"),
        ms=runs["metrics.train_step_ms"],
        objective=runs[column(OBJECTIVE_SPEC)],
    ).dropna(subset=["dim", "ms"])
    if points.empty:
        return None
    colors = _styles(sorted(points["objective"].unique()))
    markers = dict(zip(sorted(points[column(BACKEND)].unique()), MARKERS * 4))
    figure = Figure(figsize=(6.4, 4.4), dpi=110)
    ax = figure.add_subplot()
    for (objective, backend), group in points.groupby(["objective", column(BACKEND)], sort=True):
        stats = group.groupby("dim")["ms"].agg(["mean", "std"]).fillna({"std": 0.0})
        ax.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"],
            color=colors[objective],
            marker=markers[backend],
            capsize=2,
            lw=1,
            label=f"{objective} / {backend}",
        )
    _log_if_wide(ax.set_xscale, points["dim"], base=2)
    _log_if_wide(ax.set_yscale, points["ms"])
    dims = sorted(points["dim"].unique())
    ax.set_xticks(dims, [f"{d:g}" for d in dims])
    ax.set(xlabel="dimension d (dataset.dim)", ylabel="train step [ms] (mean ± std over runs)")
    ax.set_title("training step time vs dimension", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def bars_figure(rows: pd.DataFrame, table: Table, dataset: str) -> Figure | None:
    metrics = [m for m in table.metrics if rows[f"{m}.n"].sum() > 0]
    if not metrics:
        return None
    labels = [f"{o} / {b}" for o, b in zip(rows["objective"], rows["backend"])]
    positions = np.arange(len(rows))
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    figure = Figure(figsize=(3.4 * ncols + 1.8, (0.35 * len(rows) + 1.1) * nrows + 0.4), dpi=110)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        means = rows[f"{metric}.mean"].to_numpy(float)
        best = table.best.get(metric, set())
        colors = ["tab:green" if index in best else "tab:blue" for index in rows.index]
        ax.barh(positions, np.nan_to_num(means), xerr=rows[f"{metric}.std"].fillna(0), color=colors, capsize=2)
        _log_if_wide(ax.set_xscale, pd.Series(means).dropna())
        for position, mean, status in zip(positions, means, rows["status"]):
            if np.isnan(mean):  # "1 failed (RuntimeError: ...)" -> "1 failed"; "skipped: ..." -> SKIPPED
                label = status.split(" (")[0].split(":")[0]
                ax.text(
                    0.01, position, label, transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="dimgrey"
                )
        arrow = {"lower": "↓ lower is better", "higher": "↑ higher is better"}.get(table.directions.get(metric, ""), "")
        ax.set_title(f"{metric}\n{arrow}", fontsize=8)
        ax.set_yticks(positions, labels if ax.get_subplotspec().is_first_col() else [])
        ax.invert_yaxis()
        ax.tick_params(labelsize=7)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    figure.suptitle(f"{dataset} (green: best; mean ± std over seeds)", fontsize=9)
    figure.tight_layout()
    return figure
