"""``bench check``: the conformance kit on installed objectives, from the command line (no test file needed)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchbench.commands import plugins_of
from benchbench.errors import UsageError
from benchbench.params import unknown_name

COLUMNS = ("objective", "plugin", "backend", "check", "status", "measured", "expected")


@click.command("check")
@click.argument("objectives", nargs=-1, metavar="[OBJECTIVE ...]")
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    metavar="NAME",
    help="Check only this backend. Repeatable; default: every backend each objective implements.",
)
@click.option(
    "--draws", type=click.IntRange(min=10), default=100, show_default=True, help="Seeds per statistical check."
)
@click.option("--z", type=click.FloatRange(min=1), default=5.0, show_default=True, help="Tolerance in standard errors.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per row, for scripts.")
@click.pass_context
def check_command(
    ctx: click.Context, objectives: tuple[str, ...], backends: tuple[str, ...], draws: int, z: float, as_json: bool
) -> None:
    """Run the conformance kit on OBJECTIVE (default: every installed one); exit 1 if any check fails.

    One row per objective x backend x check, with what was measured and what was expected. See README.md,
    "The conformance kit", for what each check means.
    """
    from benchbench.testing import audit_objective

    plugins = plugins_of(ctx)
    names = list(objectives) or plugins.names("objective")
    chosen = [plugins.get("objective", name) for name in names]  # an unknown name: one line, exit 2
    implemented = {backend for objective in chosen for backend in objective.losses}
    for backend in backends:
        if backend not in implemented:
            raise UsageError(f"--backend {backend}: " + str(unknown_name("backend", backend, implemented)))
    reports = []
    for objective in chosen:
        wanted = [b for b in backends if b in objective.losses] if backends else None
        reports.append(audit_objective(objective, wanted, plugins=plugins, draws=draws, z=z))
    rows = [row for report in reports for row in report.rows]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict()))
    else:
        _print(reports)
    failed = [row for row in rows if row.status == "fail"]
    if failed:
        for row in failed:
            click.echo(f"bench: check failed: {row.message}", err=True)
        ctx.exit(1)


def _print(reports: list[Any]) -> None:
    table = Table(*COLUMNS, title="benchbench check", title_justify="left")
    for report in reports:
        for row in report.rows:
            table.add_row(*(escape(getattr(row, column)) for column in COLUMNS))  # '[linear]' is not markup
    console = Console(width=220 if not sys.stdout.isatty() else None)
    console.print(table)
    counts = {status: 0 for status in ("pass", "warn", "fail", "skip")}
    for report in reports:
        for row in report.rows:
            counts[row.status] += 1
    timing = "; ".join(
        f"{report.rows[0].objective if report.rows else report.label}: "
        + ", ".join(f"{backend} {seconds:.1f} s" for backend, seconds in report.seconds.items())
        for report in reports
        if report.seconds
    )
    click.echo(", ".join(f"{n} {status}" for status, n in counts.items()) + f". Kit time: {timing}")
    for report in reports:
        for row in report.rows:
            if row.status == "warn":
                click.echo(f"warning: {row.message}")
