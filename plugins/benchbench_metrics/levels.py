"""The score error across noise levels, as a picture: perturbed Fisher divergence against sigma, one line per trial.

A noise-conditional model is one network for every sigma; how its error moves from sigma_max to sigma_min is what
separates parameterisations (an f/sigma network's error grows like 1/sigma^2 at the bottom of the ladder, see
:class:`benchbench.noise.Preconditioning`), and one number at sigma_min hides it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from benchbench import EvalContext
from benchbench_metrics.pictures import _png, _pyplot
from benchbench_metrics.score_quality import perturbed_errors

Curve = tuple[Sequence[float], Sequence[float]]


def error_by_sigma_figure(curves: Mapping[str, Curve]) -> bytes:
    """A log-log PNG of error against sigma, one labelled line per trial (``{label: (sigmas, errors)}``), so that
    ``bench table`` can draw a sweep's trials on one set of axes with the same function."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    for label, (sigmas, errors) in curves.items():
        order = sorted(range(len(sigmas)), key=lambda i: sigmas[i])
        ax.plot([sigmas[i] for i in order], [max(errors[i], 1e-12) for i in order], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="sigma", ylabel="1/2 E||s(x~, sigma) - grad log p_sigma(x~)||^2")
    ax.set_title("score error across noise levels", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def error_by_sigma(ctx: EvalContext) -> dict[str, bytes]:
    """``error_by_sigma.png`` and the numbers it draws, ``error_by_sigma.json``, for a noise-conditional model."""
    if not ctx.model.noise_conditional:
        return {}
    errors = perturbed_errors(ctx)
    sigmas, values = list(errors), list(errors.values())
    label = getattr(ctx.trial, "run_name", "trial")
    return {
        "error_by_sigma.png": error_by_sigma_figure({label: (sigmas, values)}),
        "error_by_sigma.json": json.dumps({"sigma": sigmas, "perturbed_fisher_divergence": values}).encode(),
    }
