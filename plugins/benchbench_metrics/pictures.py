"""Pictures logged as PNG artifacts of each trial: 2-D densities and score fields, image sample grids.

The learned density of a score model is recovered on a grid as exp(phi), where phi is the least-squares
potential whose finite differences best match the learned score (:func:`potential_from_score`). For a
conservative field this is its log-density up to a constant; for a field with a rotational part it is the
gradient part (the discrete Helmholtz projection), which is what Langevin dynamics follows. The relative
mass of well-separated modes is set by the score in the empty space between them, where training saw no
data: that panel can put the weights wrong while the score is accurate near every mode, which is the same
blind spot that makes plain Langevin get the mode weights wrong.
"""

from __future__ import annotations

import io

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from benchbench import EvalContext

GRID = 100
ARROWS = 20
IMAGES = 64


def _difference(n: int, step: float) -> sparse.csr_matrix:
    """(n - 1, n) forward differences divided by ``step``."""
    return sparse.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n)) / step


def potential_from_score(score_x: np.ndarray, score_y: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """phi on a (ny, nx) grid minimising sum ((phi_{i+1} - phi_i)/h - (s_i + s_{i+1})/2)^2 over both axes.

    The midpoint average makes the match exact for a linear score (a Gaussian), and second-order accurate
    otherwise. The normal equations are a sparse Laplacian; the constant null space is fixed by a 1e-10
    ridge, and the result is shifted so that max phi = 0.
    """
    ny, nx = score_x.shape
    dx = sparse.kron(sparse.identity(ny), _difference(nx, hx))
    dy = sparse.kron(_difference(ny, hy), sparse.identity(nx))
    operator = sparse.vstack([dx, dy]).tocsr()
    target = np.concatenate(
        [((score_x[:, 1:] + score_x[:, :-1]) / 2).ravel(), ((score_y[1:, :] + score_y[:-1, :]) / 2).ravel()]
    )
    normal = (operator.T @ operator + 1e-10 * sparse.identity(nx * ny)).tocsc()
    phi = spsolve(normal, operator.T @ target).reshape(ny, nx)
    return phi - phi.max()


def _normalised(log_density: np.ndarray, cell: float) -> np.ndarray:
    density = np.exp(log_density - log_density.max())
    return density / (density.sum() * cell)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sample_array(ctx: EvalContext) -> np.ndarray | None:
    samples = ctx.samples
    if samples is None:
        return None
    samples = np.asarray(samples, dtype=np.float64)
    return samples[np.all(np.isfinite(samples), axis=1)]


def density_2d(ctx: EvalContext) -> dict[str, bytes]:
    """True density | learned density (from the score, see module doc) with the samples | score field.

    The true panel is exp(log p) where the dataset knows it, else a histogram of the held-out data; the
    arrows are the learned score, with the true score in grey beneath where known. Only for 2-D data.
    """
    data = ctx.data
    if data.dim != 2:
        return {}
    low, high = data.train.min(axis=0), data.train.max(axis=0)
    low, high = low - 0.05 * (high - low), high + 0.05 * (high - low)
    xs, ys = np.linspace(low[0], high[0], GRID), np.linspace(low[1], high[1], GRID)
    hx, hy = xs[1] - xs[0], ys[1] - ys[0]
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    sigma = float(ctx.model.sigmas[-1]) if ctx.model.noise_conditional else None
    score = np.asarray(ctx.model.score(points, sigma), dtype=np.float64).reshape(GRID, GRID, 2)
    learned = _normalised(potential_from_score(score[..., 0], score[..., 1], hx, hy), hx * hy)

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.3), dpi=90)
    extent = (low[0], high[0], low[1], high[1])
    if data.log_prob is not None:
        true = _normalised(data.log_prob(points).reshape(GRID, GRID), hx * hy)
        axes[0].imshow(true, origin="lower", extent=extent, cmap="magma", aspect="auto")
        axes[0].set_title("true density")
    else:
        axes[0].hist2d(data.test[:, 0], data.test[:, 1], bins=60, range=[extent[:2], extent[2:]], cmap="magma")
        axes[0].set_title("held-out data (histogram)")
    axes[1].imshow(learned, origin="lower", extent=extent, cmap="magma", aspect="auto")
    samples = _sample_array(ctx)
    if samples is not None:
        axes[1].scatter(samples[:, 0], samples[:, 1], s=1.5, c="cyan", alpha=0.5, lw=0)
        axes[1].set_xlim(extent[:2])
        axes[1].set_ylim(extent[2:])
    axes[1].set_title(f"learned: exp(LSQ potential of score){'' if samples is None else ' + samples'}")
    coarse = np.stack(np.meshgrid(np.linspace(*extent[:2], ARROWS), np.linspace(*extent[2:], ARROWS)), -1)
    coarse = coarse.reshape(-1, 2)
    if data.score is not None:
        truth = data.score(coarse)
        axes[2].quiver(coarse[:, 0], coarse[:, 1], truth[:, 0], truth[:, 1], color="0.7", angles="xy")
    arrows = np.asarray(ctx.model.score(coarse, sigma), dtype=np.float64)
    axes[2].quiver(coarse[:, 0], coarse[:, 1], arrows[:, 0], arrows[:, 1], color="tab:blue", angles="xy")
    axes[2].set_title("score field (blue: learned, grey: true)" if data.score is not None else "learned score")
    for ax in axes:
        ax.title.set_fontsize(9)
    sigma_note = "" if sigma is None else f" (model at sigma={sigma:.3g})"
    fig.suptitle(ctx.trial.run_name + sigma_note, fontsize=9)
    fig.tight_layout()
    return {"density_2d.png": _png(fig)}


def tile(images: np.ndarray, shape: tuple[int, ...], low: float, high: float, columns: int = 8) -> np.ndarray:
    """Flattened images -> one (rows*H, columns*W[, C]) mosaic in [0, 1], clipped to [low, high]."""
    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) > 2 else 1
    images = np.clip((images.reshape(-1, height, width, channels) - low) / (high - low), 0.0, 1.0)
    rows = -(-len(images) // columns)
    mosaic = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels))
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        mosaic[r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = image
    return mosaic if channels == 3 else mosaic[..., 0]  # RGB, else the first channel in grey


def image_grid(ctx: EvalContext) -> dict[str, bytes]:
    """Up to 64 samples beside 64 held-out images, on the held-out data's intensity range."""
    data = ctx.data
    test = data.test[:IMAGES].astype(np.float64)
    low, high = float(data.test.min()), float(data.test.max())
    samples = _sample_array(ctx)
    panels = [("held-out images", test)]
    if samples is not None and len(samples):
        panels.insert(0, (f"samples ({ctx.sampler_used})", samples[:IMAGES]))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.8), dpi=90, squeeze=False)
    for ax, (title, images) in zip(axes[0], panels):
        ax.imshow(tile(images, data.shape, low, high), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(ctx.trial.run_name, fontsize=9)
    fig.tight_layout()
    return {"samples_grid.png": _png(fig)}


def loss_curve(ctx: EvalContext) -> dict[str, bytes]:
    """``loss_curve.png``: the training loss at every step."""
    plt = _pyplot()
    losses = ctx.result.losses
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(np.arange(len(losses)), losses, lw=0.8)
    ax.set(xlabel="step", ylabel="training loss", title=ctx.trial.run_name)
    ax.title.set_fontsize(8)
    return {"loss_curve.png": _png(fig)}
