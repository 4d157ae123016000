"""Reverse-SDE and probability-flow samplers on the torch model's device; the maths and the order of the noise
draws are :mod:`benchbench_samplers.reference`'s (start noise, then one draw per SDE step), so the reference fed
the generator's draws reproduces them."""

from __future__ import annotations

import numpy as np
import torch

from benchbench_samplers.schedule import reverse_sde_coefficients, sde_grid


def _start(model, x0: np.ndarray, sigma: float, generator: torch.Generator) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x0), device=model.device, dtype=model.dtype)
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _score(model, x: torch.Tensor, sigma: float) -> torch.Tensor:
    return model.score_tensor(x, torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype))


def reverse_sde(model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """Euler-Maruyama of the reverse SDE: see :func:`benchbench_samplers.reference.reverse_sde`."""
    grid = sde_grid(model, "reverse-sde", n_steps, sigma_max, sigma_min)
    dtau, noise = reverse_sde_coefficients(grid)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        x = _start(model, x0, float(grid[0]), generator)
        for sigma, step, scale in zip(grid[:-1].tolist(), dtau.tolist(), noise.tolist()):
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + step * _score(model, x, sigma) + scale * z
    return x.cpu().numpy()


def probability_flow(model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """Heun on dx/dsigma = -sigma s: see :func:`benchbench_samplers.reference.probability_flow`."""
    grid = sde_grid(model, "probability-flow", n_steps, sigma_max, sigma_min)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        x = _start(model, x0, float(grid[0]), generator)
        for sigma, after in zip(grid[:-1].tolist(), grid[1:].tolist()):
            slope = -sigma * _score(model, x, sigma)
            euler = x + (after - sigma) * slope
            x = euler if after == 0 else x + (after - sigma) * 0.5 * (slope - after * _score(model, euler, after))
    return x.cpu().numpy()
