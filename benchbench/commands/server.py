"""``bench server``: an MLflow tracking server with a real database and served artifacts, for parallel sweeps."""

from __future__ import annotations

import click

from benchbench.tracking import DEFAULT_TRACKING_URI


@click.command("server")
@click.option(
    "--backend-store-uri",
    default=DEFAULT_TRACKING_URI,
    show_default=True,
    metavar="URI",
    help="The database: a sqlite file, or postgresql://USER:PASSWORD@HOST:PORT/DB (needs benchbench[postgres]).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 0.0.0.0 for a Ray cluster whose nodes must reach it.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True, help="Port (0: any free port).")
@click.option(
    "--artifacts-destination",
    default="mlartifacts",
    show_default=True,
    metavar="FOLDER|URI",
    help="Where the server stores the artifacts clients upload through it (a folder, or s3://... etc.).",
)
@click.option(
    "--allowed-hosts",
    default=None,
    metavar="HOST,...",
    help="Host names clients may use to reach the server (MLflow allows localhost and private IPs by default; "
    "add the name nodes use, e.g. head-node:5000).",
)
def server_command(
    backend_store_uri: str, host: str, port: int, artifacts_destination: str, allowed_hosts: str | None
) -> None:
    """Serve a tracking store to parallel trials (bench run --tracking-uri http://HOST:PORT); Ctrl-C stops it."""
    from benchbench.server import TrackingServer, serve
    from benchbench.store import check_artifact_location, check_uri

    server = TrackingServer(
        check_uri(backend_store_uri, "serve"),
        host=host,
        port=port,
        artifacts_destination=check_artifact_location(artifacts_destination),
        allowed_hosts=allowed_hosts,
    )
    serve(server, echo=click.echo)
