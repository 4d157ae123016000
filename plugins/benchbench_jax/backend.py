"""The JAX training program that the core's loop drives (:mod:`benchbench.training`).

jax + optax on plain pytrees (see :mod:`benchbench_jax.models` for why no flax/equinox). One jit-compiled
function runs up to :data:`STEPS_PER_RUN` steps (minibatch sampling, loss, gradient and the Adam update) in a
``lax.fori_loop`` whose trip count is an argument, so every call length shares one compiled program and the
host dispatches once per call instead of once per step. The convolutional network is the exception: XLA's CPU
backend runs convolutions slowly in loop bodies, so its steps are dispatched one by one (``compiled_loops`` of
:class:`benchbench_jax.convnet.ConvArchitecture`).
"""

from __future__ import annotations

import functools
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchbench import Data, Objective, TrialFailure, UsageError
from benchbench.noise import objective_ladder, objective_preconditioning
from benchbench_jax.convnet import architecture as conv_architecture
from benchbench_jax.models import Architecture, init_params, score_function
from benchbench_jax.trained import JaxModel

STEPS_PER_RUN = 50
"""The most steps one compiled call runs; the core checks the losses (a device-to-host copy) after each call."""


def resolve_device(requested: str) -> jax.Device:
    """auto: JAX's default device (a GPU when jaxlib has one); cuda and gpu are the same request."""
    if requested in ("cuda", "gpu"):
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            platforms = sorted({device.platform for device in jax.devices()})
            raise UsageError(
                f"--device {requested}: JAX sees no GPU on this machine (platforms: {', '.join(platforms)})"
            ) from None
    if requested == "cpu":
        return jax.devices("cpu")[0]
    return jax.devices()[0]


def resolve_dtype(name: str) -> jnp.dtype:
    """float64 switches on ``jax_enable_x64`` for the whole process, once.

    Not the scoped ``jax.enable_x64`` context: outside it a float64 array is silently computed in float32
    (measured: a jitted ``x @ w`` of float64 arrays returned float32), so the trained model would lose its
    precision when a sampler calls ``apply`` later. float32 trials stay float32 because every array this
    package creates names its dtype (tested by running float32 after float64 in one process).
    """
    if name == "float64":
        if not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        return jnp.float64
    return jnp.float32


def peak_memory(device: jax.Device) -> tuple[float, str]:
    stats = device.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20, "jax device memory_stats peak_bytes_in_use (process-wide peak)"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return kib * scale, "process peak RSS (ru_maxrss, includes everything the process loaded)"


def _checked(name: str, value: Any) -> jax.Array:
    """The loss itself, or a TrialFailure naming the objective and what it returned instead of a scalar."""
    if isinstance(value, jax.Array):
        if value.shape == ():
            return value
        what = f"a jax array of shape {tuple(value.shape)}"
    else:
        shape = getattr(value, "shape", None)
        what = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
        what += "" if shape is None else f" of shape {tuple(shape)}"
    raise TrialFailure(f"objective {name!r} (jax loss) returned {what}, expected a scalar jax array")


class Program(NamedTuple):
    """The compiled functions of a trial, ``init(seed) -> state`` and ``run(*state, train_x, n_steps)``, and
    ``one_step(*state, train_x)`` (not compiled: ``bench perf`` counts its FLOPs with XLA's cost analysis)."""

    init: Callable
    run: Callable
    one_step: Callable


@functools.lru_cache(maxsize=32)
def compiled_program(
    arch: Architecture,
    name: str,
    loss_fn: Callable,
    hparams: tuple[tuple[str, Any], ...],
    lr: float,
    batch_size: int,
    dtype: jnp.dtype,
    fused: bool = True,
) -> Program:
    """``run(params, opt_state, key, train_x, n_steps) -> (params, opt_state, key, losses)``, donated.

    ``losses`` has at least ``n_steps`` entries, the first ``n_steps`` of them filled. ``fused``: the steps of
    a call run in one jitted ``fori_loop``; else one jitted step per dispatch (for convolutions, see the module
    docstring). Both draw the same keys in the same order, so they train the same network (tested).
    Cached on everything that shapes the compiled programs, so the seeds of a sweep (and the trials of one
    worker that share a configuration) trace and compile once: compiling a step costs 1.3-1.8 s of CPU here,
    more than 500 training steps of a small model. Initialisation is one jitted function too, because every
    eager JAX operation compiles its own small program the first time it meets a shape (measured: 40 of them
    for one eager initialisation, most of a short trial's time on this 2-core CPU).
    The minibatch is drawn inside the step, from the training set held on the device: against numpy
    indexing plus a host-to-device copy per step it was the faster (denoising step, min ms over interleaved
    rounds at load ~5: d=16 0.62 vs 0.66, d=64 0.73 vs 0.79).
    """
    optimizer = optax.adam(lr)
    kwargs = dict(hparams)

    def init(seed):
        init_key, key = jax.random.split(jax.random.key(seed))
        params = init_params(arch, init_key, dtype)
        return params, optimizer.init(params), key

    def objective_value(params, x: jax.Array, key: jax.Array) -> jax.Array:
        return _checked(name, loss_fn(score_function(arch, params), x, key, **kwargs))

    def step(i, carry):
        params, opt_state, key, losses, train_x = carry
        key, batch_key, loss_key = jax.random.split(key, 3)
        x = train_x[jax.random.randint(batch_key, (batch_size,), 0, train_x.shape[0])]
        loss, grads = jax.value_and_grad(objective_value)(params, x, loss_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, losses.at[i].set(loss), train_x

    def run(params, opt_state, key, train_x, n_steps):
        losses = jnp.full(STEPS_PER_RUN, jnp.nan, dtype)
        params, opt_state, key, losses, _ = jax.lax.fori_loop(
            0, n_steps, step, (params, opt_state, key, losses, train_x)
        )
        return params, opt_state, key, losses

    def one_step(params, opt_state, key, train_x):
        return step(0, (params, opt_state, key, jnp.zeros(1, dtype), train_x))

    if fused:
        return Program(jax.jit(init), jax.jit(run, donate_argnums=(0, 1, 2)), one_step)

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def single(params, opt_state, key, train_x):
        params, opt_state, key, losses, _ = one_step(params, opt_state, key, train_x)
        return params, opt_state, key, losses[0]

    def run_one_by_one(params, opt_state, key, train_x, n_steps):
        losses = []
        for _ in range(n_steps):
            params, opt_state, key, loss = single(params, opt_state, key, train_x)
            losses.append(loss)
        # device_get of the list, not an eager jnp.stack: that would compile one program per call length.
        return params, opt_state, key, np.asarray(jax.device_get(losses), dtype)

    return Program(jax.jit(init), run_one_by_one, one_step)


class JaxProgram:
    """A trial's compiled program and its data on the device; the state is ``(params, opt_state, key)``."""

    max_steps_per_run = STEPS_PER_RUN

    def __init__(self, trial: Any, data: Data, objective: Objective, hparams: Mapping[str, Any]) -> None:
        settings = trial.settings
        self.seed = trial.seed
        self.tags = {"threads": configure_threads(settings.threads), "compilation_cache": compilation_cache()}
        self.jax_device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype)
        self.sigmas = objective_ladder(objective, hparams, "jax")
        self.arch = (
            conv_architecture(settings, data.shape, objective.noise_conditional, data.name)
            if settings.model == "conv"
            else Architecture(
                dim=data.dim,
                width=settings.width,
                depth=settings.depth,
                activation=settings.activation,
                energy=settings.model == "energy-mlp",
                noise_conditional=objective.noise_conditional,
                preconditioning=objective_preconditioning(objective, hparams),
            )
        )
        fused = self.arch.compiled_loops
        self.program = compiled_program(
            self.arch,
            objective.name,
            objective.loss_for("jax"),
            tuple(sorted(hparams.items())),
            settings.lr,
            settings.batch_size,
            dtype,
            fused,
        )
        self.tags["steps_per_dispatch"] = str(STEPS_PER_RUN if fused else 1)
        self.train_x = jax.device_put(np.asarray(data.train, dtype), self.jax_device)
        self.device = "cpu" if self.jax_device.platform == "cpu" else self.jax_device.device_kind

    def init(self) -> tuple:
        with jax.default_device(self.jax_device):
            state = self.program.init(self.seed)
        # Committed to the device like every later state: an uncommitted first state made jit compile the step
        # a second time on its second call, inside the timed steps (the first seed of each configuration ran
        # about 2x slower than the others; seen with jax_log_compiles).
        return jax.device_put(state, self.jax_device)

    def run(self, state: tuple, n_steps: int) -> tuple[tuple, np.ndarray]:
        *state, losses = self.program.run(*state, self.train_x, n_steps)
        return tuple(state), np.asarray(losses)[:n_steps]

    def sync(self, state: tuple) -> None:
        jax.block_until_ready(state)

    def to_model(self, state: tuple) -> JaxModel:
        return JaxModel(self.arch, state[0], self.jax_device, self.sigmas)

    def peak_memory(self) -> tuple[float, str]:
        return peak_memory(self.jax_device)

    def step_flops(self) -> float:
        """XLA's cost analysis of one compiled step."""
        compiled = jax.jit(self.program.one_step).lower(*self.init(), self.train_x).compile()
        analysis = compiled.cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
        return float(analysis["flops"])

    def matmul_flops_per_s(self, size: int = 1024, repeats: int = 20) -> float:
        """FLOP/s of ``size`` x ``size`` matmuls on the program's device and dtype, the best of ``repeats``."""
        dtype = self.train_x.dtype
        a = jax.device_put(np.random.default_rng(0).standard_normal((size, size)).astype(dtype), self.jax_device)
        product = jax.jit(jnp.matmul)
        product(a, a).block_until_ready()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            product(a, a).block_until_ready()
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best


def compilation_cache() -> str:
    """Turn on JAX's persistent compilation cache, so that a configuration compiled by an earlier sweep (its train
    step, sampler, trace) loads instead of compiling again: measured on the 2-core CPU, a denoising trial at d=16
    took 7.1 s with a cold cache (compile_s 1.05) and 5.4 s with a warm one (compile_s 0.26).

    ``JAX_COMPILATION_CACHE_DIR`` chooses the folder (JAX reads it; an empty value turns the cache off); else
    ``$XDG_CACHE_HOME/benchbench/jax`` (``~/.cache/benchbench/jax``). Every compilation is cached, however short:
    a trial pays for a dozen small ones. Returns the folder in use, or "off", for the trial's tags.
    """
    if jax.config.jax_compilation_cache_dir is None and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "benchbench", "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return jax.config.jax_compilation_cache_dir or "off"


def configure_threads(requested: int | None) -> str:
    """XLA's CPU thread pool is fixed when JAX first initialises its backends in a process: ``--threads`` is
    applied then (through ``XLA_FLAGS``) and recorded; asked for later, the pool in effect is recorded."""
    from jax._src import xla_bridge

    if requested and not xla_bridge.backends_are_initialized():
        flags = os.environ.get("XLA_FLAGS", "")
        flags += f" --xla_cpu_multi_thread_eigen={'false' if requested == 1 else 'true'}"
        flags += f" intra_op_parallelism_threads={requested}"
        os.environ["XLA_FLAGS"] = flags.strip()
    flags = os.environ.get("XLA_FLAGS", "")
    match = re.search(r"intra_op_parallelism_threads=(\d+)", flags)
    return match.group(1) if match else f"xla default ({os.cpu_count()} cores)"
