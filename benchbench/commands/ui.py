"""``bench ui``: the MLflow UI on the tracking store, bound to 127.0.0.1."""

from __future__ import annotations

import click

from benchbench.commands import DEFAULT_EXPERIMENT


@click.command("ui")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (as for bench run).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--experiment",
    default=DEFAULT_EXPERIMENT,
    show_default=True,
    help="Also print the link to this experiment's runs (when it exists).",
)
def ui_command(tracking_uri: str | None, port: int, experiment: str) -> None:
    """Start the MLflow UI on the tracking store, bound to 127.0.0.1.

    Ctrl-C (or SIGTERM, SIGHUP) stops it and every process it started.
    """
    from benchbench.tracking import tracking_uri as resolve_uri
    from benchbench.ui import serve

    serve(resolve_uri(tracking_uri), "127.0.0.1", port or None, echo=click.echo, experiment=experiment)
