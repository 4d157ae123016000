"""Sample-quality metrics: the trial's Langevin samples against the held-out data (or the true score).

Kernel choices are fixed per dataset, never per trial, so numbers of different trials on one dataset are
comparable: the RBF bandwidth is the median distance of the held-out set, the projections of the sliced
Wasserstein distance come from a fixed seed. The quadratic-time statistics use at most
``MAX_POINTS`` points of each set (a fixed random subset), which bounds them at a few seconds.
"""

from __future__ import annotations

import numpy as np

from benchbench import EvalContext, TrialFailure
from benchbench_metrics import discrepancies as dis

MAX_POINTS = 2000
N_PROJECTIONS = 500
PROJECTION_SEED = 0
_SUBSET_SEED = 12345


def subset(x: np.ndarray) -> np.ndarray:
    """At most ``MAX_POINTS`` rows of ``x``, the same rows every time."""
    if len(x) <= MAX_POINTS:
        return x
    return x[np.sort(np.random.default_rng(_SUBSET_SEED).choice(len(x), MAX_POINTS, replace=False))]


def finite_samples(ctx: EvalContext) -> np.ndarray:
    """The samples (subset), refusing a diverged chain: one non-finite sample makes every distance meaningless."""
    samples = np.asarray(ctx.samples, dtype=np.float64)
    bad = int(np.sum(~np.all(np.isfinite(samples), axis=1)))
    if bad:
        raise TrialFailure(
            f"{bad} of {len(samples)} samples from sampler {ctx.sampler_used!r} are not finite "
            "(the chain diverged; try a smaller eps)"
        )
    return subset(samples)


def _test(ctx: EvalContext) -> np.ndarray:
    return subset(ctx.data.test.astype(np.float64))


def _distances(ctx: EvalContext) -> dis.PairDistances:
    """The samples' and the held-out points' squared distances, once per evaluation for the three statistics
    that read them (mmd, mmd_imq, energy_distance: 11 distance matrices a trial before, 3 now)."""
    return ctx.shared("sample_quality.distances", lambda: dis.PairDistances.of(finite_samples(ctx), _test(ctx)))


def mmd(ctx: EvalContext) -> dict[str, float]:
    """Unbiased MMD^2, RBF kernel exp(-r^2 / 2h^2) with h the median distance between held-out points."""
    distances = _distances(ctx)
    bandwidth = distances.median_y()
    return {"value": distances.mmd_squared(dis.rbf_kernel(bandwidth)), "bandwidth": bandwidth}


def mmd_imq(ctx: EvalContext) -> float:
    """Unbiased MMD^2 with the inverse multiquadric kernel (1 + r^2)^(-1/2): no bandwidth to choose."""
    return _distances(ctx).mmd_squared(dis.imq_kernel())


def sliced_wasserstein(ctx: EvalContext) -> float:
    """Sliced 2-Wasserstein distance over ``N_PROJECTIONS`` directions drawn with a fixed seed."""
    directions = dis.random_directions(ctx.data.dim, N_PROJECTIONS, PROJECTION_SEED)
    return dis.sliced_wasserstein(finite_samples(ctx), _test(ctx), directions)


def energy_distance(ctx: EvalContext) -> float:
    return _distances(ctx).energy_distance()


def ksd(ctx: EvalContext) -> float:
    """Unbiased KSD^2 of the samples w.r.t. the true density (IMQ kernel, c = 1, beta = -1/2); needs no data."""
    samples = finite_samples(ctx)
    return dis.ksd_squared_imq(samples, ctx.data.score(samples))


def mode_weights(ctx: EvalContext) -> dict[str, float]:
    """Max |share of samples nearest mode k - weight k| over the modes; ``.share_k`` per mode.

    Plain Langevin is known to get these wrong on well-separated mixtures (Song & Ermon 2019, Fig. 3).
    """
    shares = dis.nearest_mode_shares(finite_samples(ctx), np.asarray(ctx.data.modes, dtype=np.float64))
    weights = np.asarray(ctx.data.weights, dtype=np.float64)
    return {"value": float(np.max(np.abs(shares - weights)))} | {f"share_{k}": float(s) for k, s in enumerate(shares)}


def samples_per_s(ctx: EvalContext) -> float | None:
    """Samples drawn per second, compilation of a jitted sampler included."""
    return ctx.trial.settings.n_samples / ctx.sampling_s if ctx.sampling_s else None
