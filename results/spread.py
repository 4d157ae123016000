"""Seed-to-seed spread of the step time within each configuration of a sweep, from the tracking store.

``python results/spread.py URI EXPERIMENT`` prints a markdown table: per (dataset, objective, backend), the
train_step_ms of each seed and the spread (max - min) / median. The timing rule (benchbench/training.py) is meant
to keep it under 15% on a quiet machine; the table says where it is not.
"""

from __future__ import annotations

import sys

import numpy as np

from benchbench.table import load_runs, trial_status
from benchbench.tags import BACKEND, DATASET, FINISHED, OBJECTIVE_SPEC, column


def spread_table(uri: str, experiment: str) -> str:
    runs = load_runs(uri, experiment)
    runs = runs[trial_status(runs) == FINISHED]
    lines = [
        "| dataset | objective | backend | train_step_ms per seed | spread (max-min)/median |",
        "|---|---|---|---|---|",
    ]
    worst = 0.0
    keys = [column(DATASET), column(OBJECTIVE_SPEC), column(BACKEND)]
    for (dataset, objective, backend), group in runs.groupby(keys, sort=True):
        ms = group.sort_values(column("bench.seed"))["metrics.train_step_ms"].to_numpy(float)
        spread = (ms.max() - ms.min()) / np.median(ms)
        worst = max(worst, spread)
        cells = " / ".join(f"{value:.3g}" for value in ms)
        lines.append(f"| {dataset} | {objective} | {backend} | {cells} | {100 * spread:.1f}% |")
    lines.append("")
    lines.append(f"Largest spread: {100 * worst:.1f}% over {len(lines) - 3} configurations.")
    lines.append("")
    lines.append(training_share(runs))
    return "\n".join(lines) + "\n"


def training_share(runs) -> str:
    """How much of the trials' wall time was training: sum of training seconds / sum of wall_s, and where the rest
    went (the runner's time accounting, where the runs have it). Training seconds are train_time_s (warm-up + timed
    steps), or for runs older than it (steps - 1) x train_step_ms."""
    if "metrics.train_time_s" in runs:
        training = runs["metrics.train_time_s"]
    else:
        training = (runs["params.steps"].astype(float) - 1) * runs["metrics.train_step_ms"] / 1000
    wall = runs["metrics.wall_s"].sum()
    line = (
        f"Training time is {100 * training.sum() / wall:.0f}% of the trials' wall time ({training.sum():.0f} s of "
        f"{wall:.0f} s over {len(runs)} finished trials; the rest is data, evaluation, sampling, pictures and logging)."
    )
    parts = {
        "compile (first step)": "compile_s",
        "curve evaluations at checkpoints": "checkpoint_eval_s",
        "final metrics": "metrics_s",
        "of which sampling": "sampling_s",
        "pictures": "reports_s",
    }
    shown = {label: runs[f"metrics.{key}"].sum() for label, key in parts.items() if f"metrics.{key}" in runs}
    if "curve evaluations at checkpoints" in shown:
        accounted = training.sum() + sum(v for k, v in shown.items() if k != "of which sampling")
        shown["the rest (data, model set-up, logging params)"] = wall - accounted
        line += " Of the wall time: " + "; ".join(f"{label} {100 * v / wall:.0f}%" for label, v in shown.items()) + "."
    return line


if __name__ == "__main__":
    print(spread_table(sys.argv[1], sys.argv[2]), end="")
