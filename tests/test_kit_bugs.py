"""The conformance kit against realistic loss bugs, in torch and in JAX: each bug is rejected by the check that
should see it, with a message naming the objective, the backend and the check, and the same code with the bug off
(the control) passes every check.

The losses are Hutchinson's estimator 1/2||s||^2 + v'(ds/dx)v and denoising score matching, each with one bug
switched on by ``bug=``:

- ``detached``: the trace term cut from the graph (value right, gradient of 1/2||s||^2 only);
- ``jacobian-at-mean``: v'(ds/dx)v taken at the batch mean, right only when ds/dx is the same at every x;
- ``ignored``: declares n_projections but always draws one probe;
- ``fixed-key``: a generator / key made inside the loss, so every draw is the same;
- ``wrong-gradient``: 1/2||s||^2 with a hand-written backward that forgets the 1/2;
- ``sigma-squared``: the DSM target z/sigma^2 instead of z/sigma, right at the default sigma = 1.
"""

from __future__ import annotations

from functools import partial

import pytest

from benchbench.params import Param
from benchbench.specs import Objective
from benchbench.testing import ConformanceError, check_objective

pytest.importorskip("torch")
pytest.importorskip("jax")

# -- torch -------------------------------------------------------------------------------------------------------


def torch_hutchinson(score_fn, x, generator, n_projections=1, bug=""):
    import torch

    class HalfSquare(torch.autograd.Function):
        """1/2 ||s||^2 per example, with the 1/2 forgotten in the hand-written backward."""

        @staticmethod
        def forward(ctx, s):
            ctx.save_for_backward(s)
            return 0.5 * s.pow(2).sum(dim=1)

        @staticmethod
        def backward(ctx, grad):
            (s,) = ctx.saved_tensors
            return 2 * grad[:, None] * s

    if bug == "fixed-key":
        generator = torch.Generator().manual_seed(0)
    probes = 1 if bug == "ignored" else n_projections
    v = torch.randn((probes, *x.shape), generator=generator, dtype=x.dtype)
    at = x.mean(dim=0, keepdim=True).expand_as(x).clone() if bug == "jacobian-at-mean" else x
    s = score_fn(x)
    trace = sum((u * torch.func.jvp(score_fn, (at,), (u,))[1]).sum(dim=1) for u in v) / probes
    if bug == "detached":
        trace = trace.detach()
    norm = HalfSquare.apply(s) if bug == "wrong-gradient" else 0.5 * s.pow(2).sum(dim=1)
    return (norm + trace).mean()


def torch_denoising(score_fn, x, generator, sigma=1.0, bug=""):
    import torch

    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    target = z / sigma**2 if bug == "sigma-squared" else z / sigma
    return 0.5 * (score_fn(x + sigma * z) + target).pow(2).sum(dim=1).mean()


# -- jax ---------------------------------------------------------------------------------------------------------


def jax_hutchinson(score_fn, x, key, n_projections=1, bug=""):
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def half_square(s):
        return 0.5 * jnp.sum(s**2, axis=1)

    half_square.defvjp(lambda s: (half_square(s), s), lambda s, g: (2 * g[:, None] * s,))

    if bug == "fixed-key":
        key = jax.random.key(0)
    probes = 1 if bug == "ignored" else n_projections
    v = jax.random.normal(key, (probes, *x.shape), x.dtype)
    at = jnp.broadcast_to(x.mean(axis=0), x.shape) if bug == "jacobian-at-mean" else x
    s = score_fn(x)
    trace = jnp.mean(jnp.stack([jnp.sum(u * jax.jvp(score_fn, (at,), (u,))[1], axis=1) for u in v]), axis=0)
    if bug == "detached":
        trace = jax.lax.stop_gradient(trace)
    norm = half_square(s) if bug == "wrong-gradient" else 0.5 * jnp.sum(s**2, axis=1)
    return jnp.mean(norm + trace)


def jax_denoising(score_fn, x, key, sigma=1.0, bug=""):
    import jax
    import jax.numpy as jnp

    z = jax.random.normal(key, x.shape, x.dtype)
    target = z / sigma**2 if bug == "sigma-squared" else z / sigma
    return 0.5 * jnp.mean(jnp.sum((score_fn(x + sigma * z) + target) ** 2, axis=1))


LOSSES = {
    ("torch", "hutchinson"): torch_hutchinson,
    ("torch", "denoising"): torch_denoising,
    ("jax", "hutchinson"): jax_hutchinson,
    ("jax", "denoising"): jax_denoising,
}
FAMILIES = {
    "hutchinson": {"params": (Param("n_projections", 1, low=1),)},
    "denoising": {
        "params": (Param("sigma", 1.0, low=1e-3),),
        "biased": True,
        "expected_bias": "benchbench_objectives.bias:denoising",
    },
}


def objective(backend: str, family: str, bug: str = "") -> Objective:
    name = f"{family}-{bug or 'control'}"
    return Objective(name, "", losses={backend: partial(LOSSES[backend, family], bug=bug)}, **FAMILIES[family])


# (family, bug, the check that must reject it, what its message must say)
BUGS = [
    (
        "hutchinson",
        "detached",
        r"gradient\[linear\]",
        r"mean gradient over 100 draws is not the gradient of J.*detached",
    ),
    ("hutchinson", "jacobian-at-mean", r"expectation\[nonlinear\]", r"it is right on the linear model.*own x"),
    ("hutchinson", "ignored", r"sensitivity\[n_projections=2\]", r"the loss ignores 'n_projections'"),
    ("hutchinson", "fixed-key", r"expectation\[linear\]", r"all 100 draws gave the same value .*ignores its key"),
    ("hutchinson", "wrong-gradient", r"gradient\[linear\]", r"not the gradient of J.*written by hand"),
    ("denoising", "sigma-squared", r"expectation\[linear, sigma=2\.0\]", r"at sigma=2\.0: .*expected J \+ bias"),
]


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("family, bug, check, message", BUGS, ids=[bug for _, bug, _, _ in BUGS])
def test_the_kit_rejects_the_bug_naming_objective_backend_and_check(backend, family, bug, check, message):
    pattern = rf"^objective '{family}-{bug}', {backend} loss, check {check}: .*{message}"
    with pytest.raises(ConformanceError, match=pattern):
        check_objective(objective(backend, family, bug))


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_control_passes_every_check(backend, family):
    report = check_objective(objective(backend, family))
    checks = {row.check: row.status for row in report.rows}
    assert report.failures == [] and set(report.checked) == {backend}
    assert checks["gradient[linear]"] == "pass" and checks["expectation[linear]"] == "pass"
    if family == "hutchinson":
        assert checks["expectation[nonlinear]"] == checks["gradient[nonlinear]"] == "pass"
        assert checks["sensitivity[n_projections=2]"] == checks["expectation[linear, n_projections=2]"] == "pass"
    else:
        assert checks["sensitivity[sigma=2.0]"] == checks["expectation[linear, sigma=2.0]"] == "pass"
