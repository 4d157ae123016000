"""Score-quality metrics: how close the learned score is to the truth, on held-out data.

Noise-conditional models are evaluated at their smallest sigma, the one closest to the data, unless a
metric says otherwise.
"""

from __future__ import annotations

import numpy as np

from benchbench import EvalContext

# The exact trace costs d forward-mode passes per point; beyond this many test points the estimate's
# standard error is already far below the differences between objectives.
MAX_TRACE_POINTS = 2000


def _data_sigma(ctx: EvalContext) -> float | None:
    return float(ctx.model.sigmas[-1]) if ctx.model.noise_conditional else None


def fisher_divergence(ctx: EvalContext) -> float:
    """1/2 E_test ||s_theta(x) - grad log p(x)||^2, the quantity score matching minimises."""
    x = ctx.data.test
    diff = ctx.model.score(x, _data_sigma(ctx)) - ctx.data.score(x.astype(np.float64))
    return float(0.5 * np.mean(np.sum(diff * diff, axis=1)))


def sm_objective(ctx: EvalContext) -> float:
    """The implicit score-matching objective J = E_test[1/2 ||s_theta(x)||^2 + tr(ds_theta/dx)] (Hyvarinen 2005).

    Integration by parts gives J = Fisher divergence - 1/2 E||grad log p||^2: the same ranking as the
    Fisher divergence up to a constant of the data, so it compares models on data whose score is unknown.
    """
    x = ctx.data.test[:MAX_TRACE_POINTS]
    scores, traces = ctx.model.score_and_trace(x, _data_sigma(ctx))
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(0.5 * np.sum(scores * scores, axis=1) + np.asarray(traces, dtype=np.float64)))


def _sigma_key(sigma: float) -> str:
    return f"sigma_{sigma:.3g}"


def perturbed_errors(ctx: EvalContext) -> dict[float, float] | None:
    """{sigma: 1/2 E ||s_theta(x~, sigma) - grad log p_sigma(x~)||^2} over the model's levels (a noise-conditional
    model: its whole ladder; a ``denoising`` model: its training sigma), x~ = x + sigma z with one fixed z per test
    point; None for a model trained without noise."""
    conditional = bool(ctx.model.noise_conditional)
    if conditional:
        levels = [float(s) for s in ctx.model.sigmas]
    elif "sigma" in ctx.trial.objective_params:
        levels = [float(ctx.trial.objective_params["sigma"])]
    else:
        return None
    x = ctx.data.test.astype(np.float64)
    z = np.random.default_rng(ctx.seed + 104729).standard_normal(x.shape)
    errors: dict[float, float] = {}
    for sigma in levels:
        noisy = x + sigma * z
        diff = ctx.model.score(noisy, sigma if conditional else None) - ctx.data.perturbed_score(noisy, sigma)
        errors[sigma] = float(0.5 * np.mean(np.sum(diff * diff, axis=1)))
    return errors


def perturbed_fisher_divergence(ctx: EvalContext) -> dict[str, float] | None:
    """1/2 E ||s_theta(x~, sigma) - grad log p_sigma(x~)||^2 with x~ = x + sigma z, x held out, z ~ N(0, I).

    p_sigma is the data density convolved with N(0, sigma^2 I): what denoising score matching at noise sigma
    actually learns (Vincent 2011), so this is the score error of a noise-trained model against its own
    target, measured where that target's mass is. The value is at the training sigma (``denoising``'s
    ``sigma``) or, for a noise-conditional model, at its smallest sigma; ``.sigma`` records which, and a
    noise-conditional model also gets one ``.sigma_<value>`` entry per level of its ladder (every objective's
    ladder: NCSN's, or the VE / VP process's levels, :func:`benchbench.noise.objective_ladder`). Models trained
    without noise get nothing.
    """
    errors = perturbed_errors(ctx)
    if errors is None:
        return None
    values = {_sigma_key(sigma): value for sigma, value in errors.items()}
    smallest = min(errors)
    result = {"value": errors[smallest], "sigma": smallest}
    return result | values if len(errors) > 1 else result
