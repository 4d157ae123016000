"""Score networks for the torch backend."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"softplus": nn.Softplus, "tanh": nn.Tanh, "elu": nn.ELU, "swish": nn.SiLU, "relu": nn.ReLU}


class ScoreMLP(nn.Module):
    """s(x) = MLP(x): d -> width x depth -> d."""

    def __init__(self, dim: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = dim
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
            fan_in = width
        layers.append(nn.Linear(fan_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(settings, dim: int) -> nn.Module:
    """The network the trial's settings ask for."""
    if settings.model != "mlp":
        raise NotImplementedError(f"model {settings.model!r} is not implemented in the torch backend yet")
    return ScoreMLP(dim, settings.width, settings.depth, settings.activation)
