"""Score-matching losses in PyTorch: pure functions ``loss(score_fn, x, generator, **hparams)``."""

from __future__ import annotations

import torch


def denoising_loss(score_fn, x: torch.Tensor, generator: torch.Generator, sigma: float) -> torch.Tensor:
    """Denoising score matching (Vincent 2011): 1/2 E||s(x + sigma z) + z / sigma||^2.

    Its minimiser is the score of the data convolved with N(0, sigma^2 I), not of the data itself.
    """
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    residual = score_fn(x + sigma * z) + z / sigma
    return 0.5 * residual.pow(2).sum(dim=1).mean()
