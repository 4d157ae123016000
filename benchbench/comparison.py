"""The comparison a sweep's parent run holds: its table (markdown and HTML) and its plots, as artifacts.

A user browsing the MLflow UI then sees the answer of a sweep on the sweep's own run, without the CLI. The files
are exactly what ``bench table --sweep RUN_ID --format md|html --plots DIR`` writes from the same store.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchbench.plugins import Plugins


def quality_metrics(plugins: Plugins) -> list[str]:
    """The score metrics a Pareto view plots against time: the headline curve metrics, in registration order."""
    return [m.name for m, _ in plugins.items("metric") if m.curve and m.headline]


def comparison_files(uri: str, experiment: str, sweep: str, plugins: Plugins) -> dict[str, bytes]:
    """``{file name: content}``: ``comparison.md``, ``comparison.html`` and every plot of the sweep."""
    from benchbench.curves import load_curves
    from benchbench.plots import write_plots
    from benchbench.table import build_table, to_html, to_markdown

    runs, table = build_table(uri, experiment, sweep, plugins)
    files = {"comparison.md": to_markdown(table).encode(), "comparison.html": to_html(table).encode()}
    with tempfile.TemporaryDirectory(prefix="bench-plots-") as folder:
        for path in write_plots(runs, table, folder, load_curves(uri, runs), quality_metrics(plugins)):
            files[Path(path).name] = Path(path).read_bytes()
    return files
