"""``bench run``: validate the whole trial matrix, then run the sweep and print its table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click
from rich.console import Console

from benchbench.commands import DEFAULT_EXPERIMENT, first, plugins_of
from benchbench.commands.table import table_text
from benchbench.params import parse_spec
from benchbench.trial import MODELS

# The quick suite: every objective on every available backend, two small Gaussians, three seeds.
QUICK = {
    "objectives": ["all"],
    "datasets": ["gaussian:dim=2", "gaussian:dim=16,cond=10"],
    "seeds": 3,
    "steps": 1000,
}


@click.command("run")
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
@click.option(
    "--steps",
    type=int,
    default=None,
    help="Training steps per trial (default 1000; with --time-budget, the most steps, default unlimited).",
)
@click.option(
    "--time-budget",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Train each trial for this many seconds of training time (warm-up and timed steps, compile excluded) "
    "instead of a number of steps; the table gives the steps each trial reached.",
)
@click.option(
    "--eval-every",
    type=int,
    default=None,
    metavar="N",
    help="Evaluate the score metrics every N steps for the convergence curves (default: a geometric schedule, "
    "10, 15, 25, 40, 60, 100, ...).",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Intra-op threads of the backend (default: the backend's, chosen by measurement; recorded as a tag).",
)
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
    type=click.Choice(MODELS),
    help="mlp: score network s(x); energy-mlp: energy network E(x) with s = -grad E; conv: a small "
    "convolutional U-Net for image datasets (base channels --width/8; trials on data without an image "
    "shape are skipped).",
)
@click.option("--width", type=int, default=128, show_default=True, help="Hidden width of the network.")
@click.option("--depth", type=int, default=3, show_default=True, help="Number of hidden layers.")
@click.option(
    "--activation",
    default="softplus",
    show_default=True,
    type=click.Choice(["softplus", "tanh", "elu", "swish", "relu"]),
)
@click.option("--compile", "compile_", is_flag=True, help="Compile the whole torch train step into one graph.")
@click.option(
    "--sampler",
    default=None,
    metavar="NAME[:k=v,...]",
    help="Sampler for sample-quality metrics (default: annealed Langevin for noise-conditional "
    "models, Langevin otherwise).",
)
@click.option("--n-samples", type=int, default=1000, show_default=True, help="Samples drawn per trial.")
@click.option(
    "--executor",
    default="local",
    show_default=True,
    metavar="NAME[:k=v,...]",
    help="Where trials run: local, process (a local pool), ray; see bench list executors.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Trials running at once (executors process and ray). Above 1 on a sqlite store, trials log through "
    "a private MLflow server started for the sweep.",
)
@click.option(
    "--address",
    default=None,
    metavar="auto|HOST:PORT|ray://HOST:PORT",
    help="Ray cluster to run on (executor ray; default: $RAY_ADDRESS, else a local Ray instance for the sweep).",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Budget of one trial's training and evaluation; a trial over it ends FAILED with reason timeout.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip trials that already have a finished run (same config hash) in the experiment; run failed, "
    "killed and new ones.",
)
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
    from benchbench.preflight import check_inputs
    from benchbench.store import check_experiment_name, check_uri
    from benchbench.sweep import SweepInterrupted, resolve_executor, run_sweep
    from benchbench.tracking import tracking_uri
    from benchbench.trial import Settings, build_trials

    plugins = plugins_of(ctx)
    objectives = list(options["objectives"]) or (QUICK["objectives"] if options["quick"] else [])
    datasets = list(options["datasets"]) or (QUICK["datasets"] if options["quick"] else [])
    if not objectives:
        raise click.UsageError("give at least one -o/--objective (or 'all'), or --quick")
    if not datasets:
        raise click.UsageError("give at least one -d/--dataset, or --quick")
    sampler, sampler_params = parse_spec(options["sampler"]) if options["sampler"] else (None, {})
    settings = Settings(
        steps=first(
            options["steps"],
            QUICK["steps"] if options["quick"] and options["time_budget"] is None else None,
            None if options["time_budget"] is not None else 1000,
        ),
        time_budget=options["time_budget"],
        eval_every=options["eval_every"],
        threads=options["threads"],
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
    seeds = first(options["seeds"], QUICK["seeds"] if options["quick"] else None, 1)
    executor_given = {"workers": options["workers"], "address": options["address"]}
    _, executor_options = resolve_executor(plugins, options["executor"], executor_given)
    if options["timeout"] is not None and not 0 < options["timeout"] < float("inf"):
        raise click.BadParameter(
            f"must be a positive number of seconds, got {options['timeout']}", param_hint="--timeout"
        )
    check_experiment_name(options["experiment"])
    uri = check_uri(tracking_uri(options["tracking_uri"]), "write", reach=not options["dry_run"])
    trials = build_trials(plugins, objectives, list(options["backends"]), datasets, seeds, settings)
    check_inputs(plugins, trials, on_this_machine=not _remote(executor_options))
    if options["dry_run"]:
        for trial in trials:
            click.echo(f"{trial.run_name}  {trial.config_hash}")
        click.echo(f"{len(trials)} trials (dry run: nothing trained)")
        return
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
            executor_given,
            console=Console(stderr=True, soft_wrap=True),
            sweep_params=sweep_params,
            resume=options["resume"],
            timeout=options["timeout"],
        )
    except KeyboardInterrupt as interrupt:
        done = f" ({interrupt})" if isinstance(interrupt, SweepInterrupted) else ""
        click.echo(
            f"bench: interrupted{done}; finished trials are in the tracking store, and the same command runs the rest",
            err=True,
        )
        ctx.exit(130)
    click.echo(table_text(uri, options["experiment"], report.parent_run_id, plugins), nl=False)
    click.echo(report.summary_line(len(trials)) + f"  (experiment {options['experiment']!r} in {uri})")
    if report.count("failed"):
        ctx.exit(1)


def _remote(executor_options: dict[str, Any]) -> bool:
    """Whether trials run on other machines (a Ray cluster address), whose devices and files are their own."""
    import os

    return "address" in executor_options and bool(executor_options["address"] or os.environ.get("RAY_ADDRESS"))
