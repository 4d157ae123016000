"""The ``bench`` command line. Heavy libraries (torch, jax, mlflow, pandas) load inside commands."""

from __future__ import annotations

from typing import Any

import click

from benchbench import __version__
from benchbench.commands import check, listing, perf, run, server, table, ui
from benchbench.errors import BenchError


class _Failure(click.ClickException):
    """A BenchError shown as one line, with its exit code (2 for bad input)."""

    def __init__(self, error: BenchError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"bench: error: {self.message}", err=True)


class BenchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BenchError as error:
            raise _Failure(error) from None


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--plugin",
    "plugin_modules",
    multiple=True,
    metavar="MODULE",
    help="Also load MODULE (an importable path, not installed) as a plugin. Repeatable.",
)
@click.version_option(__version__, prog_name="benchbench")
@click.pass_context
def cli(ctx: click.Context, plugin_modules: tuple[str, ...]) -> None:
    """Benchmark score-matching objectives across backends and datasets, tracked in MLflow."""
    ctx.obj = plugin_modules


for command in (
    listing.list_command,
    run.run_command,
    check.check_command,
    server.server_command,
    table.table_command,
    ui.ui_command,
    perf.perf_command,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="bench")
