"""Backend-neutral facts about ``--model conv``, the convolutional score network both backends build.

Kept in the core so that the torch and JAX networks (``benchbench_torch.convnet``, ``benchbench_jax.convnet``)
read one definition of the shape they accept and of their size, without importing each other's framework.
"""

from __future__ import annotations

from benchbench.errors import SkipTrial


def image_shape(shape: tuple[int, ...], dataset: str = "") -> tuple[int, int, int]:
    """``(H, W, C)`` of an image dataset's per-example shape; a SkipTrial for data without two spatial axes.

    A skip, not an error: ``--model conv`` applies to every trial of a sweep, and on a flat dataset
    (``gaussian``, ``gmm``) the combination does not exist, as an objective without a backend's loss.
    """
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1]), 1
    where = f"dataset {dataset!r} has" if dataset else "the data have"
    raise SkipTrial(f"--model conv needs images (per-example shape H x W x C); {where} shape {tuple(shape)}")


def conv_channels(width: int) -> int:
    """The U-Net's base channel count c from ``--width`` (the MLP's hidden width): width / 8, at least 4.

    At the default width 128, c = 16: a 28 x 28 forward pass is about 5 MFLOP per image.
    """
    return max(4, width // 8)
