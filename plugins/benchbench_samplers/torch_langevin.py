"""Langevin samplers on the torch model's device: all particles updated at once, noise from a seeded generator.

The chain is a Python loop over steps of one batched ``score_tensor`` call each; nothing crosses to numpy
until the end. The update and schedule are those of :mod:`benchbench_samplers.reference`, and the noise is
drawn once per step with ``torch.randn(x.shape, generator=...)``, so feeding the reference the same draws
reproduces the chain.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchbench_samplers.schedule import Level, annealed_plan, langevin_plan


def run_levels(model, x0: np.ndarray, levels: list[Level], seed: int) -> np.ndarray:
    """x <- x + (alpha/2) s(x, sigma) + sqrt(alpha) z on ``model.device`` in ``model.dtype``.

    The score is passed one sigma per particle, shape (n,), the convention noise-conditional losses train with.
    """
    generator = torch.Generator(device=model.device).manual_seed(seed)
    x = torch.as_tensor(np.asarray(x0), device=model.device, dtype=model.dtype).clone()
    with torch.no_grad():
        for level in levels:
            sigma = (
                None if level.sigma is None else torch.full((x.shape[0],), level.sigma, device=x.device, dtype=x.dtype)
            )
            drift, scale = 0.5 * level.step_size, math.sqrt(level.step_size)
            for _ in range(level.n_steps):
                score = model.score_tensor(x, sigma)
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + drift * score + scale * noise
    return x.cpu().numpy()


def langevin(model, x0: np.ndarray, seed: int, eps: float, n_steps: int) -> np.ndarray:
    """Plain Langevin (noise-conditional models at their smallest sigma)."""
    return run_levels(model, x0, langevin_plan(model, eps, n_steps), seed)


def annealed_langevin(
    model,
    x0: np.ndarray,
    seed: int,
    eps: float,
    steps_per_level: int,
    sigma_max: float,
    sigma_min: float,
    n_sigmas: int,
) -> np.ndarray:
    """Annealed Langevin (NCSN): see :func:`benchbench_samplers.schedule.annealed_plan`."""
    levels = annealed_plan(model, eps, steps_per_level, sigma_max, sigma_min, n_sigmas)
    return run_levels(model, x0, levels, seed)
