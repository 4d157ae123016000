"""``bench table``: the comparison table (and plots), regenerated from the tracking store."""

from __future__ import annotations

from pathlib import Path

import click

from benchbench.commands import DEFAULT_EXPERIMENT, plugins_of
from benchbench.plugins import Plugins


def table_text(uri: str, experiment: str, sweep: str | None, plugins: Plugins, metrics: tuple[str, ...] = ()) -> str:
    """The markdown table of one sweep (``bench run`` prints it when the sweep ends)."""
    from benchbench.table import build_table, to_markdown

    return to_markdown(build_table(uri, experiment, sweep, plugins, metrics)[1])


@click.command("table")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment name.")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (as for bench run).")
@click.option(
    "--metric", "metrics", multiple=True, metavar="NAME", help="Metric column. Repeatable; default: a standard set."
)
@click.option("-o", "--objective", "objectives", multiple=True, metavar="NAME", help="Only this objective. Repeatable.")
@click.option("-b", "--backend", "backends", multiple=True, metavar="NAME", help="Only this backend. Repeatable.")
@click.option(
    "-d",
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME[:k=v,...]",
    help="Only this dataset family, or one labelled dataset. Repeatable.",
)
@click.option(
    "--latest/--all",
    "latest",
    default=True,
    show_default=True,
    help="The sweep started last, or every sweep of the experiment (one run per trial configuration).",
)
@click.option("--sweep", default=None, metavar="RUN_ID", help="This sweep (its parent run id) instead of the latest.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "csv", "html", "latex", "json"]),
    default="md",
    show_default=True,
    help="Output format.",
)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write the table to this file.")
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Also write PNG plots here: convergence curves (each score metric against training time and steps), "
    "quality vs training time, step time vs dimension, bars per dataset.",
)
@click.pass_context
def table_command(
    ctx: click.Context,
    experiment: str,
    tracking_uri: str | None,
    metrics: tuple[str, ...],
    objectives: tuple[str, ...],
    backends: tuple[str, ...],
    datasets: tuple[str, ...],
    latest: bool,
    sweep: str | None,
    fmt: str,
    output: str | None,
    plots: str | None,
) -> None:
    """Regenerate the comparison table from the tracking store.

    One row per (dataset, objective, backend); cells are mean ± std over seeds, the best per dataset in bold,
    rank is the mean rank over the shown metrics within the dataset; failed and skipped trials stay as rows.
    """
    from benchbench.store import check_experiment_name, check_uri, reading
    from benchbench.table import build_table, render
    from benchbench.tracking import tracking_uri as resolve_uri

    if sweep and not latest:
        raise click.UsageError("--sweep and --all exclude each other")
    chosen_sweep = sweep or ("latest" if latest else None)
    uri = check_uri(resolve_uri(tracking_uri), "read")
    with reading(uri):
        runs, table = build_table(
            uri,
            check_experiment_name(experiment),
            chosen_sweep,
            plugins_of(ctx),
            metrics,
            objectives,
            backends,
            datasets,
        )
    text = render(table, fmt)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    if plots:
        from benchbench.comparison import quality_metrics
        from benchbench.curves import load_curves
        from benchbench.plots import write_plots

        with reading(uri):
            curves = load_curves(uri, runs)
        for path in write_plots(runs, table, plots, curves, quality_metrics(plugins_of(ctx))):
            click.echo(f"wrote {path}", err=True)
