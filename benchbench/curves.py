"""Convergence curves: the score metrics a trial logged at its checkpoints, read back and drawn.

Each finished trial run lists its curve metrics in the tag ``bench.curves``; each is an MLflow step metric whose
step is the number of training steps done, beside ``train_time_s``, the training seconds (warm-up and timed steps,
compile excluded) at the same steps. A figure per (dataset, metric) draws the metric against training time and
against steps: one line per objective x backend, the median over seeds, and a band from the lowest to the
highest seed (with a handful of seeds, quantiles would claim more than they know).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchbench.tags import BACKEND, CURVES, DATASET, OBJECTIVE_SPEC, column

TIME = "train_time_s"
GRID_POINTS = 60
STYLES = ("-", "--", ":", "-.")


def load_curves(tracking_uri: str, runs: pd.DataFrame) -> pd.DataFrame:
    """``run_id, dataset, line, metric, step, value, train_time_s`` for every curve point of ``runs``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    rows = []
    if runs.empty or column(CURVES) not in runs:
        return pd.DataFrame(columns=["run_id", "dataset", "line", "metric", "step", "value", TIME])
    for run in runs.to_dict("records"):
        names = run.get(column(CURVES))
        if not isinstance(names, str) or TIME not in names.split(","):
            continue
        times = {m.step: m.value for m in client.get_metric_history(run["run_id"], TIME)}
        line = f"{run[column(OBJECTIVE_SPEC)]} / {run[column(BACKEND)]}"
        for name in names.split(","):
            if name == TIME:
                continue
            for point in client.get_metric_history(run["run_id"], name):
                if point.step in times:
                    rows.append(
                        (run["run_id"], run[column(DATASET)], line, name, point.step, point.value, times[point.step])
                    )
    return pd.DataFrame(rows, columns=["run_id", "dataset", "line", "metric", "step", "value", TIME])


def _band(series: Iterable[tuple[np.ndarray, np.ndarray]], log_x: bool) -> tuple[np.ndarray, ...] | None:
    """Median, min and max over runs on a common grid; each run interpolated within its own range only."""
    series = [(x, y) for x, y in series if len(x) >= 1]
    if not series:
        return None
    low = min(x[0] for x, _ in series)
    high = max(x[-1] for x, _ in series)
    if high <= low:
        grid = np.array([low])
    elif log_x and low > 0:
        grid = np.geomspace(low, high, GRID_POINTS)
    else:
        grid = np.linspace(low, high, GRID_POINTS)
    values = np.full((len(series), len(grid)), np.nan)
    for i, (x, y) in enumerate(series):
        inside = (grid >= x[0]) & (grid <= x[-1])
        values[i, inside] = np.interp(grid[inside], x, y)
    keep = np.isfinite(values).any(axis=0)
    with np.errstate(all="ignore"):
        return (
            grid[keep],
            np.nanmedian(values[:, keep], 0),
            np.nanmin(values[:, keep], 0),
            np.nanmax(values[:, keep], 0),
        )


def convergence_figures(curves: pd.DataFrame) -> list[tuple[str, Figure]]:
    """``(file name, figure)`` per (dataset, metric): the metric against training time and against steps."""
    from benchbench.table import slug

    figures = []
    for (dataset, metric), points in curves.groupby(["dataset", "metric"], sort=True):
        figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
        by_time, by_step = figure.subplots(1, 2)
        lines = sorted(points["line"].unique())
        positive = bool((points["value"] > 0).all())
        # colour by objective, line style by backend: more than ten lines stay told apart
        objectives = sorted({line.split(" / ")[0] for line in lines})
        backends = sorted({line.split(" / ")[-1] for line in lines})
        for line in lines:
            objective, backend = line.split(" / ")[0], line.split(" / ")[-1]
            color = f"C{objectives.index(objective) % 10}"
            style = STYLES[backends.index(backend) % len(STYLES)]
            mine = points[points["line"] == line].sort_values("step")
            for axis, x in ((by_time, TIME), (by_step, "step")):
                runs = [(g[x].to_numpy(float), g["value"].to_numpy(float)) for _, g in mine.groupby("run_id")]
                band = _band(runs, log_x=True)
                if band is None:
                    continue
                grid, median, low, high = band
                axis.plot(grid, median, color=color, ls=style, lw=1.4, label=f"{line} (n={len(runs)})")
                axis.fill_between(grid, low, high, color=color, alpha=0.18, lw=0)
        for axis, label in ((by_time, "training time [s] (warm-up + timed steps)"), (by_step, "training step")):
            axis.set_xscale("log")
            if positive:
                axis.set_yscale("log")
            axis.set(xlabel=label, ylabel=metric)
            axis.grid(True, which="major", alpha=0.3)
        by_step.legend(fontsize=7, loc="best")
        figure.suptitle(f"{dataset}: {metric} during training (median over seeds, band: min to max)", fontsize=10)
        figures.append((f"convergence_{slug(dataset)}_{slug(metric)}.png", figure))
    return figures
