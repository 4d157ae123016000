"""The JAX train loop: one trial from numpy data to a :class:`TrainResult`.

jax + optax on plain pytrees (see :mod:`benchbench_jax.models` for why no flax/equinox). One jit-compiled
step does minibatch sampling, loss, gradient and the Adam update; its first call (tracing + XLA compilation
+ one step) is reported as ``compile_s`` and every later step is timed with ``block_until_ready``.
"""

from __future__ import annotations

import functools
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchbench.errors import TrialFailure, UsageError
from benchbench.noise import objective_ladder
from benchbench.specs import Data, Objective, TrainResult
from benchbench_jax.models import Architecture, init_params, score_function
from benchbench_jax.trained import JaxModel

# Check for a non-finite loss every this many steps: each check waits for the device and copies the window.
_CHECK_EVERY = 50


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
    """The two compiled functions of a trial: ``init(seed) -> state`` and ``step(*state, train_x)``."""

    init: Callable
    step: Callable


@functools.lru_cache(maxsize=32)
def compiled_program(
    arch: Architecture,
    name: str,
    loss_fn: Callable,
    hparams: tuple[tuple[str, Any], ...],
    lr: float,
    batch_size: int,
    dtype: jnp.dtype,
) -> Program:
    """``step(params, opt_state, key, train_x) -> (params, opt_state, key, loss)``, jitted, buffers donated.

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

    def step(params, opt_state, key, train_x):
        key, batch_key, loss_key = jax.random.split(key, 3)
        x = train_x[jax.random.randint(batch_key, (batch_size,), 0, train_x.shape[0])]
        loss, grads = jax.value_and_grad(objective_value)(params, x, loss_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    return Program(jax.jit(init), jax.jit(step, donate_argnums=(0, 1, 2)))


def _check_window(window: np.ndarray, first_step: int, trial: Any) -> None:
    bad = np.flatnonzero(~np.isfinite(window))
    if bad.size:
        raise TrialFailure(f"{trial.run_name}: loss became {window[bad[0]]} at step {first_step + bad[0]}")


def train(
    trial: Any,
    data: Data,
    objective: Objective,
    hparams: Mapping[str, Any],
    progress: Callable[[int], None],
) -> TrainResult:
    """Train the trial's score network with Adam; losses stay on the device and are checked every 50 steps.

    ``compile_s`` is the first step, tracing and XLA compilation included (or only the step when an earlier
    trial of the same configuration compiled it: see :func:`compiled_program`); ``train_s`` is every later step.
    """
    settings = trial.settings
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype)
    sigmas = objective_ladder(objective, hparams, "jax")
    arch = Architecture(
        dim=data.dim,
        width=settings.width,
        depth=settings.depth,
        activation=settings.activation,
        energy=settings.model == "energy-mlp",
        noise_conditional=objective.noise_conditional,
    )
    program = compiled_program(
        arch,
        objective.name,
        objective.loss_for("jax"),
        tuple(sorted(hparams.items())),
        settings.lr,
        settings.batch_size,
        dtype,
    )
    with jax.default_device(device):
        params, opt_state, key = program.init(trial.seed)
        train_x = jax.device_put(np.asarray(data.train, dtype), device)
        start = time.perf_counter()
        params, opt_state, key, loss = program.step(params, opt_state, key, train_x)
        first = np.asarray(loss.block_until_ready())[None]
        compile_s = time.perf_counter() - start
        _check_window(first, 0, trial)
        progress(1)
        windows, pending = [first], []
        start = time.perf_counter()
        for i in range(1, settings.steps):
            params, opt_state, key, loss = program.step(params, opt_state, key, train_x)
            pending.append(loss)
            if (i + 1) % _CHECK_EVERY == 0 or i + 1 == settings.steps:
                windows.append(np.asarray(jax.device_get(pending)))
                _check_window(windows[-1], i + 1 - len(pending), trial)
                pending = []
                progress(i + 1)
        jax.block_until_ready(params)
        train_s = time.perf_counter() - start
    memory_mb, memory_source = peak_memory(device)
    return TrainResult(
        model=JaxModel(arch, params, device, sigmas),
        losses=np.concatenate(windows).astype(np.float64),
        steps=settings.steps,
        train_s=train_s,
        compile_s=compile_s,
        peak_memory_mb=memory_mb,
        memory_source=memory_source,
        device="cpu" if device.platform == "cpu" else device.device_kind,
    )
