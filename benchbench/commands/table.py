"""``bench table``: the comparison table, regenerated from the tracking store."""

from __future__ import annotations

import click

from benchbench.commands import DEFAULT_EXPERIMENT, plugins_of
from benchbench.plugins import Plugins


def table_text(uri: str, experiment: str, sweep: str | None, plugins: Plugins, metrics: tuple[str, ...] = ()) -> str:
    from benchbench.runner import metric_directions
    from benchbench.table import DEFAULT_METRICS, load_runs, summarise, to_markdown

    chosen = list(metrics or DEFAULT_METRICS)
    runs = load_runs(uri, experiment, sweep)
    return to_markdown(summarise(runs, chosen), chosen, metric_directions(plugins.extra_modules))


@click.command("table")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment name.")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (as for bench run).")
@click.option("--metric", "metrics", multiple=True, help="Metric column. Repeatable; default: a standard set.")
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep of the experiment, not only the latest.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write the table to this file.")
@click.pass_context
def table_command(
    ctx: click.Context,
    experiment: str,
    tracking_uri: str | None,
    metrics: tuple[str, ...],
    all_sweeps: bool,
    output: str | None,
) -> None:
    """Regenerate the comparison table (markdown) from the tracking store."""
    from benchbench.tracking import tracking_uri as resolve_uri

    text = table_text(resolve_uri(tracking_uri), experiment, None if all_sweeps else "latest", plugins_of(ctx), metrics)
    if output:
        with open(output, "w") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)
