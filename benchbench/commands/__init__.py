"""What every ``bench`` command shares: the plugin manager of the invocation and the experiment defaults."""

from __future__ import annotations

from typing import Any

import click

from benchbench.plugins import Plugins, get_plugins

DEFAULT_EXPERIMENT = "benchbench"


def plugins_of(ctx: click.Context) -> Plugins:
    """The plugins of this invocation (``bench --plugin MODULE``), reporting load errors once, one line each."""
    root = ctx.find_root()
    plugins = get_plugins(root.obj or ())
    if not root.meta.get("bench.reported"):
        for line in plugins.errors:
            click.echo(f"bench: plugin error: {line}", err=True)
        root.meta["bench.reported"] = True
    return plugins


def first(*values: Any) -> Any:
    """The first value that is not None: an explicit option, then a preset's, then the default."""
    return next((value for value in values if value is not None), None)
