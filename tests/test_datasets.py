"""The built-in dataset families: exact truth, faithful shapes, reproducible splits, clear errors, honest cards.

Every dataset is loaded the way a user names it (``gmm:k=2,weights=0.8,0.2``): parsed, resolved
against the declared parameters, then loaded through the registered family.
"""

from __future__ import annotations

import functools
import gzip
import struct
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.special import digamma
from sklearn.datasets import load_digits, make_moons

from benchbench.errors import ParameterError
from benchbench.params import parse_spec, resolve
from benchbench.plugins import get_plugins
from benchbench.specs import Data, resolve_ref

CARDS = Path(__file__).parent.parent / "datasets"
SMALL = "n_train=400,n_test=100"


def load(spec: str, seed: int = 0) -> Data:
    name, raw = parse_spec(spec)
    family = get_plugins().get("dataset", name)
    values = resolve(f"dataset {name!r}", family.params, raw)
    return resolve_ref(family.load, f"dataset {name!r}")(values, seed)


def with_sizes(spec: str, sizes: str = SMALL) -> str:
    return f"{spec},{sizes}" if ":" in spec else f"{spec}:{sizes}"


def finite_difference(log_prob, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of log_prob, one coordinate at a time (float64)."""
    grad = np.empty_like(x)
    for i in range(x.shape[1]):
        step = np.zeros(x.shape[1])
        step[i] = h
        grad[:, i] = (log_prob(x + step) - log_prob(x - step)) / (2 * h)
    return grad


SYNTHETIC = [
    "gaussian:dim=3,cond=10",
    "gmm:dim=3,k=3,weights=0.5,0.3,0.2",
    "ncsn-mixture",
    "8gaussians",
    "rings",
    "swissroll",
    "moons",
    "pinwheel",
    "2spirals",
    "checkerboard",
    "banana:dim=3,bananicity=0.1",
    "funnel:dim=4",
]


# -- exact truth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SYNTHETIC)
def test_score_is_the_gradient_of_log_prob(spec):
    data = load(with_sizes(spec))
    rng = np.random.default_rng(1)
    near = data.test[:40]
    x = np.concatenate([near, near + 0.3 * rng.standard_normal(near.shape), 3 * near])
    expected = finite_difference(data.log_prob, x)
    np.testing.assert_allclose(data.score(x), expected, rtol=1e-5, atol=1e-5)
    assert data.score(x).dtype == np.float64 and data.log_prob(x).shape == (len(x),)


def test_gmm_is_stable_1e3_away_from_its_modes():
    data = load("gmm:k=3,std=0.5,n_train=10,n_test=10")
    directions = np.random.default_rng(2).standard_normal((6, 2))
    x = data.modes[0] + 1e3 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    assert np.all(np.isfinite(data.log_prob(x)))
    nearest = data.modes[np.argmin(np.linalg.norm(x[:, None] - data.modes[None], axis=2), axis=1)]
    scale = 1e3 / 0.25
    np.testing.assert_allclose(data.score(x), -(x - nearest) / 0.25, rtol=1e-10, atol=1e-12 * scale)
    expected = finite_difference(data.log_prob, x, h=1e-3)
    np.testing.assert_allclose(data.score(x), expected, rtol=1e-6, atol=1e-9 * scale)


@pytest.mark.parametrize("spec", ["rings", "checkerboard", "pinwheel"])
def test_narrow_mixtures_are_finite_far_away(spec):
    data = load(with_sizes(spec, "n_train=10,n_test=10"))
    x = np.array([[1e3, 0.0], [-700.0, 700.0], [0.0, -1e3]])
    assert np.all(np.isfinite(data.log_prob(x))) and np.all(np.isfinite(data.score(x)))
    expected = finite_difference(data.log_prob, x, h=1e-3)
    np.testing.assert_allclose(data.score(x), expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_perturbed_score_matches_a_numerical_convolution():
    """grad log (p * N(0, sigma^2 I)) by grid quadrature of the convolution, then finite differences."""
    data, sigma, h = load("moons:n_train=10,n_test=10"), 0.3, 0.04
    axis = np.arange(-5, 5, h) + h / 2
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(data.log_prob(grid)) * h * h

    def smoothed_log_prob(x):
        squared = np.sum((x[:, None, :] - grid[None]) ** 2, axis=2)
        return np.log(np.exp(-0.5 * squared / sigma**2) @ density / (2 * np.pi * sigma**2))

    x = np.array([[0.0, 0.5], [-1.0, 1.8], [1.0, -0.8], [2.5, 0.3], [0.2, 0.2], [-2.8, 0.0]])
    expected = finite_difference(smoothed_log_prob, x, h=1e-4)
    np.testing.assert_allclose(data.perturbed_score(x, sigma), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.perturbed_score(x, 0.0), data.score(x), rtol=1e-12)


def test_gaussian_perturbed_score_and_moments():
    data = load("gaussian:dim=3,cond=10,mean=1.5,n_train=40000,n_test=10")
    cov = data.info["covariance"]
    x = data.test
    np.testing.assert_allclose(data.perturbed_score(x, 0.5), -(x - 1.5) @ np.linalg.inv(cov + 0.25 * np.eye(3)))
    np.testing.assert_allclose(np.linalg.eigvalsh(cov), np.geomspace(1, 10, 3), rtol=1e-12)
    np.testing.assert_allclose(data.train.mean(axis=0), 1.5, atol=5 * np.sqrt(10 / 40000))
    np.testing.assert_allclose(np.cov(data.train.T), cov, atol=5 * 10 * np.sqrt(2 / 40000))


# -- 2-D densities: mass, moments and the literature's shapes -------------------------------------

GRIDS = {
    "gaussian:cond=4": ((-10, 10, -10, 10), (0.1, 0.1)),
    "gmm:k=3": ((-20, 20, -20, 20), (0.25, 0.25)),
    "ncsn-mixture": ((-12, 12, -12, 12), (0.25, 0.25)),
    "8gaussians": ((-5, 5, -5, 5), (0.1, 0.1)),
    "rings": ((-4, 4, -4, 4), (0.04, 0.04)),
    "swissroll": ((-4, 4, -4, 4), (0.1, 0.1)),
    "moons": ((-4.5, 4.5, -3.5, 3.5), (0.1, 0.1)),
    "pinwheel": ((-5.5, 5.5, -5.5, 5.5), (0.04, 0.04)),
    "2spirals": ((-4.5, 4.5, -4.5, 4.5), (0.055, 0.055)),
    "checkerboard": ((-5.5, 5.5, -5.5, 5.5), (0.1, 0.1)),
    "banana": ((-60, 60, -12, 112), (0.5, 0.1)),
}


@functools.cache
def grid_moments(spec: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Mass, mean and covariance of a 2-D density by midpoint quadrature on its grid."""
    (x0, x1, y0, y1), (hx, hy) = GRIDS[spec]
    xs, ys = np.arange(x0, x1, hx) + hx / 2, np.arange(y0, y1, hy) + hy / 2
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    weight = np.exp(load(with_sizes(spec, "n_train=1,n_test=1")).log_prob(grid)) * hx * hy
    mass = weight.sum()
    mean = weight @ grid / mass
    centred = grid - mean
    return mass, mean, (centred * weight[:, None]).T @ centred / mass


@pytest.mark.parametrize("spec", list(GRIDS))
def test_2d_density_integrates_to_one(spec):
    mass, _, _ = grid_moments(spec)
    assert abs(mass - 1) < 1e-3


@pytest.mark.parametrize("spec", list(GRIDS))
def test_2d_samples_match_the_density_moments(spec):
    n = 20000
    sample = load(with_sizes(spec, f"n_train={n},n_test=1"), seed=4).train
    _, mean, cov = grid_moments(spec)
    scale = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(sample.mean(axis=0), mean, atol=5 * scale.max() / np.sqrt(n))
    np.testing.assert_allclose(np.cov(sample.T), cov, atol=5 * np.outer(scale, scale).max() * np.sqrt(2 / n))


def ffjord(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """The generators of FFJORD's toy_data.py (Grathwohl et al. 2019), re-typed with a numpy Generator."""
    if name == "8gaussians":
        s = 1 / np.sqrt(2)
        centers = 4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
        return (rng.standard_normal((n, 2)) * 0.5 + centers[rng.integers(8, size=n)]) / 1.414
    if name == "rings":
        angles = np.linspace(0, 2 * np.pi, n // 4, endpoint=False)
        circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        x = 3.0 * np.concatenate([r * circle for r in (1.0, 0.8, 0.55, 0.25)])
        return x + 0.08 * rng.standard_normal(x.shape)
    if name == "swissroll":
        t = 1.5 * np.pi * (1 + 2 * rng.random(n))
        return (np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.standard_normal((n, 2))) / 5
    if name == "moons":
        return make_moons(n, noise=0.1, random_state=int(rng.integers(2**31)))[0] * 2 + np.array([-1, -0.2])
    if name == "pinwheel":
        labels = rng.integers(5, size=n)
        features = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
        features[:, 0] += 1
        angles = 2 * np.pi * labels / 5 + 0.25 * np.exp(features[:, 0])
        c, s = np.cos(angles), np.sin(angles)
        return 2 * np.einsum("ti,tij->tj", features, np.stack([c, -s, s, c], axis=1).reshape(-1, 2, 2))
    if name == "2spirals":
        t = np.sqrt(rng.random(n // 2)) * 540 * (2 * np.pi) / 360
        arm = np.stack([-np.cos(t) * t + rng.random(n // 2) * 0.5, np.sin(t) * t + rng.random(n // 2) * 0.5], 1)
        return np.concatenate([arm, -arm]) / 3 + 0.1 * rng.standard_normal((2 * (n // 2), 2))
    assert name == "checkerboard"
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2


def knn_entropy(x: np.ndarray, k: int = 3) -> float:
    """Kozachenko-Leonenko estimate of the differential entropy of 2-D samples."""
    radius = cKDTree(x).query(x, k + 1)[0][:, -1]
    return float(digamma(len(x)) - digamma(k) + np.log(np.pi) + 2 * np.mean(np.log(radius)))


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [("8gaussians", 0.03), ("rings", 0.03), ("swissroll", 0.03), ("moons", 0.03), ("pinwheel", 0.03),
     ("2spirals", 0.03), ("checkerboard", 0.2)],
)  # fmt: skip
def test_2d_set_looks_like_the_literature_generator(name, tolerance):
    """KL(generator || our density), estimated as -H_knn(generator) - E_generator log p, minus the same
    estimate for our own samples (whose true KL is 0, so it must be small): that removes the estimator's
    bias (~0.02).
    The checkerboard's smoothed edges cost 0.15 nats at the default std (see its card)."""
    n = 20000
    data = load(f"{name}:n_train={n},n_test=1", seed=3)
    reference = ffjord(name, n, np.random.default_rng(5))
    kl = -knn_entropy(reference) - data.log_prob(reference).mean()
    bias = -knn_entropy(data.train) - data.log_prob(data.train).mean()
    assert abs(bias) < 0.03, "our own samples do not follow our density"
    assert kl - bias < tolerance


# -- samples of the other families ------------------------------------------------------------------


def test_banana_moments():
    b, n = 0.05, 40000
    x = load(f"banana:dim=3,bananicity={b},n_train={n},n_test=1", seed=2).train
    assert np.all(np.abs(x.mean(axis=0)) < [0.2, 0.1, 0.03])
    variances = [100, 1 + 2 * b**2 * 100**2, 1]
    np.testing.assert_allclose(x.var(axis=0), variances, rtol=0.05)


def test_funnel_moments():
    x = load("funnel:dim=5,n_train=40000,n_test=1", seed=2).train
    v, rest = x[:, 0], x[:, 1:]
    assert abs(v.mean()) < 0.1 and abs(v.var() - 9) < 0.3
    np.testing.assert_allclose((rest**2 * np.exp(-v)[:, None]).mean(axis=0), 1, atol=0.05)


def test_mode_weights_of_the_mixtures():
    """ncsn-mixture: 0.8 of the mass at (5, 5); gmm: the given relative weights, normalised."""
    data = load("ncsn-mixture:n_train=20000,n_test=1")
    np.testing.assert_array_equal(data.modes, [[5, 5], [-5, -5]])
    np.testing.assert_array_equal(data.weights, [0.8, 0.2])
    assert abs(np.mean(data.train.sum(axis=1) > 0) - 0.8) < 4 * np.sqrt(0.16 / 20000)
    gmm = load("gmm:k=3,spread=50,std=0.5,weights=6,3,1,n_train=20000,n_test=1")
    np.testing.assert_allclose(gmm.weights, [0.6, 0.3, 0.1])
    nearest = np.argmin(np.linalg.norm(gmm.train[:, None] - gmm.modes[None], axis=2), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=3) / 20000, [0.6, 0.3, 0.1], atol=0.015)


# -- seeds and splits -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["gmm:dim=3", "rings", "banana", "funnel", "digits:n_train=300,n_test=50", "patches"])
def test_split_is_reproducible_by_seed_and_differs_across_seeds(spec):
    spec = spec if "n_train" in spec else with_sizes(spec)
    first, again, other = load(spec, seed=0), load(spec, seed=0), load(spec, seed=1)
    np.testing.assert_array_equal(first.train, again.train)
    np.testing.assert_array_equal(first.test, again.test)
    assert not np.array_equal(first.train, other.train) and not np.array_equal(first.test, other.test)
    assert first.train.shape == other.train.shape and first.train.dtype == np.float64


def test_density_is_fixed_across_trial_seeds_but_not_density_seeds():
    x = np.random.default_rng(0).standard_normal((20, 3))
    a, b = load("gmm:dim=3,n_train=5,n_test=5", seed=0), load("gmm:dim=3,n_train=5,n_test=5", seed=7)
    c = load("gmm:dim=3,density_seed=1,n_train=5,n_test=5", seed=0)
    np.testing.assert_array_equal(a.log_prob(x), b.log_prob(x))
    assert not np.allclose(a.log_prob(x), c.log_prob(x))


def test_test_set_does_not_move_when_n_train_changes():
    for spec in ("moons:n_test=50", "digits:n_test=100"):
        small, large = load(f"{spec},n_train=100"), load(f"{spec},n_train=1000")
        np.testing.assert_array_equal(small.test, large.test)


# -- real data ---------------------------------------------------------------------------------------


def test_digits_are_dequantised_and_keep_their_labels():
    data = load("digits:n_train=1500,n_test=297")
    assert data.shape == (8, 8, 1) and data.is_image and {"image", "labels"} <= data.tags
    both, bunch = np.concatenate([data.train, data.test]), load_digits()
    assert both.min() >= 0 and both.max() < 1
    ours = np.column_stack([np.floor(both * 17), np.concatenate([data.labels_train, data.labels_test])])
    theirs = np.column_stack([bunch.data, bunch.target])
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])


@pytest.mark.parametrize("preprocess", ["none", "dc", "whiten"])
def test_patches_preprocessing(preprocess):
    data = load(f"patches:preprocess={preprocess},n_train=3000,n_test=500")
    assert data.shape == (8, 8, 1) and data.train.shape == (3000, 64) and data.is_image
    if preprocess == "none":
        assert data.train.min() >= 0 and data.train.max() < 1
        return
    np.testing.assert_allclose(data.test.mean(axis=1), 0, atol=1e-9)
    eigenvalues = np.linalg.eigvalsh(np.cov(data.train.T))
    if preprocess == "dc":
        assert abs(data.train.std() - 1) < 1e-9 and eigenvalues[0] < 1e-9
    else:
        assert eigenvalues[0] < 1e-6 and eigenvalues[-1] <= 1 and np.all(eigenvalues[-20:] > 0.8)


# -- the user's files -------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, type_byte: int = 0x08, compress: bool = False) -> str:
    dtype = {0x08: "u1", 0x0D: ">f4", 0x0E: ">f8"}[type_byte]
    raw = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += np.ascontiguousarray(array, dtype=dtype).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return str(path)


def test_npz_single_array_is_split_by_seed_with_labels(tmp_path):
    rows = np.arange(50, dtype=np.float64)
    np.savez(tmp_path / "d.npz", x=np.column_stack([rows, rows, -rows]), y=rows.astype(int) % 7)
    data = load(f"npz:path={tmp_path / 'd.npz'}", seed=3)
    assert data.train.shape == (40, 3) and data.test.shape == (10, 3) and data.shape == (3,)
    assert sorted(np.concatenate([data.train[:, 0], data.test[:, 0]])) == list(rows)
    np.testing.assert_array_equal(data.labels_train, data.train[:, 0].astype(int) % 7)
    np.testing.assert_array_equal(data.labels_test, data.test[:, 0].astype(int) % 7)
    assert load(f"npz:path={tmp_path / 'd.npz'},n_train=5,n_test=3").train.shape == (5, 3)


def test_npz_train_test_pair_is_kept(tmp_path):
    train, test = np.random.default_rng(0).random((30, 4, 4)), np.random.default_rng(1).random((8, 4, 4))
    np.savez(tmp_path / "pair.npz", train=train, test=test)
    data = load(f"npz:path={tmp_path / 'pair.npz'}")
    assert data.shape == (4, 4, 1) and data.is_image
    np.testing.assert_array_equal(data.train, train.reshape(30, 16))
    np.testing.assert_array_equal(data.test, test.reshape(8, 16))
    subset = load(f"npz:path={tmp_path / 'pair.npz'},n_train=5", seed=2)
    assert subset.train.shape == (5, 16) and all(any(np.array_equal(r, t) for t in data.train) for r in subset.train)


def test_idx_mnist_layout_with_labels_and_test_files(tmp_path):
    images = np.repeat(np.arange(30, dtype=np.uint8)[:, None, None], 20, axis=1).reshape(30, 5, 4) * 8
    labels = np.arange(30, dtype=np.uint8) % 10
    spec = (
        f"idx:path={write_idx(tmp_path / 'img.gz', images, compress=True)},"
        f"labels={write_idx(tmp_path / 'lab', labels)},"
        f"test_path={write_idx(tmp_path / 't-img', images[:6])},test_labels={write_idx(tmp_path / 't-lab', labels[:6])}"
    )
    data = load(spec)
    assert data.shape == (5, 4, 1) and data.is_image and data.train.shape == (30, 20) and data.test.shape == (6, 20)
    pixels = np.floor(data.train * 256)
    assert np.all(pixels == pixels[:, :1]) and 0 <= data.train.min() and data.train.max() < 1
    np.testing.assert_array_equal(data.labels_train, (pixels[:, 0] // 8) % 10)
    split = load(f"idx:path={tmp_path / 'img.gz'},labels={tmp_path / 'lab'},n_test=5")
    assert split.train.shape == (25, 20) and split.test.shape == (5, 20)


def test_idx_float_vectors_are_used_as_given(tmp_path):
    values = np.random.default_rng(0).standard_normal((12, 3))
    data = load(f"idx:path={write_idx(tmp_path / 'v', values, type_byte=0x0E)},n_test=2")
    assert data.shape == (3,) and not data.is_image
    np.testing.assert_array_equal(np.sort(np.concatenate([data.train, data.test]), axis=0), np.sort(values, axis=0))


# -- bad input ----------------------------------------------------------------------------------------

BAD_SPECS = [
    ("gmm:colour=red", ["dataset 'gmm'", "colour", "valid"]),
    ("gmm:k=two", ["dataset 'gmm'", "k='two'"]),
    ("gmm:k=0", ["dataset 'gmm'", "k=", "out of range"]),
    ("gmm:std=-1", ["dataset 'gmm'", "std=", "out of range"]),
    ("gmm:k=2,weights=0.8,0.1,0.1", ["dataset 'gmm'", "weights=", "k=2"]),
    ("gmm:k=2,weights=1,0", ["dataset 'gmm'", "weights=", "positive"]),
    ("gmm:k=2,weights=0.5,nan", ["dataset 'gmm'", "weights=", "not a finite number"]),
    ("rings:radii=1,-2", ["dataset 'rings'", "radii=", "out of range"]),
    ("pinwheel:arms=2.5", ["dataset 'pinwheel'", "arms="]),
    ("banana:dim=1", ["dataset 'banana'", "dim=", "out of range"]),
    ("digits:n_train=5000", ["dataset 'digits'", "n_train=", "1797"]),
    ("digits:n_train=1700,n_test=200", ["dataset 'digits'", "n_train=1700", "1797"]),
    ("patches:size=16", ["dataset 'patches'", "size=16", "2080"]),
    ("patches:preprocess=zca", ["dataset 'patches'", "preprocess=", "none, dc, whiten"]),
    ("npz", ["dataset 'npz'", "path is required"]),
    ("npz:path=/no/such/file.npz", ["dataset 'npz'", "path=", "no such file"]),
    ("idx:path=/no/such/file", ["dataset 'idx'", "path=", "no such file"]),
]


@pytest.mark.parametrize(("spec", "words"), BAD_SPECS, ids=[spec for spec, _ in BAD_SPECS])
def test_bad_parameters_raise_one_clear_error(spec, words):
    with pytest.raises(ParameterError) as caught:
        load(spec)
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message


def bad_files(tmp: Path) -> list[tuple[str, list[str]]]:
    (tmp / "junk.npz").write_bytes(b"not a zip archive at all")
    np.savez(tmp / "nan.npz", x=np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, 4.0]]))
    np.savez(tmp / "keys.npz", data=np.zeros((5, 2)))
    np.savez(tmp / "vector.npz", x=np.zeros(5))
    np.savez(tmp / "labels.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    np.savez(tmp / "five.npz", x=np.zeros((5, 2)))
    np.savez(tmp / "objects.npz", x=np.array([{"a": 1}] * 3, dtype=object))
    images = np.zeros((10, 3, 3), dtype=np.uint8)
    good = write_idx(tmp / "img", images)
    (tmp / "magic").write_bytes(b"\x00\x00\x07\x03" + bytes(40))
    (tmp / "pk").write_bytes(b"PK\x03\x04" + bytes(40))
    (tmp / "short").write_bytes(Path(good).read_bytes()[:-5])
    (tmp / "badgz").write_bytes(b"\x1f\x8b" + bytes(30))
    nan_floats = np.array([[0.0, np.inf], [1.0, 2.0]])
    return [
        (f"npz:path={tmp / 'junk.npz'}", ["dataset 'npz'", "path=", "not a readable .npz"]),
        (f"npz:path={tmp / 'nan.npz'}", ["dataset 'npz'", "path=", "non-finite", "finite"]),
        (f"npz:path={tmp / 'keys.npz'}", ["dataset 'npz'", "path=", "'data'", "expected 'x'"]),
        (f"npz:path={tmp / 'vector.npz'}", ["dataset 'npz'", "path=", "(n, d)"]),
        (f"npz:path={tmp / 'labels.npz'}", ["dataset 'npz'", "'y'", "(5,)"]),
        (f"npz:path={tmp / 'objects.npz'}", ["dataset 'npz'", "path=", "not a readable .npz"]),
        (f"npz:path={tmp / 'nan.npz'},n_train=1", ["dataset 'npz'", "path=", "non-finite", "row 1"]),
        (f"npz:path={tmp / 'five.npz'},n_test=5", ["dataset 'npz'", "n_test=5", "no training rows"]),
        (f"npz:path={tmp / 'five.npz'},n_train=4,n_test=2", ["dataset 'npz'", "n_train=4", "5 examples"]),
        (f"idx:path={tmp / 'magic'}", ["dataset 'idx'", "path=", "wrong IDX magic number 0x00000703"]),
        (f"idx:path={tmp / 'pk'}", ["dataset 'idx'", "path=", "wrong IDX magic number 0x504b0304"]),
        (f"idx:path={tmp / 'short'}", ["dataset 'idx'", "path=", "corrupt IDX file"]),
        (f"idx:path={tmp / 'badgz'}", ["dataset 'idx'", "path=", "corrupt gzip"]),
        (
            f"idx:path={good},labels={write_idx(tmp / 'lab', np.zeros(9, np.uint8))}",
            ["dataset 'idx'", "labels=", "(10,)"],
        ),
        (f"idx:path={write_idx(tmp / 'inf', nan_floats, 0x0E)}", ["dataset 'idx'", "path=", "non-finite"]),
        (f"idx:path={good},test_labels={tmp / 'lab'}", ["dataset 'idx'", "test_labels", "test_path"]),
        (f"idx:path={good},n_train=8,n_test=5", ["dataset 'idx'", "n_train=8", "10 examples"]),
        (f"idx:path={good},test_path={write_idx(tmp / 'f', nan_floats, 0x0E)}", ["dataset 'idx'", "test_path", "type"]),
    ]


def test_bad_files_raise_one_clear_error(tmp_path):
    for spec, words in bad_files(tmp_path):
        with pytest.raises(ParameterError) as caught:
            load(spec)
        message = str(caught.value)
        assert "\n" not in message and all(word in message for word in words), (spec, message)


# -- cards and registration ------------------------------------------------------------------------


def card_files() -> list[Path]:
    return sorted(CARDS.glob("*.toml"))


def test_every_builtin_family_has_a_card_and_every_card_a_family():
    plugins = get_plugins()
    builtin = {name for name in plugins.names("dataset") if plugins.owner("dataset", name).name == "datasets"}
    cards = {tomllib.loads(path.read_text())["family"] for path in card_files()}
    assert cards == builtin and len(builtin) == 17
    assert not (CARDS / "__init__.py").exists()


@pytest.mark.parametrize("path", card_files(), ids=lambda path: path.stem)
def test_card_parses_and_matches_its_family(path):
    card = tomllib.loads(path.read_text())
    assert card["family"] == path.stem
    family = get_plugins().get("dataset", card["family"])
    defaults = {p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in family.params}
    assert card["parameters"] == defaults
    assert {"description", "seed", "sizes", "source"} <= set(card) and card["source"]["licence"]
    if "components" in card["sizes"]:
        assert "construction" in card
        assert load(with_sizes(path.stem, "n_train=1,n_test=1")).info["components"] == card["sizes"]["components"]


def test_registration_imports_no_heavy_module():
    heavy = "{'torch', 'jax', 'mlflow', 'sklearn', 'scipy'}"
    code = f"import sys, benchbench_datasets.plugin; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
