"""How the trial seed turns into a sample and a train/test split, the same for every family.

The seed convention: the density (or the file, or the photographs) is fixed by the dataset's
parameters alone; the trial seed only chooses which points are drawn and which rows are held out.
Each use of randomness gets its own stream, ``numpy.random.default_rng([purpose, seed])``, so the
test set of a synthetic family depends only on ``(seed, n_test)``: growing ``n_train`` keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchbench.errors import ParameterError

_TRAIN, _TEST, _SPLIT, _NOISE = range(4)

Draw = Callable[[int, np.random.Generator], np.ndarray]


def draw_split(draw: Draw, params: Mapping[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test samples of a synthetic density, each from its own stream of the trial seed."""
    train = draw(params["n_train"], np.random.default_rng([_TRAIN, seed]))
    test = draw(params["n_test"], np.random.default_rng([_TEST, seed]))
    return train, test


def choose_rows(n_rows: int, n_train: int, n_test: int, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a fixed data set: a seeded permutation, the first ``n_test`` rows held out.

    Taking the test rows first keeps the test set unchanged when only ``n_train`` changes.
    Asking for more rows than exist is an error, never a silent truncation.
    """
    if n_train + n_test > n_rows:
        raise ParameterError(
            f"{where}: n_train={n_train} + n_test={n_test} exceeds the {n_rows} examples available; "
            f"lower n_train or n_test so that they sum to at most {n_rows}"
        )
    order = np.random.default_rng([_SPLIT, seed]).permutation(n_rows)
    return np.sort(order[n_test : n_test + n_train]), np.sort(order[:n_test])


def noise_rng(seed: int) -> np.random.Generator:
    """The stream for dequantisation noise (uniform noise added to integer pixels)."""
    return np.random.default_rng([_NOISE, seed])
