"""Metrics and pictures: discrepancies against brute force and closed forms, score-quality identities, image
features with their disk cache, PNG reports, and the registry (every metric has a direction)."""

from __future__ import annotations

import io
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from benchbench_metrics import discrepancies as dis
from benchbench_metrics import features, pictures, sample_quality, score_quality

from benchbench.errors import TrialFailure
from benchbench.evaluation import EvalContext, compute_metrics, render_reports
from benchbench.plugins import get_plugins
from benchbench.specs import Data, TrainResult
from benchbench.trial import Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class LinearModel:
    """s(x) = -A (x - b): its Jacobian is -A, so the exact trace is -tr(A)."""

    backend = "numpy"

    def __init__(self, a, b, sigmas=None):
        self.a, self.b, self.sigmas, self.noise_conditional = a, b, sigmas, sigmas is not None

    def score(self, x, sigma=None):
        return -(x - self.b) @ self.a.T

    def score_and_trace(self, x, sigma=None):
        return self.score(x, sigma), np.full(len(x), -np.trace(self.a))


class FunctionModel:
    backend = "numpy"

    def __init__(self, score, sigmas=None):
        self._score, self.sigmas, self.noise_conditional = score, sigmas, sigmas is not None

    def score(self, x, sigma=None):
        return self._score(x, sigma)


def gaussian_data(mean, cov, n_test, seed=0, n_train=200) -> Data:
    precision = np.linalg.inv(cov)
    chol = np.linalg.cholesky(cov)
    x = mean + np.random.default_rng(seed).standard_normal((n_train + n_test, len(mean))) @ chol.T

    def log_prob(p):
        c = p - mean
        return -0.5 * np.einsum("ni,ij,nj->n", c, precision, c)

    return Data(
        "gaussian",
        train=x[:n_train],
        test=x[n_train:],
        shape=(len(mean),),
        score=lambda p: -(p - mean) @ precision,
        log_prob=log_prob,
        perturbed_score=lambda p, s: -(p - mean) @ np.linalg.inv(cov + s**2 * np.eye(len(mean))),
    )


def context(data, model, samples=None, objective_params=None, seed=0) -> EvalContext:
    settings = Settings(n_samples=len(samples) if samples is not None else 200)
    trial = SimpleNamespace(backend="numpy", settings=settings, objective_params=objective_params or {}, run_name="t")
    result = TrainResult(model=model, losses=np.zeros(3), steps=3, train_s=1.0, compile_s=0.0)
    ctx = EvalContext(data=data, result=result, trial=trial, plugins=get_plugins(), seed=seed)
    if samples is not None:
        ctx.samples = samples  # what the sampler would have drawn (cached_property: an instance value wins)
        ctx.sampler_used = "given"
    return ctx


# -- sample discrepancies --------------------------------------------------------------------------


def _brute_mmd(x, y, k):
    def mean_off(a):
        return np.mean([k(a[i], a[j]) for i in range(len(a)) for j in range(len(a)) if i != j])

    return mean_off(x) + mean_off(y) - 2 * np.mean([k(p, q) for p in x for q in y])


def test_mmd_and_energy_distance_match_their_definitions():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((5, 3)) + 0.5
    h = 1.3
    rbf = _brute_mmd(x, y, lambda p, q: np.exp(-np.sum((p - q) ** 2) / (2 * h * h)))
    assert dis.mmd_squared(x, y, dis.rbf_kernel(h)) == pytest.approx(rbf, rel=1e-12)
    for beta in (-0.5, -0.3):
        imq = _brute_mmd(x, y, lambda p, q, beta=beta: (1 + np.sum((p - q) ** 2)) ** beta)
        assert dis.mmd_squared(x, y, dis.imq_kernel(beta=beta)) == pytest.approx(imq, rel=1e-12)
    energy = -_brute_mmd(x, y, lambda p, q: np.linalg.norm(p - q))  # energy distance = MMD^2 of -|x - y|
    assert dis.energy_distance(x, y) == pytest.approx(energy, rel=1e-12)
    pairs = [np.linalg.norm(p - q) for p, q in itertools.combinations(x, 2)]
    assert dis.median_distance(x) == pytest.approx(np.median(pairs), rel=1e-12)


def test_sample_metrics_share_one_set_of_distance_matrices(monkeypatch):
    """mmd, mmd_imq and energy_distance of one evaluation read the same three matrices (computed once) and give
    what the statistics computed from the points alone give."""
    data = gaussian_data(np.zeros(3), np.eye(3), n_test=300)
    samples = np.random.default_rng(5).standard_normal((250, 3)) * 1.2 + 0.3
    test = data.test
    expected = {
        "mmd": dis.mmd_squared(samples, test, dis.rbf_kernel(dis.median_distance(test))),
        "mmd_imq": dis.mmd_squared(samples, test, dis.imq_kernel()),
        "energy_distance": dis.energy_distance(samples, test),
    }
    calls = []
    monkeypatch.setattr(
        dis, "squared_distances", lambda x, y, real=dis.squared_distances: calls.append(1) or real(x, y)
    )
    ctx = context(data, None, samples)
    got = {name: getattr(sample_quality, name)(ctx) for name in expected}
    assert len(calls) == 3
    assert got["mmd"]["value"] == pytest.approx(expected["mmd"], rel=1e-12)
    assert got["mmd"]["bandwidth"] == pytest.approx(dis.median_distance(test), rel=1e-12)
    assert got["mmd_imq"] == pytest.approx(expected["mmd_imq"], rel=1e-12)
    assert got["energy_distance"] == pytest.approx(expected["energy_distance"], rel=1e-12)
    assert min(expected.values()) > 0.0


def test_sliced_wasserstein_is_exact_for_unequal_sizes():
    """Repeating each point of an n-sample m times leaves its measure unchanged, and at equal sizes the 1-D
    W_2^2 is the mean squared difference of the sorted values."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((4, 2)) * 2 + 1
    directions = dis.random_directions(2, 9, seed=3)
    px, py = np.sort(np.repeat(x, 4, axis=0) @ directions.T, axis=0), np.sort(np.repeat(y, 6, axis=0) @ directions.T, 0)
    expected = np.sqrt(np.mean((px - py) ** 2))
    assert dis.sliced_wasserstein(x, y, directions) == pytest.approx(expected, rel=1e-12)
    assert dis.sliced_wasserstein(x, np.repeat(x, 3, axis=0), directions) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "distance",
    [
        lambda x, y: dis.mmd_squared(x, y, dis.rbf_kernel(dis.median_distance(y))),
        lambda x, y: dis.mmd_squared(x, y, dis.imq_kernel()),
        dis.energy_distance,
        lambda x, y: dis.sliced_wasserstein(x, y, dis.random_directions(3, 100, 0)),
    ],
    ids=["mmd", "mmd_imq", "energy", "sliced_wasserstein"],
)
def test_sample_distances_vanish_on_one_distribution_and_grow_with_a_shift(distance):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((400, 3)), rng.standard_normal((500, 3))
    shifted = [distance(x + shift, y) for shift in (0.25, 0.5, 1.0, 2.0)]
    assert abs(distance(x, x)) < 0.03 * shifted[2] and abs(distance(x, y)) < 0.3 * shifted[1]
    assert all(a < b for a, b in itertools.pairwise(shifted))


def _stein_kernel_by_differences(x, y, sx, sy, c=1.0, beta=-0.5, h=1e-5):
    """u(x, y) = sx.sy k + sx.grad_y k + sy.grad_x k + sum_i d^2 k / dx_i dy_i by central differences."""

    def k(a, b):
        return (c * c + np.sum((a - b) ** 2)) ** beta

    eye = np.eye(len(x)) * h
    grad_x = np.array([(k(x + e, y) - k(x - e, y)) / (2 * h) for e in eye])
    grad_y = np.array([(k(x, y + e) - k(x, y - e)) / (2 * h) for e in eye])
    mixed = sum((k(x + e, y + e) - k(x + e, y - e) - k(x - e, y + e) + k(x - e, y - e)) / (4 * h * h) for e in eye)
    return sx @ sy * k(x, y) + sx @ grad_y + sy @ grad_x + mixed


@pytest.mark.parametrize("beta", [-0.5, -0.3])  # -1/2 takes the 1/sqrt path, others numpy's power
def test_ksd_stein_kernel_matches_finite_differences(beta):
    rng = np.random.default_rng(4)
    x, s = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    # with two points the U-statistic is the mean of u(x0, x1) and u(x1, x0), which are equal
    expected = _stein_kernel_by_differences(x[0], x[1], s[0], s[1], beta=beta)
    assert dis.ksd_squared_imq(x, s, beta=beta) == pytest.approx(expected, rel=1e-6)


def test_ksd_is_small_for_exact_samples_and_large_for_shifted_ones():
    mean, cov = np.array([1.0, -1.0]), np.array([[2.0, 0.6], [0.6, 1.0]])
    data = gaussian_data(mean, cov, n_test=10)
    exact = gaussian_data(mean, cov, n_test=1500, seed=5).test
    small = dis.ksd_squared_imq(exact, data.score(exact))
    shifted = dis.ksd_squared_imq(exact + 0.5, data.score(exact + 0.5))
    assert abs(small) < 2e-3 and shifted > 20 * abs(small) and shifted > 0.02


def test_mode_weights_reports_the_shares_and_the_worst_error():
    modes, weights = np.array([[5.0, 5.0], [-5.0, -5.0], [5.0, -5.0]]), np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(6)
    samples = np.repeat(modes, [600, 100, 300], axis=0) + 0.5 * rng.standard_normal((1000, 2))
    data = Data("mix", train=samples, test=samples, shape=(2,), modes=modes, weights=weights)
    result = sample_quality.mode_weights(context(data, None, samples))
    assert result == pytest.approx({"value": 0.2, "share_0": 0.6, "share_1": 0.1, "share_2": 0.3})


def test_diverged_samples_fail_the_sample_metrics_with_a_clear_message():
    data = gaussian_data(np.zeros(2), np.eye(2), n_test=50)
    samples = np.ones((20, 2))
    samples[3, 1] = np.nan
    with pytest.raises(TrialFailure, match="1 of 20 samples .* not finite"):
        sample_quality.mmd(context(data, None, samples))


# -- score quality -------------------------------------------------------------------------------------


def test_sm_objective_is_fisher_divergence_minus_the_data_constant(monkeypatch):
    """Gaussian N(mu, S), s(x) = -A(x - b): J = 1/2 [tr(A S A') + |A(mu - b)|^2] - tr(A) and
    Fisher = J + 1/2 E|grad log p|^2 = J + tr(S^-1)/2. On a finite test set the identity holds up to
    sampling error: checked against 5 standard errors of its per-point terms, -s.g - tr(ds/dx)."""
    monkeypatch.setattr(score_quality, "MAX_TRACE_POINTS", 40000)
    rng = np.random.default_rng(7)
    mean, root = rng.standard_normal(3), rng.standard_normal((3, 3))
    cov = root @ root.T + np.eye(3)
    data = gaussian_data(mean, cov, n_test=40000, seed=8)
    a, b = rng.standard_normal((3, 3)) + 2 * np.eye(3), rng.standard_normal(3)
    ctx = context(data, LinearModel(a, b))
    fisher, sm = score_quality.fisher_divergence(ctx), score_quality.sm_objective(ctx)
    x, g = data.test, data.score(data.test)
    s = -(x - b) @ a.T
    assert sm == pytest.approx(np.mean(0.5 * np.sum(s * s, axis=1)) - np.trace(a), rel=1e-12)
    constant = 0.5 * np.mean(np.sum(g * g, axis=1))
    standard_error = np.std(-np.sum(s * g, axis=1)) / np.sqrt(len(x))
    assert fisher - sm - constant == pytest.approx(0.0, abs=5 * standard_error)
    assert 5 * standard_error < 0.05 * fisher  # sharp enough to catch a wrong sign or factor
    closed_j = 0.5 * (np.trace(a @ cov @ a.T) + np.sum((a @ (mean - b)) ** 2)) - np.trace(a)
    assert sm == pytest.approx(closed_j, abs=5 * standard_error)
    assert fisher == pytest.approx(closed_j + 0.5 * np.trace(np.linalg.inv(cov)), abs=5 * standard_error)


def test_perturbed_fisher_divergence_at_the_training_sigma():
    """N(0, v I) and the clean score -x/v against p_sigma = N(0, (v + sigma^2) I) on x ~ p_sigma:
    1/2 E|x|^2 (1/(v + s^2) - 1/v)^2 = d s^4 / (2 v^2 (v + s^2))."""
    d, v, sigma = 2, 1.5, 0.7
    data = gaussian_data(np.zeros(d), v * np.eye(d), n_test=20000, seed=9)
    clean = FunctionModel(lambda x, s: -x / v)
    result = score_quality.perturbed_fisher_divergence(context(data, clean, objective_params={"sigma": sigma}))
    assert result["sigma"] == sigma and set(result) == {"value", "sigma"}
    assert result["value"] == pytest.approx(d * sigma**4 / (2 * v**2 * (v + sigma**2)), rel=0.04)
    exact = FunctionModel(lambda x, s: -x / (v + sigma**2))
    assert score_quality.perturbed_fisher_divergence(context(data, exact, objective_params={"sigma": sigma}))[
        "value"
    ] == pytest.approx(0.0, abs=1e-20)
    assert (
        score_quality.perturbed_fisher_divergence(context(data, clean, objective_params={"n_projections": 1})) is None
    )


def test_perturbed_fisher_divergence_per_level_of_a_noise_conditional_model():
    v, sigmas = 1.0, np.array([2.0, 1.0, 0.5])
    data = gaussian_data(np.zeros(2), v * np.eye(2), n_test=2000)
    # exact at every level but the middle one, where it uses the clean score
    model = FunctionModel(lambda x, s: -x / (v + (0.0 if s == 1.0 else s**2)), sigmas)
    result = score_quality.perturbed_fisher_divergence(context(data, model))
    assert set(result) == {"value", "sigma", "sigma_2", "sigma_1", "sigma_0.5"}
    assert result["sigma"] == 0.5 and result["value"] == result["sigma_0.5"] == pytest.approx(0.0, abs=1e-20)
    assert result["sigma_2"] == pytest.approx(0.0, abs=1e-20) and result["sigma_1"] > 0.05


# -- image features --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Data:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    x = (images[order] + rng.uniform(0, 1, images.shape)) / 17.0  # dequantised to [0, 1)
    return Data(
        "digits",
        train=x[:1400],
        test=x[1400:],
        shape=(8, 8, 1),
        labels_train=labels[order][:1400],
        labels_test=labels[order][1400:],
        is_image=True,
    )


def test_frechet_distance_matches_closed_forms():
    mean_a, mean_b = np.array([1.0, 2.0, 0.0]), np.array([0.0, 0.0, 1.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert dis.frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b)) == pytest.approx(expected, rel=1e-12)
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(3)
    ra, rb = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    ca, cb = ra @ ra.T, rb @ rb.T
    general = np.sum((mean_a - mean_b) ** 2) + np.trace(ca + cb - 2 * sqrtm(ca @ cb).real)
    assert dis.frechet_distance(mean_a, ca, mean_b, cb) == pytest.approx(general, rel=1e-9)


def test_feature_metrics_rank_real_images_above_noise_and_cache_the_classifier(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBENCH_CACHE_DIR", str(tmp_path))
    real = digits.train[:397]  # other images of the same distribution as the test split
    noise = np.random.default_rng(1).uniform(0, 1, real.shape)
    good = features.feature_frechet(context(digits, None, real))
    bad = features.feature_frechet(context(digits, None, noise))
    assert good["classifier_accuracy"] > 0.85
    assert good["value"] < 0.1 * bad["value"]
    assert features.feature_mmd(context(digits, None, real)) < 0.1 * features.feature_mmd(context(digits, None, noise))
    cached = list((tmp_path / "feature-classifiers").glob("*.npz"))
    assert len(cached) == 1

    def no_training(data):
        raise AssertionError("the cached classifier should have been used")

    features._load.cache_clear()
    monkeypatch.setattr(features, "train_extractor", no_training)
    assert features.feature_frechet(context(digits, None, real)) == pytest.approx(good)
    relabelled = Data(**{**digits.__dict__, "labels_train": (digits.labels_train + 1) % 10})
    with pytest.raises(AssertionError, match="cached classifier"):  # other training data: another cache entry
        features.feature_frechet(context(relabelled, None, real))


# -- pictures ---------------------------------------------------------------------------------------------


def test_potential_from_score_recovers_log_densities():
    xs, ys = np.linspace(-4, 5, 60), np.linspace(-3, 3, 50)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    gaussian = gaussian_data(np.array([0.5, 0.0]), np.array([[2.0, 0.7], [0.7, 1.0]]), n_test=1)
    for log_p, score, tol in [
        (gaussian.log_prob, gaussian.score, 1e-6),  # linear score: the midpoint rule is exact
        (_mixture_log_prob, _mixture_score, 0.05),  # second order in the grid step
    ]:
        s = score(grid).reshape(50, 60, 2)
        phi = pictures.potential_from_score(s[..., 0], s[..., 1], xs[1] - xs[0], ys[1] - ys[0])
        truth = log_p(grid).reshape(50, 60)
        assert np.max(np.abs((phi - phi.mean()) - (truth - truth.mean()))) < tol


_MODES = np.array([[-2.0, 0.0], [2.5, 1.0]])


def _mixture_log_prob(x):
    return np.logaddexp(*[np.log(w) - 0.5 * np.sum((x - m) ** 2, 1) for w, m in zip((0.3, 0.7), _MODES)])


def _mixture_score(x):
    logs = np.stack([np.log(w) - 0.5 * np.sum((x - m) ** 2, 1) for w, m in zip((0.3, 0.7), _MODES)], 1)
    resp = np.exp(logs - _mixture_log_prob(x)[:, None])
    return -np.einsum("nk,nkd->nd", resp, x[:, None, :] - _MODES)


def _decode(png: bytes) -> np.ndarray:
    import matplotlib.image

    assert png.startswith(PNG_SIGNATURE)
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_density_report_renders_a_png_for_2d_data_only():
    data = gaussian_data(np.zeros(2), np.eye(2), n_test=300)
    samples = data.test[:200]
    files = pictures.density_2d(context(data, FunctionModel(lambda x, s: -0.9 * x), samples))
    assert set(files) == {"density_2d.png"} and _decode(files["density_2d.png"]).shape[1] > 800
    assert pictures.density_2d(context(gaussian_data(np.zeros(3), np.eye(3), n_test=5), None)) == {}


def test_image_grid_report_shows_samples_beside_test_images(digits):
    files, errors = render_reports(
        context(digits, None, digits.train[:64]),
        [r for r, _ in get_plugins().items("report") if r.name != "map_pictures"],  # needs a model: test_downstream
    )
    assert errors == {} and set(files) == {"samples_grid.png", "loss_curve.png"}
    assert _decode(files["samples_grid.png"]).shape[1] > 600
    mosaic = pictures.tile(digits.test[:10], (8, 8, 1), 0.0, 1.0, columns=4)
    assert mosaic.shape == (3 * 9 - 1, 4 * 9 - 1)
    np.testing.assert_allclose(mosaic[9:17, 0:8], digits.test[4].reshape(8, 8))


# -- registry and wiring ----------------------------------------------------------------------------------


def test_every_metric_declares_a_direction_and_the_evaluation_ones_are_registered():
    metrics = {m.name: m for m, _ in get_plugins().items("metric")}
    assert all(m.direction in ("lower", "higher") for m in metrics.values())
    expected = {
        "fisher_divergence": "lower",
        "sm_objective": "lower",
        "perturbed_fisher_divergence": "lower",
        "mmd": "lower",
        "mmd_imq": "lower",
        "sliced_wasserstein": "lower",
        "energy_distance": "lower",
        "ksd": "lower",
        "mode_weights": "lower",
        "feature_frechet": "lower",
        "feature_mmd": "lower",
        "samples_per_s": "higher",
        "train_steps_per_s": "higher",
        "peak_memory_mb": "lower",
    }
    assert {name: metrics[name].direction for name in expected} == expected


def test_all_applicable_metrics_compute_on_a_mixture_through_the_registered_sampler():
    modes, weights = np.array([[2.0, 2.0], [-2.0, -2.0]]), np.array([0.5, 0.5])
    rng = np.random.default_rng(10)
    x = modes[rng.integers(0, 2, 600)] + rng.standard_normal((600, 2))

    def score(p, sigma=None):
        logs = np.stack([-0.5 * np.sum((p - m) ** 2, 1) for m in modes], 1)
        resp = np.exp(logs - logs.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
        return -np.einsum("nk,nkd->nd", resp, p[:, None, :] - modes)

    def score_and_trace(p, sigma=None, h=1e-5):
        trace = sum((score(p + e)[:, i] - score(p - e)[:, i]) / (2 * h) for i, e in enumerate(np.eye(2) * h))
        return score(p), trace

    model = FunctionModel(score)
    model.score_and_trace = score_and_trace
    data = Data("mix", train=x[:400], test=x[400:], shape=(2,), score=score, modes=modes, weights=weights)
    ctx = context(data, model)
    ctx.trial.settings = Settings(n_samples=200, sampler="langevin", sampler_params={"eps": 0.05, "n_steps": 300})
    values, errors = compute_metrics(ctx, [m for m, _ in get_plugins().items("metric")])
    assert errors == {}
    for name in ("mmd", "mmd.bandwidth", "mmd_imq", "sliced_wasserstein", "energy_distance", "samples_per_s"):
        assert np.isfinite(values[name]) and values[name] > -0.01
    g, trace = score_and_trace(data.test)
    assert values["fisher_divergence"] == 0.0
    assert values["sm_objective"] == pytest.approx(np.mean(0.5 * np.sum(g * g, 1) + trace), rel=1e-12)
    assert abs(values["ksd"]) < 0.02 and values["mode_weights"] < 0.1
    assert "feature_frechet" not in values and "perturbed_fisher_divergence" not in values
