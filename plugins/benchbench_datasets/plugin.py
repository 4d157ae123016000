"""Registers the built-in dataset families through the public ``register_datasets`` hook."""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.params import Param
from benchbench.specs import DatasetFamily

_SIZES = (
    Param("n_train", 10000, "training examples", low=1),
    Param("n_test", 2000, "held-out examples", low=1),
)

GAUSSIAN = DatasetFamily(
    name="gaussian",
    description="N(mean, Sigma): condition number `cond`, random rotation; exact score and log-density",
    load="benchbench_datasets.gaussian:load",
    params=(
        Param("dim", 2, "dimension", low=1, high=100000),
        Param("cond", 1.0, "condition number of Sigma (ratio of largest to smallest variance)", low=1.0),
        Param("mean", 0.0, "every coordinate of the mean"),
        Param("density_seed", 0, "seed of the rotation, fixed across trial seeds so they share one density"),
        *_SIZES,
    ),
)


@hookimpl
def register_datasets(register):
    register(GAUSSIAN)
