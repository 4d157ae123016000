"""toy-gradlogp 0.2.2's losses (``Trainer.get_loss``), called as they ship, behind benchbench's loss signature.

Adaptations:

- What the network outputs. ``Trainer`` holds an ``Energy`` model and takes the score from ``model.score(x)``
  (-grad E by ``torch.autograd.grad``). The adapter's trainer holds an object whose ``score`` is benchbench's
  score network; the loss code (``ssm_loss``, ``ssm_vr_loss``, ``dsm_loss``, ``deen_loss``, noise drawing) runs
  unchanged. ``Trainer.__init__`` (which builds an optimiser) is not run; the attributes the losses read are set.
- Randomness. ``get_random_noise`` draws from torch's global generator; the loss runs under
  :func:`benchbench_peers.seeding.with_global_seed`.
- DSM and DEEN use the default sigma = 0.1 of ``dsm_loss``/``deen_loss``: ``get_loss`` passes none.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch
from toy_gradlogp.energy import Trainer

from benchbench_peers.seeding import with_global_seed


def _loss(
    loss_type: str, score_fn: Callable, x: torch.Tensor, generator: torch.Generator, n_slices: int, noise_type: str
) -> torch.Tensor:
    trainer = Trainer.__new__(Trainer)
    trainer.model = SimpleNamespace(score=lambda y, sigma=None: score_fn(y))
    trainer.n_slices, trainer.loss_type, trainer.noise_type, trainer.device = n_slices, loss_type, noise_type, x.device
    return with_global_seed(generator, lambda: trainer.get_loss(x))


def ssm_loss(score_fn, x, generator, n_slices: int = 1, noise_type: str = "gaussian") -> torch.Tensor:
    """loss_type='ssm': 1/2 (v's)^2 + v'(ds/dx)v."""
    return _loss("ssm", score_fn, x, generator, n_slices, noise_type)


def ssm_vr_loss(score_fn, x, generator, n_slices: int = 1, noise_type: str = "gaussian") -> torch.Tensor:
    """loss_type='ssm-vr' (the default): 1/2 ||s||^2 + v'(ds/dx)v."""
    return _loss("ssm-vr", score_fn, x, generator, n_slices, noise_type)


def dsm_loss(score_fn, x, generator) -> torch.Tensor:
    """loss_type='dsm': 1/2 ||s(x + sigma z) + z / sigma||^2, sigma = 0.1."""
    return _loss("dsm", score_fn, x, generator, 1, "gaussian")


def deen_loss(score_fn, x, generator) -> torch.Tensor:
    """loss_type='deen': 1/2 ||sigma^2 s(x + sigma z) + sigma z||^2 = sigma^4 x the DSM loss, sigma = 0.1."""
    return _loss("deen", score_fn, x, generator, 1, "gaussian")
