"""Distances between two samples, or between a sample and a density known by its score: pure numpy, float64.

Every quadratic-time statistic here is a U-statistic (diagonal pairs left out), so it is unbiased and
near zero, possibly slightly negative, when the two samples come from the same distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Kernel = Callable[[np.ndarray], np.ndarray]
"""A radial kernel as a function of squared distances."""


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """||x_i - y_j||^2, (n, m), clipped at 0 against round-off of the expanded form."""
    sq = np.sum(x * x, axis=1)[:, None] + np.sum(y * y, axis=1)[None, :] - 2.0 * x @ y.T
    return np.maximum(sq, 0.0)


@dataclass(frozen=True)
class PairDistances:
    """Squared distances within ``x``, within ``y`` and between them: the three matrices every two-sample
    statistic below reads, computed once when several statistics compare the same two samples."""

    xx: np.ndarray
    yy: np.ndarray
    xy: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> PairDistances:
        return cls(squared_distances(x, x), squared_distances(y, y), squared_distances(x, y))

    def median_y(self) -> float:
        """The median heuristic of ``y`` (see :func:`median_distance`)."""
        return _median(self.yy)

    def mmd_squared(self, kernel: Kernel) -> float:
        """See :func:`mmd_squared`."""
        xx, yy, xy = kernel(self.xx), kernel(self.yy), kernel(self.xy)
        return _off_diagonal_mean(xx) + _off_diagonal_mean(yy) - 2.0 * float(xy.mean())

    def energy_distance(self) -> float:
        """See :func:`energy_distance`."""
        xx, yy, xy = np.sqrt(self.xx), np.sqrt(self.yy), np.sqrt(self.xy)
        return 2.0 * float(xy.mean()) - _off_diagonal_mean(xx) - _off_diagonal_mean(yy)


def median_distance(x: np.ndarray) -> float:
    """The median heuristic (Gretton et al. 2012): the median distance between distinct points of ``x``."""
    return _median(squared_distances(x, x))


def _median(squared: np.ndarray) -> float:
    return float(np.sqrt(np.median(squared[np.triu_indices(len(squared), k=1)])))


def rbf_kernel(bandwidth: float) -> Kernel:
    """k(x, y) = exp(-||x - y||^2 / (2 h^2))."""
    return lambda sq: np.exp(-sq / (2.0 * bandwidth**2))


def imq_kernel(c: float = 1.0, beta: float = -0.5) -> Kernel:
    """k(x, y) = (c^2 + ||x - y||^2)^beta; its heavy tails keep it sensitive to far-away mass, and with
    beta in (-1, 0) its Stein discrepancy detects non-convergence (Gorham & Mackey 2017)."""
    return lambda sq: _power(c * c + sq, beta)


def _power(base: np.ndarray, beta: float) -> np.ndarray:
    """``base ** beta``; for the usual beta = -1/2 as 1 / sqrt, 3.5x faster than numpy's general power on a
    2000 x 2000 matrix (70 ms against 20) and equal to the last bit or two."""
    return 1.0 / np.sqrt(base) if beta == -0.5 else base**beta


def _off_diagonal_mean(matrix: np.ndarray) -> float:
    n = len(matrix)
    return float((matrix.sum() - np.trace(matrix)) / (n * (n - 1)))


def mmd_squared(x: np.ndarray, y: np.ndarray, kernel: Kernel) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3): mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j)
    - 2 mean_{i,j} k(x_i, y_j)."""
    return PairDistances.of(x, y).mmd_squared(kernel)


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Szekely's energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| (within-sample means over distinct
    pairs); it is the MMD^2 of the distance kernel and zero only when the distributions are equal."""
    return PairDistances.of(x, y).energy_distance()


def random_directions(dim: int, n_projections: int, seed: int) -> np.ndarray:
    """Directions uniform on the unit sphere, (n_projections, dim)."""
    v = np.random.default_rng(seed).standard_normal((n_projections, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, directions: np.ndarray, p: int = 2) -> float:
    """SW_p = (mean over directions of W_p^p between the projected samples)^(1/p), as POT defines it.

    In 1-D, W_p^p = integral over t in (0, 1) of |F^-1(t) - G^-1(t)|^p: both empirical quantile functions
    are steps at multiples of 1/n and 1/m, so the integral is exact on the merged breakpoints, for any n, m.
    """
    px, py = np.sort(x @ directions.T, axis=0), np.sort(y @ directions.T, axis=0)
    n, m = len(px), len(py)
    breaks = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(breaks, prepend=0.0)
    mid = breaks - widths / 2
    ix = np.minimum((mid * n).astype(int), n - 1)
    iy = np.minimum((mid * m).astype(int), m - 1)
    per_direction = widths @ np.abs(px[ix] - py[iy]) ** p
    return float(np.mean(per_direction) ** (1.0 / p))


def ksd_squared_imq(x: np.ndarray, score: np.ndarray, c: float = 1.0, beta: float = -0.5) -> float:
    """Unbiased kernel Stein discrepancy^2 of the sample ``x`` w.r.t. a density with score ``score = grad log p(x)``
    (Liu, Lee & Jordan 2016; Gorham & Mackey 2017), IMQ kernel k = (c^2 + r^2)^beta, r = x - y:

        u(x, y) = s_x.s_y k + 2 beta b^(beta-1) (s_y - s_x).r - 2 beta d b^(beta-1) - 4 beta (beta-1) b^(beta-2) |r|^2

    with b = c^2 + |r|^2. E_p u(x, y) = 0 for every y, so KSD^2 = mean_{i!=j} u(x_i, x_j) is ~0 for exact samples.
    """
    d = x.shape[1]
    sq = squared_distances(x, x)
    base = c * c + sq
    sx = score @ x.T  # sx[i, j] = s_i . x_j
    own = np.diag(sx)
    # (s_j - s_i) . (x_i - x_j) = s_j.x_i - s_j.x_j - s_i.x_i + s_i.x_j
    cross = sx.T - own[None, :] - own[:, None] + sx
    k = _power(base, beta)
    k1 = k / base  # base ** (beta - 1), without another power
    u = (score @ score.T) * k + 2 * beta * k1 * cross - 2 * beta * d * k1 - 4 * beta * (beta - 1) * (k1 / base) * sq
    return _off_diagonal_mean(u)


def nearest_mode_shares(x: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """The fraction of points whose nearest mode (Euclidean) is each mode."""
    nearest = np.argmin(squared_distances(x, modes), axis=1)
    return np.bincount(nearest, minlength=len(modes)) / len(x)


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """W_2^2 between N(mean_a, cov_a) and N(mean_b, cov_b): |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)).

    tr (C_a C_b)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    C_a^(1/2) C_b C_a^(1/2), which stays real and stable where a general sqrtm of C_a C_b does not.
    """
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sum(np.sqrt(np.clip(middle, 0.0, None))))
    diff = mean_a - mean_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)
