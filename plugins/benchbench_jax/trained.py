"""A trained JAX score network seen from numpy (for metrics) and as a pure function (for samplers)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import numpy as np

from benchbench_jax.autodiff import score_and_trace
from benchbench_jax.models import Architecture, Params, score, score_function

# Rows per call: at most _ROWS, padded up to a power of two up to _GRANULE rows and to a multiple of _GRANULE above,
# so each method compiles at most 14 programs per architecture and a block wastes at most 63 rows. A few rows cost a
# few rows: padded to a fixed 512, the 8-image MAP pictures of a digits U-Net cost as much as the 500-image MAP
# metrics (46 of a trial's 266 s); padded to a power of two, the 297 test digits of the MAP metrics cost 512 (the
# JAX trial's MAP solves took 3x torch's). 512 rows with 64 basis vectors per block keeps a 784-d trace at
# 512 x 64 x width numbers per layer (16 MB at width 128, float32).
_ROWS = 512
_GRANULE = 64
_TRACE_CHUNK = 64


@functools.partial(jax.jit, static_argnums=0)
def _scores(arch: Architecture, params: Params, x: jax.Array, sigma: jax.Array | None) -> jax.Array:
    """Jitted on the (hashable) architecture, so every model of one shape shares the compiled program."""
    return score(arch, params, x, sigma if arch.noise_conditional else None)


@functools.partial(jax.jit, static_argnums=0)
def _scores_and_traces(
    arch: Architecture, params: Params, x: jax.Array, sigma: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    fn = score_function(arch, params, sigma if arch.noise_conditional else None)
    return score_and_trace(fn, x, chunk=_TRACE_CHUNK if arch.dim > _TRACE_CHUNK else 0)


@dataclass(frozen=True)
class Apply:
    """A model's pure score function, equal for equal architectures: a sampler that jits it as a static argument
    compiles once per architecture, not once per trained model (a bound method hashes by its object: measured,
    0.6 s of compiling in every trial's Langevin sampler)."""

    arch: Architecture

    def __call__(self, params: Params, x: jax.Array, sigma: jax.Array | None = None) -> jax.Array:
        return score(self.arch, params, x, sigma if self.arch.noise_conditional else None)


class JaxModel:
    """``score``/``score_and_trace`` take and return numpy; ``apply(params, x, sigma)`` is pure and jittable."""

    backend = "jax"

    def __init__(self, arch: Architecture, params: Params, device: jax.Device, sigmas: np.ndarray | None) -> None:
        self.arch, self.params, self.device, self.sigmas = arch, params, device, sigmas
        self.noise_conditional = arch.noise_conditional
        self.compiled_loops = arch.compiled_loops  # samplers scan the steps, or dispatch them one by one
        self.dtype = params["layers"][0]["w"].dtype

    @property
    def apply(self) -> Apply:
        """``apply(params, x, sigma=None)``: scores ``(n, d)``; ``sigma`` ``(n,)`` is required by a
        noise-conditional model, else ignored."""
        return Apply(self.arch)

    def _blocks(self, x: np.ndarray, sigma: float | None):
        """Fixed-size row blocks on the model's device, each with its sigma column (or None) and true length."""
        x = np.asarray(x, dtype=self.dtype)
        if self.noise_conditional and sigma is None:
            raise ValueError("a noise-conditional model needs sigma; its ladder is model.sigmas")
        for start in range(0, len(x), _ROWS):
            block = x[start : start + _ROWS]
            rows = len(block)
            size = 1 << (rows - 1).bit_length() if rows <= _GRANULE else -(-rows // _GRANULE) * _GRANULE
            padded = np.zeros((size, x.shape[1]), self.dtype)
            padded[:rows] = block
            noise = None
            if self.noise_conditional:
                noise = jax.device_put(np.full(size, sigma, self.dtype), self.device)
            yield jax.device_put(padded, self.device), noise, rows

    def score(self, x: np.ndarray, sigma: float | None = None) -> np.ndarray:
        parts = [
            np.asarray(_scores(self.arch, self.params, block, noise))[:rows]
            for block, noise, rows in self._blocks(x, sigma)
        ]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, self.arch.dim))

    def score_and_trace(self, x: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores, traces = [], []
        for block, noise, rows in self._blocks(x, sigma):
            s, t = _scores_and_traces(self.arch, self.params, block, noise)
            scores.append(np.asarray(s)[:rows])
            traces.append(np.asarray(t)[:rows])
        if not scores:
            return np.zeros((0, self.arch.dim)), np.zeros(0)
        return np.concatenate(scores).astype(np.float64), np.concatenate(traces).astype(np.float64)
