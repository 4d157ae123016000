"""Isotropic Gaussian mixtures, the one density behind gmm, ncsn-mixture and every 2-D benchmark set.

p(x) = sum_k w_k N(x; mu_k, s_k^2 I). Everything is exact and vectorised in float64:

- log p(x) = logsumexp_k [log w_k - |x - mu_k|^2 / (2 s_k^2) - (d/2) log(2 pi s_k^2)]
- grad log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2, with responsibilities r = softmax of the same logits
- convolving with N(0, sigma^2 I) only widens each component: s_k^2 -> s_k^2 + sigma^2, so the
  perturbed score that denoising score matching targets is the same formula.

Squared distances are computed as differences, not as |x|^2 - 2 x.mu + |mu|^2: the expansion loses
all precision 1e3 away from a narrow mode, where the difference form stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbench import Data, ParameterError, draw_split

_CHUNK_FLOATS = 1 << 22
"""Points x components x dims per chunk (32 MiB of float64), so a 3,000-component set stays in memory."""


@dataclass(frozen=True)
class Mixture:
    """sum_k weights[k] N(means[k], stds[k]^2 I); weights sum to one."""

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])


def concat(parts: list[Mixture], masses: list[float]) -> Mixture:
    """One mixture made of ``parts``, part i carrying total probability ``masses[i]``."""
    total = float(sum(masses))
    return Mixture(
        means=np.concatenate([part.means for part in parts]),
        stds=np.concatenate([part.stds for part in parts]),
        weights=np.concatenate([part.weights * (mass / total) for part, mass in zip(parts, masses)]),
    )


def _logits(mix: Mixture, x: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log w_k + log N(x; mu_k, variances_k I), shape (n, K)."""
    squared = np.zeros((len(x), len(mix.weights)))
    # A loop over the shorter axis: 4x faster than reducing an (n, K, d) array at d = 2, K = 800.
    if mix.dim <= len(mix.weights):
        for j in range(mix.dim):
            squared += (x[:, j, None] - mix.means[None, :, j]) ** 2
    else:
        for k, mean in enumerate(mix.means):
            squared[:, k] = np.sum((x - mean) ** 2, axis=1)
    log_norm = 0.5 * mix.dim * np.log(2 * np.pi * variances)
    return np.log(mix.weights) - 0.5 * squared / variances - log_norm


def _blocks(mix: Mixture, n: int) -> list[slice]:
    step = max(1, _CHUNK_FLOATS // (len(mix.weights) * mix.dim))
    return [slice(start, start + step) for start in range(0, n, step)]


def log_prob(mix: Mixture, x: np.ndarray) -> np.ndarray:
    """log p(x) for points (n, d), by logsumexp over components."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(len(x))
    variances = mix.stds**2
    for block in _blocks(mix, len(x)):
        logits = _logits(mix, x[block], variances)
        peak = logits.max(axis=1, keepdims=True)
        out[block] = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    return out


def score(mix: Mixture, x: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """grad log (p * N(0, sigma^2 I))(x); ``sigma=0`` is the score of p itself."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    variances = mix.stds**2 + float(sigma) ** 2
    pull = mix.means / variances[:, None]
    for block in _blocks(mix, len(x)):
        logits = _logits(mix, x[block], variances)
        resp = np.exp(logits - logits.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        out[block] = resp @ pull - x[block] * (resp @ (1.0 / variances))[:, None]
    return out


def sample(mix: Mixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """n independent draws: a component by weight, then its Gaussian."""
    component = rng.choice(len(mix.weights), size=n, p=mix.weights)
    return mix.means[component] + mix.stds[component, None] * rng.standard_normal((n, mix.dim))


def mixture_data(name: str, mix: Mixture, params: Mapping[str, Any], seed: int, has_modes: bool) -> Data:
    """The Data of a mixture density; ``has_modes`` when its components are the modes a user thinks of
    (gmm, 8gaussians), not hundreds of small Gaussians laid along a curve."""
    train, test = draw_split(lambda n, rng: sample(mix, n, rng), params, seed)
    return Data(
        name=name,
        train=train,
        test=test,
        shape=(mix.dim,),
        score=lambda x: score(mix, x),
        log_prob=lambda x: log_prob(mix, x),
        perturbed_score=lambda x, sigma: score(mix, x, sigma),
        modes=mix.means if has_modes else None,
        weights=mix.weights if has_modes else None,
        info={"components": len(mix.weights)},
    )


def load_gmm(params: Mapping[str, Any], seed: int) -> Data:
    """k modes with every coordinate spread * N(0, 1) (drawn from ``density_seed``), common std.

    Weights are relative: they are normalised to sum to one, and there must be exactly k of them.
    """
    dim, k = params["dim"], params["k"]
    weights = np.asarray(params["weights"] or np.ones(k), dtype=np.float64)
    if len(weights) != k:
        raise ParameterError(
            f"dataset 'gmm': parameter weights={','.join(f'{w:g}' for w in weights)} has {len(weights)} values "
            f"but k={k}; give k positive weights, or none for equal weights"
        )
    if np.any(weights <= 0):
        raise ParameterError(
            f"dataset 'gmm': parameter weights={','.join(f'{w:g}' for w in weights)} has a weight <= 0; "
            "every weight must be positive"
        )
    means = params["spread"] * np.random.default_rng(params["density_seed"]).standard_normal((k, dim))
    mix = Mixture(means, np.full(k, float(params["std"])), weights / weights.sum())
    return mixture_data("gmm", mix, params, seed, has_modes=True)


def load_ncsn(params: Mapping[str, Any], seed: int) -> Data:
    """Song & Ermon (2019), NCSN, section 3.2: 0.8 N((5, 5), I) + 0.2 N((-5, -5), I).

    Plain Langevin dynamics with the exact score cannot move mass between the far-apart modes and
    recovers the wrong weights; annealed Langevin recovers them.
    """
    mix = Mixture(means=np.array([[5.0, 5.0], [-5.0, -5.0]]), stds=np.ones(2), weights=np.array([0.8, 0.2]))
    return mixture_data("ncsn-mixture", mix, params, seed, has_modes=True)
