"""``bench perf``: the cost of one train step per objective x backend x dimension (see benchbench.perf)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from benchbench import perf
from benchbench.commands import plugins_of


@click.command("perf")
@click.option(
    "-o",
    "--objective",
    "objectives",
    multiple=True,
    metavar="NAME[:k=v,...]",
    help="Objective and hyperparameters. Repeatable; default: every objective (and each one's reference variant, "
    "e.g. exact with method=loop).",
)
@click.option("-b", "--backend", "backends", multiple=True, metavar="NAME", help="Backend. Repeatable; default: all.")
@click.option(
    "--dim",
    "dims",
    multiple=True,
    type=click.IntRange(min=1),
    help="Data dimension. Repeatable; default: 2, 16, 64, 256 (--model conv: 16, 64, 256).",
)
@click.option("--batch", type=click.IntRange(min=1), default=128, show_default=True, help="Batch size.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Train calls per row.")
@click.option(
    "--steps",
    type=click.IntRange(min=3),
    default=40,
    show_default=True,
    help="Steps per training: the first compiles, warm-up takes at most a quarter, the rest are timed.",
)
@click.option("--compile", "compile_", is_flag=True, help="Compile the step (torch.compile; JAX always jits).")
@click.option("--width", type=click.IntRange(min=1), default=128, show_default=True, help="Hidden width.")
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True, help="Hidden layers.")
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda", "gpu"]),
    help="Where to train.",
)
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]), help="dtype.")
@click.option(
    "--model",
    default="mlp",
    show_default=True,
    type=click.Choice(["mlp", "energy-mlp", "conv"]),
    help="Score network s(x), energy network E(x) with s = -grad E, or the U-Net on a square one-channel image of "
    "--dim pixels (--dim 64: the 8x8 digits).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Intra-op threads of the backend (default: the backend's; JAX applies it only in a fresh process).",
)
@click.option(
    "--isolate/--in-process",
    default=True,
    show_default=True,
    help="Measure each row in a fresh process (own peak memory, no shared thread pools or compile caches).",
)
@click.option(
    "--cpus",
    type=click.IntRange(min=1),
    default=None,
    help="Pin each measuring process to this many CPUs (with --isolate); default: all.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line instead of the table.")
@click.pass_context
def perf_command(ctx: click.Context, **options: Any) -> None:
    """Time one train step per objective x backend x dimension (median ms, peak memory, compile time)."""
    plugins = plugins_of(ctx)
    settings = {k: options[k] for k in ("width", "depth", "device", "dtype", "model", "threads")} | {
        "compile": options["compile_"]
    }
    conv = options["model"] == "conv"
    dims = options["dims"] or (perf.IMAGE_DIMS if conv else perf.DIMS)
    if conv:  # a non-square --dim is a usage error before anything is measured
        for dim in dims:
            perf.image_side(dim)
    jobs = perf.jobs_for(
        plugins,
        options["objectives"],
        options["backends"],
        dims,
        options["batch"],
        options["repeats"],
        options["steps"],
        settings,
    )
    records = []
    if options["cpus"] is not None and not options["isolate"]:
        raise click.UsageError("--cpus pins the measuring processes: it needs --isolate")
    for record in perf.run_jobs(jobs, options["isolate"], options["cpus"]):
        if options["as_json"]:
            click.echo(json.dumps(asdict(record)))
        records.append(record)
    if not options["as_json"]:
        perf.print_table(records)
