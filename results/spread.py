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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(spread_table(sys.argv[1], sys.argv[2]), end="")
