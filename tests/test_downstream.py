"""What the learned score is for: MAP estimation with a score prior and anomaly detection by the score norm.

The solver is checked against the closed-form Gaussian MAP with the true score (to solver tolerance), annealed or
not; the anomaly AUC against its closed form for a widened isotropic Gaussian (F distribution) on a large sample.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchbench_datasets.gaussian import covariance
from benchbench_metrics import anomaly, map_estimation
from benchbench_metrics import inverse_problems as ip
from scipy import stats
from test_metrics import LinearModel, context

from benchbench.specs import Data


def gaussian(dim: int, cond: float, n_test: int, n_train: int = 2000, seed: int = 0) -> Data:
    """A Gaussian dataset as the `gaussian` family declares it (info mean and covariance)."""
    mean, cov = np.full(dim, 0.5), covariance(dim, cond, 0)
    precision = np.linalg.inv(cov)
    x = mean + np.random.default_rng(seed).standard_normal((n_train + n_test, dim)) @ np.linalg.cholesky(cov).T
    return Data(
        "gaussian",
        train=x[:n_train],
        test=x[n_train:],
        shape=(dim,),
        score=lambda p: -(p - mean) @ precision,
        perturbed_score=lambda p, s: -(p - mean) @ np.linalg.inv(cov + s**2 * np.eye(dim)),
        info={"mean": mean, "covariance": cov},
    )


def problem(dim: int = 6, cond: float = 10.0, n: int = 100):
    data = gaussian(dim, cond, n)
    rng = np.random.default_rng(1)
    operator = ip.projection_operator(dim, dim // 2, rng)
    y = ip.observe(operator, data.test, 0.1, rng)
    x0 = data.train.mean(axis=0) + (y - data.train.mean(axis=0) @ operator.T) @ operator
    return data, operator, y, x0


def test_map_iteration_with_the_true_score_is_the_closed_form_gaussian_map():
    data, operator, y, x0 = problem()
    exact = ip.gaussian_map(operator, y, 0.1, data.info["mean"], data.info["covariance"])
    result = ip.solve_map(lambda x, s: data.score(x), operator, y, 0.1, x0, iterations=20000, scale=1.0, tol=1e-12)
    assert result.converged == 1.0 and result.iterations < 20000
    np.testing.assert_allclose(result.x, exact, atol=1e-6)
    assert np.abs(x0 - exact).max() > 0.1  # the start was not already the answer


def test_annealed_map_is_the_map_of_the_smallest_sigma_prior():
    data, operator, y, x0 = problem()
    sigmas = np.geomspace(1.0, 0.05, 8)
    result = ip.solve_map(
        data.perturbed_score, operator, y, 0.1, x0, iterations=8000, scale=1.0, sigmas=sigmas, tol=1e-12
    )
    cov = data.info["covariance"] + 0.05**2 * np.eye(6)
    np.testing.assert_allclose(result.x, ip.gaussian_map(operator, y, 0.1, data.info["mean"], cov), atol=1e-6)


def test_operators():
    rng = np.random.default_rng(0)
    f = ip.projection_operator(10, 4, rng)
    np.testing.assert_allclose(f @ f.T, np.eye(4), atol=1e-12)
    mask = ip.inpainting_operator((8, 8, 1))
    assert mask.shape == (64 - 16, 64) and np.all(mask.sum(axis=1) == 1)
    hidden = np.ones(64) - mask.sum(axis=0)
    assert hidden.reshape(8, 8)[2:6, 2:6].all() and hidden.sum() == 16
    blur = ip.blur_operator((7, 5, 2))
    np.testing.assert_allclose(blur @ np.ones(70), np.ones(70))  # rows sum to one: constants pass unchanged
    image = np.zeros((7, 5, 2))
    image[3, 2, 1] = 1.0
    blurred = (blur @ image.ravel()).reshape(7, 5, 2)
    assert blurred[..., 0].max() == 0 and blurred[3, 2, 1] == blurred[..., 1].max() and blurred[2, 2, 1] > 0


def true_model(data: Data, sigmas=None) -> LinearModel:
    precision = np.linalg.inv(data.info["covariance"])
    return LinearModel(precision, data.info["mean"], sigmas)


def test_map_error_ratio_of_the_true_score_is_one():
    data = gaussian(4, 5.0, 200)
    result = map_estimation.map_error_ratio(context(data, true_model(data)))
    assert result["value"] == pytest.approx(1.0, abs=1e-3)
    error = map_estimation.map_error(context(data, true_model(data)))
    assert error["value"] == pytest.approx(result["true_prior"], rel=1e-3) and error["converged"] == 1.0
    worse = LinearModel(np.eye(4) * 0.2, np.zeros(4))  # a prior too wide and off-centre
    assert map_estimation.map_error_ratio(context(data, worse))["value"] > 1.05


def test_map_error_and_its_ratio_share_one_solve():
    data = gaussian(4, 5.0, 50)
    calls = []

    class Counting(LinearModel):
        def score(self, x, sigma=None):
            calls.append(len(x))
            return super().score(x, sigma)

    ctx = context(data, Counting(np.eye(4), np.zeros(4)))
    map_estimation.map_error(ctx)
    once = len(calls)
    assert once > 1
    map_estimation.map_error_ratio(ctx)
    assert len(calls) == once  # the ratio read the solve map_error paid for
    map_estimation.map_error_ratio(context(data, Counting(np.eye(4), np.zeros(4))))
    assert len(calls) == 2 * once  # a new evaluation solves again


def test_image_map_metrics_and_pictures():
    rng = np.random.default_rng(0)
    images = rng.random((120, 36))
    data = Data("img", train=images[:100], test=images[100:], shape=(6, 6, 1), is_image=True)
    mean = images[:100].mean(axis=0)
    model = LinearModel(np.linalg.inv(np.cov(images[:100], rowvar=False) + 1e-2 * np.eye(36)), mean)
    ctx = context(data, model)
    for metric in (map_estimation.map_psnr_inpaint, map_estimation.map_psnr_blur):
        result = metric(ctx)
        assert result["value"] > result["observed"]  # a fitted Gaussian prior improves on the observation
    files = map_estimation.map_pictures(ctx)
    assert set(files) == {"map_inpaint.png", "map_blur.png"}
    assert all(png.startswith(b"\x89PNG") for png in files.values())


def test_psnr_and_mse():
    truth = np.zeros((3, 10))
    assert map_estimation.psnr(truth + 0.1, truth, 1.0) == pytest.approx(20.0)
    assert map_estimation.mse(truth + 0.1, truth) == pytest.approx(0.01)


def test_roc_auc_is_the_mann_whitney_statistic_with_ties_halved():
    rng = np.random.default_rng(0)
    normal, outlier = rng.integers(0, 5, 300).astype(float), rng.integers(1, 6, 200).astype(float)
    pairs = (outlier[:, None] > normal[None, :]).mean() + 0.5 * (outlier[:, None] == normal[None, :]).mean()
    assert anomaly.roc_auc(normal, outlier) == pytest.approx(pairs, abs=1e-12)


@pytest.mark.parametrize("dim", [2, 5])
def test_true_score_auc_of_a_widened_gaussian_matches_its_closed_form(dim, monkeypatch):
    """||s|| = ||x - mu|| for N(mu, I); outliers mu + c (x - mu): AUC = P(c^2 X' > X), X, X' ~ chi2_d, which is
    the F(d, d) distribution function at c^2. 20,000 points per side: standard error < 0.003, tolerance 0.012."""
    data = gaussian(dim, 1.0, 40000, n_train=40000)
    monkeypatch.setattr(anomaly, "ANOMALY_POINTS", 20000)
    result = anomaly.anomaly_auc(context(data, true_model(data)))
    closed_form = stats.f(dim, dim).cdf(anomaly.WIDEN**2)
    assert result["true_score"] == pytest.approx(closed_form, abs=0.012)
    assert result["value"] == result["true_score"]  # the model is the true score


def test_anomaly_uses_declared_outliers_and_skips_data_without_any():
    rng = np.random.default_rng(0)
    normal = rng.standard_normal((200, 3))
    data = Data("d", train=normal[:100], test=normal[100:], shape=(3,), info={"outliers": 4 + normal[:50]})
    model = LinearModel(np.eye(3), np.zeros(3), sigmas=np.array([1.0, 0.1]))
    assert anomaly.anomaly_auc(context(data, model))["value"] > 0.99
    plain = Data("d", train=normal[:100], test=normal[100:], shape=(3,))
    assert anomaly.anomaly_auc(context(plain, model)) is None
