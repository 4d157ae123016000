"""Densities made by warping a Gaussian: the twisted Gaussian ("banana") and Neal's funnel.

Both are the classic hard cases for samplers and score models: curvature that a linear score cannot
follow (banana) and a scale that changes by orders of magnitude across the support (funnel).
Neither has a closed-form Gaussian convolution, so ``perturbed_score`` is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench import Data, draw_split

_LOG_2PI = np.log(2 * np.pi)
BANANA_X1_VARIANCE = 100.0
FUNNEL_V_STD = 3.0


def banana_log_prob(x: np.ndarray, b: float) -> np.ndarray:
    """Haario, Saksman & Tamminen (1999): x ~ N(0, diag(100, 1, ..., 1)), then x2 += b (x1^2 - 100).

    The map has unit Jacobian, so log p(y) = log N(y1; 0, 100) + log N(u; 0, 1) + sum_{i>2} log N(yi; 0, 1)
    with u = y2 - b (y1^2 - 100).
    """
    u = x[:, 1] - b * (x[:, 0] ** 2 - BANANA_X1_VARIANCE)
    rest = np.sum(x[:, 2:] ** 2, axis=1)
    quadratic = x[:, 0] ** 2 / BANANA_X1_VARIANCE + u**2 + rest
    return -0.5 * (quadratic + np.log(BANANA_X1_VARIANCE) + x.shape[1] * _LOG_2PI)


def banana_score(x: np.ndarray, b: float) -> np.ndarray:
    """d/dy1 = -y1 / 100 + 2 b y1 u, d/dy2 = -u, d/dyi = -yi for i > 2."""
    u = x[:, 1] - b * (x[:, 0] ** 2 - BANANA_X1_VARIANCE)
    out = -np.array(x, dtype=np.float64)
    out[:, 0] = -x[:, 0] / BANANA_X1_VARIANCE + 2 * b * x[:, 0] * u
    out[:, 1] = -u
    return out


def banana_sample(n: int, dim: int, b: float, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    x[:, 0] *= np.sqrt(BANANA_X1_VARIANCE)
    x[:, 1] += b * (x[:, 0] ** 2 - BANANA_X1_VARIANCE)
    return x


def load_banana(params: Mapping[str, Any], seed: int) -> Data:
    dim, b = params["dim"], params["bananicity"]
    train, test = draw_split(lambda n, rng: banana_sample(n, dim, b, rng), params, seed)
    return Data(
        name="banana",
        train=train,
        test=test,
        shape=(dim,),
        score=lambda x: banana_score(np.asarray(x, dtype=np.float64), b),
        log_prob=lambda x: banana_log_prob(np.asarray(x, dtype=np.float64), b),
    )


def funnel_log_prob(x: np.ndarray) -> np.ndarray:
    """Neal (2003), "Slice sampling", section 8: v = x[:, 0] ~ N(0, 3^2), x_i | v ~ N(0, e^v), i >= 1."""
    v, rest = x[:, 0], x[:, 1:]
    k = rest.shape[1]
    log_v = -0.5 * (v / FUNNEL_V_STD) ** 2 - np.log(FUNNEL_V_STD) - 0.5 * _LOG_2PI
    return log_v - 0.5 * np.exp(-v) * np.sum(rest**2, axis=1) - 0.5 * k * (v + _LOG_2PI)


def funnel_score(x: np.ndarray) -> np.ndarray:
    """d/dv = -v / 9 - k / 2 + e^-v |x_rest|^2 / 2, d/dx_i = -x_i e^-v (k = dim - 1)."""
    v, rest = x[:, 0], x[:, 1:]
    precision = np.exp(-v)
    out = np.empty_like(x, dtype=np.float64)
    out[:, 0] = -v / FUNNEL_V_STD**2 - 0.5 * rest.shape[1] + 0.5 * precision * np.sum(rest**2, axis=1)
    out[:, 1:] = -rest * precision[:, None]
    return out


def funnel_sample(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    v = FUNNEL_V_STD * rng.standard_normal(n)
    return np.column_stack([v, rng.standard_normal((n, dim - 1)) * np.exp(0.5 * v)[:, None]])


def load_funnel(params: Mapping[str, Any], seed: int) -> Data:
    dim = params["dim"]
    train, test = draw_split(lambda n, rng: funnel_sample(n, dim, rng), params, seed)
    return Data(
        name="funnel",
        train=train,
        test=test,
        shape=(dim,),
        score=lambda x: funnel_score(np.asarray(x, dtype=np.float64)),
        log_prob=lambda x: funnel_log_prob(np.asarray(x, dtype=np.float64)),
    )
