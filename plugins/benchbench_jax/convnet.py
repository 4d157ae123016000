"""The convolutional U-Net score network (``--model conv``), JAX half: a frozen architecture and a pytree.

The same network as :mod:`benchbench_torch.convnet` (read its docstring for the layers): NCHW activations and
OIHW weights as torch lays them out, ``lax.conv_general_dilated`` (a cross-correlation, like ``torch.conv2d``)
with zero padding 1, and parameters ``{"layers": [{"w", "b"}, ...]}`` in torch's parameter order, so identical
weights copy across and ``tests/test_parity.py`` compares the two number for number. There is no forward-tangent
fast path: traces go through the generic autodiff of :mod:`benchbench_jax.autodiff`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from benchbench.image_models import conv_channels, image_shape
from benchbench_jax.models import ACTIVATIONS, Params

_DIMENSIONS = ("NCHW", "OIHW", "NCHW")


@dataclass(frozen=True)
class ConvArchitecture:
    """What the U-Net is, without its weights; hashable, so jitted functions can close over it.

    ``shape`` is the per-example image shape ``(H, W, C)``; ``channels`` the base channel count c.
    """

    shape: tuple[int, int, int]
    channels: int
    activation: str
    noise_conditional: bool = False

    compiled_loops: ClassVar[bool] = False
    """Loops over this network (training steps, sampler steps) run one jitted step per dispatch, never in a
    ``lax.fori_loop``/``scan``: XLA's CPU backend runs a convolution many times slower inside a loop body than in
    a program of its own (jax-ml/jax#12868). Measured on the 8x8 digits U-Net: a denoising-multiscale train step
    334-368 ms in the loop against 22-28 ms dispatched alone; a Langevin step on 1,000 particles 242-247 ms
    against 71-76 ms. NHWC layouts did not help. A dispatch costs tens of microseconds: noise against these
    steps."""

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    @property
    def layers(self) -> list[tuple[int, int, int]]:
        """``(in, out, stride)`` of enc1, enc2, down, mid, up, dec, out."""
        c, in_c = self.channels, self.shape[2]
        first = in_c + (1 if self.noise_conditional else 0)
        return [(first, c, 1), (c, c, 1), (c, 2 * c, 2), (2 * c, 2 * c, 1), (2 * c, c, 1), (2 * c, c, 1), (c, in_c, 1)]


def architecture(settings, shape: tuple[int, ...], noise_conditional: bool, dataset: str = "") -> ConvArchitecture:
    """The U-Net a trial's settings ask for (``Data.shape`` gives ``shape``); a SkipTrial without an image shape."""
    return ConvArchitecture(
        image_shape(shape, dataset), conv_channels(settings.width), settings.activation, noise_conditional
    )


def init_params(arch: ConvArchitecture, key: jax.Array, dtype) -> Params:
    """torch's ``nn.Conv2d`` default: W and b uniform on +-1/sqrt(fan_in), fan_in = in x 3 x 3; one draw cut up
    (one random call site compiles one threefry kernel, see :func:`benchbench_jax.models.init_params`)."""
    shapes = [shape for i, o, _ in arch.layers for shape in ((o, i, 3, 3), (o,))]
    draws = jax.random.uniform(key, (sum(math.prod(s) for s in shapes),), dtype, -1.0, 1.0)
    tensors, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        fan_in = arch.layers[len(tensors) // 2][0] * 9
        tensors.append(draws[start : start + size].reshape(shape) / fan_in**0.5)
        start += size
    return {"layers": [{"w": w, "b": b} for w, b in zip(tensors[::2], tensors[1::2])]}


def _conv(h: jax.Array, layer: dict[str, jax.Array], stride: int) -> jax.Array:
    out = jax.lax.conv_general_dilated(
        h, layer["w"].astype(h.dtype), (stride, stride), ((1, 1), (1, 1)), dimension_numbers=_DIMENSIONS
    )
    return out + layer["b"].astype(h.dtype)[None, :, None, None]


def upsample(h: jax.Array, height: int, width: int) -> jax.Array:
    """Nearest-neighbour x2 by repetition, cropped to ``height x width`` (as the torch twin)."""
    return jnp.repeat(jnp.repeat(h, 2, axis=2), 2, axis=3)[:, :, :height, :width]


def score(arch: ConvArchitecture, params: Params, x: jax.Array, sigma: jax.Array | None = None) -> jax.Array:
    """s(x) ``(n, d)`` from the flattened batch ``x`` ``(n, d)``; ``sigma`` ``(n,)`` for a noise-conditional net."""
    height, width, chans = arch.shape
    act = ACTIVATIONS[arch.activation]
    enc1, enc2, down, mid, up, dec, out = params["layers"]
    h = x.reshape(-1, height, width, chans).transpose(0, 3, 1, 2)
    if arch.noise_conditional:
        if sigma is None:
            raise ValueError("a noise-conditional network needs sigma, one per example")
        plane = jnp.broadcast_to(jnp.log(sigma).astype(x.dtype)[:, None, None, None], (h.shape[0], 1, height, width))
        h = jnp.concatenate([h, plane], axis=1)
    skip = act(_conv(act(_conv(h, enc1, 1)), enc2, 1))
    low = act(_conv(act(_conv(skip, down, 2)), mid, 1))
    upper = act(_conv(upsample(low, height, width), up, 1))
    result = _conv(act(_conv(jnp.concatenate([upper, skip], axis=1), dec, 1)), out, 1)
    result = result.transpose(0, 2, 3, 1).reshape(x.shape)
    return result / sigma[:, None].astype(result.dtype) if arch.noise_conditional else result
