"""``bench list``: what the installed plugins register. Imports no torch, jax, mlflow or pandas."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from benchbench.commands import plugins_of
from benchbench.plugins import Plugins

LIST_KINDS = ("objectives", "backends", "datasets", "metrics", "samplers", "executors", "plugins")


def _list_rows(plugins: Plugins, kind: str) -> list[dict[str, Any]]:
    if kind == "plugins":
        return [
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "status": info.status,
                "registers": {k: v for k, v in info.registered.items()},
                "error": info.error,
                "module": info.module,
            }
            for info in sorted(plugins.plugins.values(), key=lambda i: i.name)
        ]
    singular = kind[:-1]
    rows = []
    for obj, info in plugins.items(singular):
        row: dict[str, Any] = {
            "name": obj.name,
            "plugin": info.name,
            "version": info.version,
            "description": obj.description,
        }
        if singular == "objective":
            row["backends"] = sorted(obj.losses)
        elif singular == "sampler":
            row["backends"] = sorted(obj.samplers)
        elif singular in ("backend", "executor"):
            row["status"] = obj.unavailable_reason() or "available"
        elif singular == "metric":
            row["direction"] = obj.direction
            row["requires"] = list(obj.requires)
        if getattr(obj, "params", ()):
            row["params"] = {p.name: p.default for p in obj.params}
        rows.append(row)
    return rows


@click.command("list")
@click.argument("kind", required=False, default="objectives", type=click.Choice(LIST_KINDS))
@click.option("--json", "as_json", is_flag=True, help="One JSON array of records, for scripts.")
@click.pass_context
def list_command(ctx: click.Context, kind: str, as_json: bool) -> None:
    """List what the installed plugins register (objectives by default)."""
    rows = _list_rows(plugins_of(ctx), kind)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    columns = [c for c in dict.fromkeys(key for row in rows for key in row) if c != "module"] or ["name"]
    table = Table(*columns, title=f"benchbench {kind}", title_justify="left")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)
