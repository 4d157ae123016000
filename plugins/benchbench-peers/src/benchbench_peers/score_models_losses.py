"""score-models 0.5.11's losses, called as they ship, behind benchbench's loss signature.

Adaptations:

- What the network outputs. ``denoising_score_matching`` calls ``score_model.model(t, x)``, the raw network,
  whose output a ``ScoreModel`` divides by sigma(t) to get the score: the network outputs sigma(t) s(x, t). The
  adapter's network is therefore t, x -> sigma(t) s(x, sigma(t)), with benchbench's noise-conditional score s;
  the noise schedule is score-models' ``VESDE(sigma_min, sigma_max)`` (sigma(t) = sigma_min (sigma_max /
  sigma_min)^t, t uniform on [0, 1], continuous, so ``n_sigmas`` only sets benchbench's evaluation ladder).
- Weighting. The loss is sum ||z + sigma s||^2 / B, twice the sigma^2-weighted NCSN loss of the built-in
  ``denoising-multiscale``; kept as shipped (its declared bias says so).
- Randomness. Both losses draw from torch's global generator (``randn_like``, ``rand``); they run under
  :func:`benchbench_peers.seeding.with_global_seed`, seeded from benchbench's generator.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch
from score_models.dsm import denoising_score_matching
from score_models.sde import VESDE
from score_models.sliced_score_matching import sliced_score_matching_loss

from benchbench_peers.seeding import with_global_seed


def dsm_loss(
    score_fn: Callable,
    x: torch.Tensor,
    generator: torch.Generator,
    sigma_min: float = 0.01,
    sigma_max: float = 1.0,
    n_sigmas: int = 10,
) -> torch.Tensor:
    """``ScoreModel.loss_fn`` on a VE SDE: sum_i ||z_i + sigma(t_i) s(x_i + sigma(t_i) z_i)||^2 / B."""
    sde = VESDE(sigma_min=sigma_min, sigma_max=sigma_max)

    def network(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sigma = sde.sigma(t).to(y.dtype)
        return sigma[:, None] * score_fn(y, sigma)

    model = SimpleNamespace(sde=sde, model=network, device=x.device)
    return with_global_seed(generator, lambda: denoising_score_matching(model, x))


def ssm_loss(
    score_fn: Callable,
    x: torch.Tensor,
    generator: torch.Generator,
    n_cotangent_vectors: int = 1,
    noise_type: str = "rademacher",
) -> torch.Tensor:
    """``sliced_score_matching_loss``: 1/2||s||^2 + v'(ds/dx)v by ``torch.func.vjp`` (SSM-VR)."""
    return with_global_seed(generator, lambda: sliced_score_matching_loss(score_fn, x, n_cotangent_vectors, noise_type))
