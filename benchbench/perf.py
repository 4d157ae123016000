"""``bench perf``: the cost of one train step per objective x backend x dimension.

Each measurement runs the backend's training program through the core's loop (benchbench.training, the code
``bench run`` times), on standard normal data: ``repeats`` trainings of ``steps`` steps each, whose first step
(compile) and warm-up steps are reported apart. The figure is the median over the trainings of the mean timed
step, so one slow training (another process on a shared machine) does not move it.

By default every measurement runs in a fresh process: the process peak memory a CPU backend reports is
then that measurement's alone, torch and JAX thread pools never compete, and a compile cache never
carries over; ``--cpus`` pins those processes, for numbers that survive a busy shared machine. A backend
or objective that cannot run is reported as a row with the reason, not fatal.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchbench import training
from benchbench.errors import BenchError, SkipTrial, UsageError
from benchbench.params import format_spec, parse_spec, resolve
from benchbench.plugins import Plugins, get_plugins
from benchbench.specs import Data, resolve_ref
from benchbench.trial import Settings, Trial

DIMS = (2, 16, 64, 256)
IMAGE_DIMS = (16, 64, 256)
"""The default dimensions of ``--model conv``: 4x4, 8x8 (the digits) and 16x16 images."""


@dataclass(frozen=True)
class Job:
    """One measurement: everything a (possibly fresh) process needs, as JSON."""

    objective: str
    params: Mapping[str, str]
    backend: str
    dim: int
    batch: int
    repeats: int
    steps: int
    settings: Mapping[str, Any]
    plugin_modules: tuple[str, ...] = ()

    @property
    def variant(self) -> str:
        return format_spec("", self.params).lstrip(":") or "default"


@dataclass
class Record:
    """One row of the output; ``--json`` prints exactly these keys."""

    objective: str
    backend: str
    variant: str
    dim: int
    batch: int
    compiled: bool = False
    ms_median: float | None = None
    peak_memory_mb: float | None = None
    compile_s: float | None = None
    memory_source: str = ""
    device: str = ""
    threads: str = ""
    """The intra-op threads the program ran with (its ``threads`` tag)."""
    mflop_per_step: float | None = None
    """The step's floating-point operations, counted by the framework (torch's FLOP formulas, XLA's cost analysis)."""
    matmul_gflop_per_s: float | None = None
    """The framework's best rate on a 1024 x 1024 matmul in the same process: the ceiling of this machine."""
    floor_ms: float | None = None
    """mflop_per_step at matmul_gflop_per_s: the time the step's arithmetic needs at the ceiling."""
    floor_ratio: float | None = None
    """ms_median / floor_ms: 1 is the arithmetic floor; small steps are dominated by dispatch, not arithmetic."""
    error: str | None = None


def jobs_for(
    plugins: Plugins,
    objectives: Sequence[str],
    backends: Sequence[str],
    dims: Sequence[int],
    batch: int,
    repeats: int,
    steps: int,
    settings: Mapping[str, Any],
) -> list[Job]:
    """The measurement matrix; an objective that declares a ``perf_reference`` variant (exact: the loop over d) is
    timed with it too, unless the user chose one of the variant's parameters."""
    specs = [parse_spec(spec) for spec in objectives or plugins.names("objective")]
    for name, params in specs:
        resolve(f"objective {name!r}", plugins.get("objective", name).params, params)
    for name in backends:
        plugins.get("backend", name)
    with_loop: list[tuple[str, dict[str, str], Mapping[str, Any]]] = []
    for name, params in specs:
        with_loop.append((name, params, settings))
        reference = dict(plugins.get("objective", name).perf_reference)
        if reference and not reference.keys() & params.keys():
            with_loop.append((name, params | reference, dict(settings) | {"compile": False}))
    return [
        Job(name, params, backend, dim, batch, repeats, steps, job_settings, plugins.extra_modules)
        for dim in dims
        for name, params, job_settings in with_loop
        for backend in backends or plugins.names("backend")
    ]


def measure(job: Job) -> Record:
    """Time one job in this process; every failure becomes the record's ``error``."""
    record = Record(job.objective, job.backend, job.variant, job.dim, job.batch, bool(job.settings.get("compile")))
    try:
        plugins = get_plugins(job.plugin_modules)
        objective = plugins.get("objective", job.objective)
        backend = plugins.get("backend", job.backend)
        reason = backend.unavailable_reason()
        if reason:
            raise SkipTrial(f"backend {job.backend!r} is unavailable ({reason})")
        objective.loss_for(backend.loss_key)
        hparams = resolve(f"objective {job.objective!r}", objective.params, job.params)
        make_program = resolve_ref(backend.program, f"backend {job.backend!r}")
        trial = Trial(
            job.objective,
            hparams,
            job.backend,
            "perf-normal",
            {"dim": job.dim},
            seed=0,
            settings=Settings(steps=job.steps, batch_size=job.batch, **job.settings),
        )
        data = _normal_data(job.dim, job.batch, job.settings.get("model") == "conv")
        runs = []
        for _ in range(job.repeats):
            program = make_program(trial, data, objective, hparams)
            runs.append(training.train(program, training.Budget(steps=job.steps), name=f"perf {job.objective}"))
        record.ms_median = statistics.median(run.step_ms for run in runs if run.step_ms is not None)
        record.compile_s = runs[0].compile_s
        known = [run.peak_memory_mb for run in runs if run.peak_memory_mb is not None]
        record.peak_memory_mb = max(known) if known else None
        record.memory_source, record.device = runs[-1].memory_source, runs[-1].device
        record.threads = str(runs[-1].tags.get("threads", ""))
        _floor(record, program)
    except Exception as error:  # noqa: BLE001 - a failing combination is a row of the report, not a crash
        record.error = str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
    return record


def _floor(record: Record, program: Any) -> None:
    """The step's FLOPs and the machine's matmul rate, where the program can count them (optional methods)."""
    count, rate = getattr(program, "step_flops", None), getattr(program, "matmul_flops_per_s", None)
    flops = count() if count is not None and rate is not None else None
    if flops is None:
        return
    record.mflop_per_step = flops / 1e6
    record.matmul_gflop_per_s = rate() / 1e9
    record.floor_ms = record.mflop_per_step / record.matmul_gflop_per_s
    if record.ms_median:
        record.floor_ratio = record.ms_median / record.floor_ms


def image_side(dim: int) -> int:
    """The side of the square one-channel image of ``dim`` pixels that ``--model conv`` is timed on."""
    side = math.isqrt(dim)
    if side * side != dim:
        raise UsageError(f"--model conv times a square one-channel image of --dim pixels: {dim} is not a square")
    return side


def _normal_data(dim: int, batch: int, image: bool = False) -> Data:
    rng = np.random.default_rng(0)
    train = rng.standard_normal((max(8 * batch, 1024), dim)).astype(np.float32)
    shape: tuple[int, ...] = (dim,)
    if image:
        side = image_side(dim)
        shape = (side, side, 1)
    return Data(name="perf-normal", train=train, test=train[:batch], shape=shape)


def run_jobs(jobs: Iterable[Job], isolate: bool, cpus: int | None = None) -> Iterable[Record]:
    """Measure each job, each in a fresh Python process when ``isolate`` (pinned to ``cpus`` CPUs if given)."""
    for job in jobs:
        yield _measure_in_subprocess(job, cpus) if isolate else measure(job)


def _measure_in_subprocess(job: Job, cpus: int | None) -> Record:
    """A plain subprocess, not multiprocessing: spawning re-imports the caller's main module, which a
    script calling ``perf_command`` without an ``if __name__ == "__main__"`` guard cannot survive.

    ``cpus`` pins the process to that many CPUs and sizes torch's OpenMP pool to match; XLA sizes its
    pools from the affinity mask (measured: 13 threads in a JAX process pinned to one CPU, 17 on two).
    On a machine other processes share, two spinning OpenMP threads on two cores can stall each other
    (measured: median torch step 14 ms with two threads, 1.8 ms with one).
    """
    env = dict(os.environ)
    pin = None
    if cpus is not None:
        chosen = sorted(os.sched_getaffinity(0))[:cpus]
        env["OMP_NUM_THREADS"] = str(len(chosen))

        def pin() -> None:
            os.sched_setaffinity(0, chosen)

    process = subprocess.run(
        [sys.executable, "-c", "from benchbench.perf import worker; worker()"],
        input=json.dumps(asdict(job)),
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=pin,
    )
    if process.returncode == 0:
        return Record(**json.loads(process.stdout.strip().splitlines()[-1]))
    lines = process.stderr.strip().splitlines() or [f"exit status {process.returncode}"]
    record = Record(job.objective, job.backend, job.variant, job.dim, job.batch, bool(job.settings.get("compile")))
    record.error = f"measuring process failed (exit status {process.returncode}): {lines[-1]}"
    return record


def worker() -> None:
    """One measurement: a JSON :class:`Job` on stdin, its JSON :class:`Record` as the last line of stdout."""
    data = json.loads(sys.stdin.read())
    job = Job(**data | {"plugin_modules": tuple(data["plugin_modules"])})
    print(json.dumps(asdict(measure(job))))


def print_table(records: list[Record]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "objective",
        "variant",
        "backend",
        "d",
        "batch",
        "compiled",
        "ms / step",
        "peak MB",
        "compile s",
        "MFLOP",
        "floor ms",
        "x floor",
        "note",
        title="bench perf",
    )
    for r in records:
        table.add_row(
            r.objective,
            r.variant,
            r.backend,
            str(r.dim),
            str(r.batch),
            "yes" if r.compiled else "no",
            "" if r.ms_median is None else f"{r.ms_median:.3g}",
            "" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
            "" if r.compile_s is None else f"{r.compile_s:.2f}",
            "" if r.mflop_per_step is None else f"{r.mflop_per_step:.3g}",
            "" if r.floor_ms is None else f"{r.floor_ms:.3g}",
            "" if r.floor_ratio is None else f"{r.floor_ratio:.3g}",
            r.error or "",
        )
    rates = sorted({f"{r.backend} {r.matmul_gflop_per_s:.0f}" for r in records if r.matmul_gflop_per_s})
    if rates:
        table.caption = (
            "floor ms: the step's FLOPs (counted by the framework) at the best 1024x1024 matmul rate measured in "
            f"the same process, GFLOP/s: {', '.join(rates)}; x floor = ms / step over floor ms"
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
