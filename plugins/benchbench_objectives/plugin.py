"""Registers the built-in objectives through the public ``register_objectives`` hook."""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.params import Param
from benchbench.specs import Objective

DENOISING = Objective(
    name="denoising",
    description="Denoising score matching, 1/2 E||s(x + sigma z) + z / sigma||^2",
    losses={"torch": "benchbench_torch.losses:denoising_loss"},
    params=(Param("sigma", 0.1, "noise standard deviation", low=1e-6),),
    biased=True,
    reference="Vincent (2011), A connection between score matching and denoising autoencoders",
)


@hookimpl
def register_objectives(register):
    register(DENOISING)
