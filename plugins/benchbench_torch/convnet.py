"""A small convolutional U-Net score network for images (``--model conv``), torch half.

The network sees the flattened ``(n, d)`` batch every loss and metric uses, reshapes it with the dataset's
per-example shape ``(H, W, C)`` (row-major, as the datasets flatten), and returns scores flattened the same
way, so it is a drop-in ``score_fn(x)`` / ``score_fn(x, sigma)`` for every objective. Layers, in order
(this order is the parameter order the JAX twin in :mod:`benchbench_jax.convnet` copies):

    enc1  3x3 conv  C(+1) -> c      H x W        (the +1: a log-sigma plane for noise-conditional nets)
    enc2  3x3 conv  c -> c          H x W        skip
    down  3x3 conv  c -> 2c, stride 2 -> ceil(H/2) x ceil(W/2)
    mid   3x3 conv  2c -> 2c
    up    nearest x2 (cropped to H x W), 3x3 conv 2c -> c
    dec   3x3 conv  [up, skip] 2c -> c
    out   3x3 conv  c -> C

Zero padding 1 everywhere; the activation of ``--activation`` after every layer but ``out``. Nearest
upsampling by repetition (not a transposed convolution) is the same operation in both frameworks, which keeps
the torch/JAX parity test exact. Noise-conditional nets divide the output by sigma, as the MLP does (Song &
Ermon 2020), and feed log sigma as a constant input plane. ``c`` is ``--width / 8`` (16 at the default 128).
"""

from __future__ import annotations

import torch
from torch import nn

from benchbench.image_models import conv_channels, image_shape
from benchbench_torch.models import ACTIVATIONS

LAYERS = ("enc1", "enc2", "down", "mid", "up", "dec", "out")


def upsample(h: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour x2 by repetition, cropped back to ``height x width`` (odd sizes round up on the way down)."""
    return h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)[:, :, :height, :width]


class ConvScore(nn.Module):
    """s(x) (or s(x, sigma)) for images: the U-Net above, flattened in and out."""

    def __init__(
        self, shape: tuple[int, int, int], width: int, activation: str, noise_conditional: bool = False
    ) -> None:
        super().__init__()
        self.shape, self.activation, self.noise_conditional = shape, activation, noise_conditional
        c, in_c = conv_channels(width), shape[2]
        specs = {
            "enc1": (in_c + (1 if noise_conditional else 0), c, 1),
            "enc2": (c, c, 1),
            "down": (c, 2 * c, 2),
            "mid": (2 * c, 2 * c, 1),
            "up": (2 * c, c, 1),
            "dec": (2 * c, c, 1),
            "out": (c, in_c, 1),
        }
        self.layers = nn.ModuleDict(
            {name: nn.Conv2d(i, o, 3, stride=s, padding=1) for name, (i, o, s) in specs.items()}
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        height, width, chans = self.shape
        act = ACTIVATIONS[self.activation][0]
        layer = self.layers
        h = x.reshape(-1, height, width, chans).permute(0, 3, 1, 2)
        if self.noise_conditional:
            if sigma is None:
                raise ValueError("a noise-conditional network needs sigma, one per example")
            plane = torch.log(sigma).to(x.dtype).reshape(-1, 1, 1, 1).expand(-1, 1, height, width)
            h = torch.cat([h, plane], dim=1)
        skip = act(layer["enc2"](act(layer["enc1"](h))))
        low = act(layer["mid"](act(layer["down"](skip))))
        up = act(layer["up"](upsample(low, height, width)))
        out = layer["out"](act(layer["dec"](torch.cat([up, skip], dim=1))))
        out = out.permute(0, 2, 3, 1).reshape(x.shape)
        return out / sigma.to(x.dtype).unsqueeze(-1) if self.noise_conditional else out


def build(settings, shape: tuple[int, ...], noise_conditional: bool, dataset: str = "") -> ConvScore:
    return ConvScore(image_shape(shape, dataset), settings.width, settings.activation, noise_conditional)
