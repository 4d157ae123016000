"""MAP estimation with the learned score as the prior's gradient: the first thing a score is used for downstream.

Every metric here takes held-out examples x (the first :data:`MAP_POINTS` of the test split, fewer in high
dimension), observes y = F x + noise z, and solves for the MAP estimate with the trained model's score as
grad log p by :func:`benchbench_metrics.inverse_problems.solve_map` (:data:`MAP_ITERATIONS` iterations from
x0 = m + F'(y - F m), m the training mean: the observed part of x and the mean elsewhere). Declared problems:

- ``projection`` (every dataset): F a random projection onto d/2 orthonormal directions (compressed sensing);
- ``inpaint`` (images): F drops a centred square of half the image side;
- ``blur`` (images): F is a Gaussian blur of std 1 pixel.

The observation noise is ``NOISE_FRACTION`` x the data's coordinate scale (the root mean variance of the
training coordinates). The operator and the noise come from the trial seed only, so every objective and backend
of a seed solves the same problems. The true prior's MAP, where the truth is known, is the reference: in closed
form on ``gaussian`` (:func:`~benchbench_metrics.inverse_problems.gaussian_map`), by the same solver with the
true score on other synthetic datasets (annealed over the model's ladder with the true perturbed score when the
model is noise-conditional and the dataset has one, so that both sides run the same algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbench import EvalContext
from benchbench_metrics import inverse_problems as ip

NOISE_FRACTION = 0.1
MAP_ITERATIONS = 500
MAP_POINTS = 500
MAP_ELEMENTS = 32_000
"""At most this many numbers (points x d) per problem: 500 points at d <= 64, 40 MNIST images (a conv-model
MAP on 40 images took ~1 min per problem on the loaded 2-core CPU)."""
MAX_DIM = 4096
"""The operators are dense matrices: beyond this the metric does not apply (a 4096^2 float64 is 134 MB)."""
TOL = 1e-6
PICTURES = 8
_STREAM = 1_000_003  # numpy default_rng([_STREAM, seed]): operators and observation noise, apart from other streams


@dataclass(frozen=True)
class Problem:
    """One solved inverse problem: truth, observation (in x-space, F'y), estimate, and the solver's account."""

    truth: np.ndarray
    operator: np.ndarray
    y: np.ndarray
    x0: np.ndarray
    scale: float
    estimate: np.ndarray
    noise: float
    iterations: int
    converged: float

    @property
    def observed(self) -> np.ndarray:
        """The observation back in x-space, F'y (what a picture shows)."""
        return self.y @ self.operator


def data_scale(train: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.var(train, axis=0))))


def _operator(kind: str, ctx: EvalContext, rng: np.random.Generator) -> np.ndarray:
    data = ctx.data
    if kind == "projection":
        return ip.projection_operator(data.dim, max(1, data.dim // 2), rng)
    if kind == "inpaint":
        return ip.inpainting_operator(data.shape)
    return ip.blur_operator(data.shape)


def _levels(ctx: EvalContext) -> list[float | None]:
    """The model's ladder, largest sigma first, for a noise-conditional model; one level without otherwise."""
    if ctx.model.noise_conditional:
        return sorted((float(s) for s in ctx.model.sigmas), reverse=True)
    return [None]


def _reference(ctx: EvalContext, problem: Problem) -> np.ndarray | None:
    """The true prior's MAP: closed form for a Gaussian, else the same solver with the true score, or None."""
    data = ctx.data
    operator, y, noise = problem.operator, problem.y, problem.noise
    if "covariance" in data.info:
        return ip.gaussian_map(operator, y, noise, np.asarray(data.info["mean"]), np.asarray(data.info["covariance"]))
    if data.score is None:
        return None
    levels = _levels(ctx)
    if levels != [None] and data.perturbed_score is not None:
        score = data.perturbed_score
    else:
        levels, score = [None], lambda x, sigma: data.score(x)  # noqa: E731 - one level, the true score
    result = ip.solve_map(
        score,
        operator,
        y,
        noise,
        problem.x0,
        iterations=MAP_ITERATIONS,
        scale=problem.scale,
        sigmas=levels,
        tol=TOL,
        seed=ctx.seed,
    )
    return result.x


def solve(ctx: EvalContext, kind: str, points: int | None = None) -> Problem | None:
    """The trial's ``kind`` problem on held-out examples, solved with the model's score (module docstring); once
    per evaluation, however many metrics read it."""
    return ctx.shared(f"map_estimation.{kind}.{points}", lambda: _solve(ctx, kind, points))


def _solve(ctx: EvalContext, kind: str, points: int | None) -> Problem | None:
    data = ctx.data
    if data.dim > MAX_DIM:
        return None
    n = points or max(1, min(MAP_POINTS, MAP_ELEMENTS // data.dim))
    truth = np.asarray(data.test[:n], dtype=np.float64)
    rng = np.random.default_rng([_STREAM, ctx.seed])
    operator = _operator(kind, ctx, rng)
    scale = data_scale(data.train)
    noise = NOISE_FRACTION * scale
    y = ip.observe(operator, truth, noise, rng)
    mean = np.asarray(data.train.mean(axis=0), dtype=np.float64)
    x0 = mean + (y - mean @ operator.T) @ operator
    result = ip.solve_map(
        ctx.model.score,
        operator,
        y,
        noise,
        x0,
        iterations=MAP_ITERATIONS,
        scale=scale,
        sigmas=_levels(ctx),
        tol=TOL,
        seed=ctx.seed,
    )
    return Problem(
        truth=truth,
        operator=operator,
        y=y,
        x0=x0,
        scale=scale,
        estimate=result.x,
        noise=noise,
        iterations=result.iterations,
        converged=result.converged,
    )


def mse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error per coordinate, over examples and coordinates."""
    return float(np.mean((estimate - truth) ** 2))


def psnr(estimate: np.ndarray, truth: np.ndarray, peak: float) -> float:
    """Mean over images of 10 log10(peak^2 / per-image MSE), in dB."""
    per_image = np.maximum(np.mean((estimate - truth) ** 2, axis=1), 1e-30)
    return float(np.mean(10 * np.log10(peak**2 / per_image)))


def _account(problem: Problem) -> dict[str, float]:
    return {"noise": problem.noise, "iterations": problem.iterations, "converged": problem.converged}


def map_error(ctx: EvalContext) -> dict[str, float] | None:
    """MSE per coordinate of the MAP estimate under the random projection (map_error_ratio compares it)."""
    problem = solve(ctx, "projection")
    return None if problem is None else {"value": mse(problem.estimate, problem.truth)} | _account(problem)


def map_error_ratio(ctx: EvalContext) -> dict[str, float] | None:
    """map_error / the true prior's MAP error on the same problems: 1.0 = as good a prior as the truth."""
    problem = solve(ctx, "projection")
    reference = None if problem is None else _reference(ctx, problem)
    if reference is None:
        return None
    true_error = mse(reference, problem.truth)
    return {"value": mse(problem.estimate, problem.truth) / true_error, "true_prior": true_error}


def _image_psnr(ctx: EvalContext, kind: str) -> dict[str, float] | None:
    problem = solve(ctx, kind)
    if problem is None:
        return None
    peak = float(ctx.data.test.max() - ctx.data.test.min())
    observed = psnr(problem.observed, problem.truth, peak)
    return {"value": psnr(problem.estimate, problem.truth, peak), "observed": observed} | _account(problem)


def map_psnr_inpaint(ctx: EvalContext) -> dict[str, float] | None:
    """PSNR (dB) of the MAP estimate from an image missing its centre square (.observed: of the zero-filled one)."""
    return _image_psnr(ctx, "inpaint")


def map_psnr_blur(ctx: EvalContext) -> dict[str, float] | None:
    """PSNR (dB) of the MAP estimate from a blurred noisy image (.observed: of F'y, the blurred image blurred again)."""
    return _image_psnr(ctx, "blur")


def map_pictures(ctx: EvalContext) -> dict[str, bytes]:
    """One PNG per image problem: rows observation (F'y), MAP estimate, truth, for the first 8 held-out images."""
    from benchbench_metrics.pictures import _png, _pyplot, tile

    data = ctx.data
    low, high = float(data.test.min()), float(data.test.max())
    files: dict[str, bytes] = {}
    for kind in ("inpaint", "blur"):
        problem = solve(ctx, kind, points=PICTURES)
        if problem is None:
            continue
        plt = _pyplot()
        fig, axes = plt.subplots(3, 1, figsize=(0.9 * PICTURES, 3.4), dpi=90)
        for ax, (title, images) in zip(
            axes, (("observation F'y", problem.observed), ("MAP estimate", problem.estimate), ("truth", problem.truth))
        ):
            mosaic = tile(images, data.shape, low, high, columns=PICTURES)
            ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(f"{ctx.trial.run_name}: {kind}", fontsize=8)
        fig.tight_layout()
        files[f"map_{kind}.png"] = _png(fig)
    return files
