"""Registers ``fd-sliced`` through the public hook. No torch or jax here: the losses are named lazily."""

from __future__ import annotations

from benchbench import Objective, Param, hookimpl

VARIANTS = ("ssm", "vr")

FD_SLICED = Objective(
    name="fd-sliced",
    description="Finite-difference sliced score matching: v'(ds/dx)v by a central difference of step norm eps",
    losses={"torch": "benchbench_fdssm.torch_loss:fd_sliced_loss", "jax": "benchbench_fdssm.jax_loss:fd_sliced_loss"},
    params=(
        Param("eps", 0.1, "norm of the finite-difference step v", low=1e-6),
        Param("variant", "ssm", "ssm: both terms sliced; vr: exact norm term (variance reduced)", choices=VARIANTS),
        Param("n_projections", 1, "random directions per example", low=1),
    ),
    # Unbiased for J on any score model that is affine in x (the central difference is then exact), so the
    # conformance kit's Gaussian check applies unchanged; on other models the bias is O(eps^2) (tested).
    biased=False,
    reference="Pang et al. (2020), Efficient Learning of Generative Models via Finite-Difference Score Matching",
)


@hookimpl
def register_objectives(register):
    register(FD_SLICED)
