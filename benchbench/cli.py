"""The ``bench`` command line. Heavy libraries (torch, jax, mlflow, pandas) load inside commands."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from benchbench import __version__
from benchbench.errors import BenchError
from benchbench.params import parse_spec
from benchbench.plugins import Plugins, get_plugins

# The quick suite: every objective on every available backend, two small Gaussians, three seeds.
QUICK = {
    "objectives": ["all"],
    "datasets": ["gaussian:dim=2", "gaussian:dim=16,cond=10"],
    "seeds": 3,
    "steps": 1000,
}
DEFAULT_EXPERIMENT = "benchbench"


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


def _plugins(ctx: click.Context) -> Plugins:
    plugins = get_plugins(ctx.obj or ())
    if not ctx.meta.get("bench.reported"):
        for line in plugins.errors:
            click.echo(f"bench: plugin error: {line}", err=True)
        ctx.meta["bench.reported"] = True
    return plugins


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


# -- bench list ------------------------------------------------------------------------------------
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


@cli.command("list")
@click.argument("kind", required=False, default="objectives", type=click.Choice(LIST_KINDS))
@click.option("--json", "as_json", is_flag=True, help="One JSON array of records, for scripts.")
@click.pass_context
def list_command(ctx: click.Context, kind: str, as_json: bool) -> None:
    """List what the installed plugins register (objectives by default)."""
    rows = _list_rows(_plugins(ctx), kind)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    columns = [c for c in rows[0] if c not in ("module",)] if rows else ["name"]
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


# -- bench run -------------------------------------------------------------------------------------
@cli.command("run")
@click.option(
    "-o",
    "--objective",
    "objectives",
    multiple=True,
    metavar="NAME[:k=v,...]",
    help="Objective and hyperparameters, e.g. denoising:sigma=0.5. Repeatable; 'all' for every one.",
)
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    metavar="NAME",
    help="Backend. Repeatable; default: every installed backend.",
)
@click.option(
    "-d",
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME[:k=v,...]",
    help="Dataset and parameters, e.g. gaussian:dim=16. Repeatable.",
)
@click.option("--seeds", type=int, default=None, help="Number of seeds per combination (default 1).")
@click.option("--steps", type=int, default=None, help="Training steps per trial (default 1000).")
@click.option("--batch-size", type=int, default=128, show_default=True, help="Training batch size.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option(
    "--device",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda", "gpu"]),
    help="Where to train.",
)
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]))
@click.option(
    "--model",
    default="mlp",
    show_default=True,
    type=click.Choice(["mlp", "energy-mlp"]),
    help="Score network s(x), or energy network E(x) with s = -grad E.",
)
@click.option("--width", type=int, default=128, show_default=True, help="Hidden width of the network.")
@click.option("--depth", type=int, default=3, show_default=True, help="Number of hidden layers.")
@click.option(
    "--activation",
    default="softplus",
    show_default=True,
    type=click.Choice(["softplus", "tanh", "elu", "swish", "relu"]),
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the torch train step.")
@click.option(
    "--sampler",
    default=None,
    metavar="NAME[:k=v,...]",
    help="Sampler for sample-quality metrics (default: annealed Langevin for noise-conditional "
    "models, Langevin otherwise).",
)
@click.option("--n-samples", type=int, default=1000, show_default=True, help="Samples drawn per trial.")
@click.option("--executor", default="local", show_default=True, help="Where trials run (see bench list executors).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment name.")
@click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
)
@click.option("--dry-run", is_flag=True, help="Print the trial matrix and exit.")
@click.option(
    "--quick",
    is_flag=True,
    help="The small default suite (every objective, two Gaussians, 3 seeds); about 5 min on 2 cores.",
)
@click.pass_context
def run_command(ctx: click.Context, **options: Any) -> None:
    """Train and evaluate every (objective, backend, dataset, seed) and track it in MLflow."""
    from benchbench.sweep import run_sweep
    from benchbench.tracking import tracking_uri
    from benchbench.trial import Settings, build_trials

    plugins = _plugins(ctx)
    objectives = list(options["objectives"]) or (QUICK["objectives"] if options["quick"] else [])
    datasets = list(options["datasets"]) or (QUICK["datasets"] if options["quick"] else [])
    if not objectives:
        raise click.UsageError("give at least one -o/--objective (or 'all'), or --quick")
    if not datasets:
        raise click.UsageError("give at least one -d/--dataset, or --quick")
    sampler, sampler_params = parse_spec(options["sampler"]) if options["sampler"] else (None, {})
    settings = Settings(
        steps=_first(options["steps"], QUICK["steps"] if options["quick"] else None, 1000),
        batch_size=options["batch_size"],
        lr=options["lr"],
        device=options["device"],
        dtype=options["dtype"],
        model=options["model"],
        width=options["width"],
        depth=options["depth"],
        activation=options["activation"],
        compile=options["compile_"],
        sampler=sampler,
        sampler_params=sampler_params,
        n_samples=options["n_samples"],
    )
    seeds = _first(options["seeds"], QUICK["seeds"] if options["quick"] else None, 1)
    plugins.get("executor", options["executor"])
    trials = build_trials(plugins, objectives, list(options["backends"]), datasets, seeds, settings)
    if options["dry_run"]:
        for trial in trials:
            click.echo(f"{trial.run_name}  {trial.config_hash}")
        click.echo(f"{len(trials)} trials (dry run: nothing trained)")
        return
    uri = tracking_uri(options["tracking_uri"])
    sweep_params = {
        "objectives": objectives,
        "datasets": datasets,
        "backends": sorted({t.backend for t in trials}),
        "seeds": seeds,
    } | {k: v for k, v in vars(replace(settings, sampler_params={})).items()}
    try:
        report = run_sweep(
            plugins,
            trials,
            uri,
            options["experiment"],
            options["executor"],
            console=Console(stderr=True, soft_wrap=True),
            sweep_params=sweep_params,
        )
    except KeyboardInterrupt:
        click.echo("bench: interrupted; finished trials are in the tracking store", err=True)
        ctx.exit(130)
    click.echo(_table_text(uri, options["experiment"], report.parent_run_id, plugins), nl=False)
    click.echo(report.summary_line(len(trials)) + f"  (experiment {options['experiment']!r} in {uri})")
    if report.count("failed"):
        ctx.exit(1)


def _first(*values: Any) -> Any:
    """The first value that is not None: an explicit option, then the quick suite's, then the default."""
    return next(value for value in values if value is not None)


def _table_text(uri: str, experiment: str, sweep: str | None, plugins: Plugins, metrics: tuple[str, ...] = ()) -> str:
    from benchbench.runner import metric_directions
    from benchbench.table import DEFAULT_METRICS, load_runs, summarise, to_markdown

    chosen = list(metrics or DEFAULT_METRICS)
    runs = load_runs(uri, experiment, sweep)
    return to_markdown(summarise(runs, chosen), chosen, metric_directions(plugins.extra_modules))


# -- bench table -----------------------------------------------------------------------------------
@cli.command("table")
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

    text = _table_text(resolve_uri(tracking_uri), experiment, None if all_sweeps else "latest", _plugins(ctx), metrics)
    if output:
        with open(output, "w") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


# -- bench ui --------------------------------------------------------------------------------------
@cli.command("ui")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (as for bench run).")
@click.option("--port", type=int, default=5000, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
def ui_command(tracking_uri: str | None, port: int) -> None:
    """Start the MLflow UI on the tracking store, bound to 127.0.0.1; Ctrl-C stops it."""
    from benchbench.tracking import tracking_uri as resolve_uri
    from benchbench.ui import serve

    serve(resolve_uri(tracking_uri), "127.0.0.1", port or None, echo=lambda text: click.echo(text, err=False))


def main() -> None:
    cli(prog_name="bench")
