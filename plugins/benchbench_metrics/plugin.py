"""Registers the built-in metrics and pictures through the public ``register_metrics`` / ``register_reports`` hooks."""

from __future__ import annotations

from benchbench import Metric, Report, hookimpl

_M = "benchbench_metrics.score_quality"
_S = "benchbench_metrics.sample_quality"
_F = "benchbench_metrics.features"
_T = "benchbench_metrics.throughput"
_P = "benchbench_metrics.pictures"
_L = "benchbench_metrics.levels"
_MAP = "benchbench_metrics.map_estimation"
_A = "benchbench_metrics.anomaly"

# Headline metrics (the default table columns): sm_objective compares objectives on data with no known score;
# train_step_ms (not also its inverse train_steps_per_s) so that speed counts once in the rank. Not
# peak_memory_mb: on CPU it is the process's lifetime peak RSS, so with in-process trials it grows with trial order
# (561 -> 1387 MB over the 20 trials of the quick suite, measured); ask for it with --metric.
SCORE_QUALITY = (
    Metric(
        "fisher_divergence",
        "1/2 E_test ||s_theta(x) - grad log p(x)||^2 on held-out data (needs the true score)",
        "lower",
        f"{_M}:fisher_divergence",
        requires=("score",),
        headline=True,
        curve=True,
    ),
    Metric(
        "sm_objective",
        "held-out implicit score-matching objective E[1/2 ||s||^2 + tr(ds/dx)] with the exact trace: "
        "Fisher divergence minus a constant of the data, for any dataset",
        "lower",
        f"{_M}:sm_objective",
        headline=True,
        curve=True,
    ),
    Metric(
        "perturbed_fisher_divergence",
        "noise-trained models: 1/2 E||s_theta - grad log p_sigma||^2 on noisy held-out data, p_sigma = p * N(0, "
        "sigma^2 I), at the training sigma or the smallest level (.sigma says which; .sigma_<s> per level)",
        "lower",
        f"{_M}:perturbed_fisher_divergence",
        requires=("perturbed_score",),
        curve=True,
    ),
)

SAMPLE_QUALITY = (
    Metric(
        "mmd",
        "unbiased MMD^2 of samples vs held-out data, RBF kernel, bandwidth = median held-out distance (.bandwidth)",
        "lower",
        f"{_S}:mmd",
        needs_samples=True,
        headline=True,
    ),
    Metric(
        "mmd_imq",
        "unbiased MMD^2 of samples vs held-out data, inverse multiquadric kernel (1 + r^2)^-1/2",
        "lower",
        f"{_S}:mmd_imq",
        needs_samples=True,
    ),
    Metric(
        "sliced_wasserstein",
        "sliced 2-Wasserstein distance of samples vs held-out data, 500 fixed random directions",
        "lower",
        f"{_S}:sliced_wasserstein",
        needs_samples=True,
    ),
    Metric(
        "energy_distance",
        "energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| of samples vs held-out data",
        "lower",
        f"{_S}:energy_distance",
        needs_samples=True,
    ),
    Metric(
        "ksd",
        "unbiased kernel Stein discrepancy^2 of the samples w.r.t. the true score, IMQ kernel",
        "lower",
        f"{_S}:ksd",
        requires=("synthetic",),
        needs_samples=True,
    ),
    Metric(
        "mode_weights",
        "mixtures: max |share of samples nearest a mode - its weight| (.share_k per mode)",
        "lower",
        f"{_S}:mode_weights",
        requires=("mixture",),
        needs_samples=True,
    ),
    Metric(
        "feature_frechet",
        "images: Frechet distance of samples vs held-out data in the features of a small classifier trained on "
        "the training split (NOT Inception-FID; not comparable with published FIDs)",
        "lower",
        f"{_F}:feature_frechet",
        requires=("image", "labels"),
        needs_samples=True,
    ),
    Metric(
        "feature_mmd",
        "images: unbiased MMD^2 (RBF, median bandwidth) in the same classifier features as feature_frechet",
        "lower",
        f"{_F}:feature_mmd",
        requires=("image", "labels"),
        needs_samples=True,
    ),
    Metric(
        "samples_per_s",
        "samples drawn per second by the trial's sampler (jit compilation included)",
        "higher",
        f"{_S}:samples_per_s",
        needs_samples=True,
    ),
)

THROUGHPUT = (
    Metric(
        "train_steps_per_s",
        "timed training steps per second (device synchronised; compile and warm-up excluded)",
        "higher",
        f"{_T}:train_steps_per_s",
    ),
    Metric("train_examples_per_s", "training examples per second", "higher", f"{_T}:train_examples_per_s"),
    Metric("train_step_ms", "milliseconds per timed training step", "lower", f"{_T}:train_step_ms", headline=True),
    Metric("compile_s", "first-step (trace + compile + one step) seconds", "lower", f"{_T}:compile_s"),
    Metric(
        "warmup_s",
        "seconds of the warm-up steps after the first, until the step time is steady (.steps: how many)",
        "lower",
        f"{_T}:warmup_s",
    ),
    Metric(
        "train_time_s",
        "training seconds: warm-up and timed steps (what --time-budget counts and the curves' time axis)",
        "lower",
        f"{_T}:train_time_s",
    ),
    Metric("steps", "training steps done (with --time-budget: the steps reached)", "higher", f"{_T}:steps"),
    Metric(
        "peak_memory_mb",
        "peak memory in MB (the run's memory_source tag says how it was measured)",
        "lower",
        f"{_T}:peak_memory_mb",
    ),
    Metric("final_loss", "mean training loss over the last 5% of steps", "lower", f"{_T}:final_loss"),
)

DOWNSTREAM = (
    Metric(
        "map_error",
        "MSE per coordinate of the MAP estimate x from y = F x + noise, F a random projection to d/2 dimensions, "
        "solved with the learned score as grad log p (held-out x; .noise, .iterations, .converged)",
        "lower",
        f"{_MAP}:map_error",
    ),
    Metric(
        "map_error_ratio",
        "map_error / the true prior's MAP error on the same problems (closed form on gaussian, the same solver "
        "with the true score elsewhere): 1.0 = as good a prior as the truth (.true_prior: its MSE)",
        "lower",
        f"{_MAP}:map_error_ratio",
        requires=("score",),
    ),
    Metric(
        "map_psnr_inpaint",
        "images: PSNR (dB) of the MAP estimate of held-out images whose centre square is missing",
        "higher",
        f"{_MAP}:map_psnr_inpaint",
        requires=("image",),
    ),
    Metric(
        "map_psnr_blur",
        "images: PSNR (dB) of the MAP estimate of held-out images blurred (Gaussian, std 1 pixel) with noise",
        "higher",
        f"{_MAP}:map_psnr_blur",
        requires=("image",),
    ),
    Metric(
        "anomaly_auc",
        "ROC AUC of the anomaly score ||s(x)|| on held-out normals vs outliers (a held-out class, or the data "
        "widened 1.5x about its mean; .true_score: the same with the true score)",
        "higher",
        f"{_A}:anomaly_auc",
    ),
)

METRICS = SCORE_QUALITY + SAMPLE_QUALITY + THROUGHPUT + DOWNSTREAM

REPORTS = (
    Report("loss_curve", "the training loss against the step", f"{_P}:loss_curve", every_seed=True),
    Report(
        "density_2d",
        "2-D data: true density | density recovered from the learned score, with samples | score field",
        f"{_P}:density_2d",
    ),
    Report("image_grid", "images: a grid of samples beside a grid of held-out images", f"{_P}:image_grid", ("image",)),
    Report(
        "error_by_sigma",
        "noise-conditional models: perturbed Fisher divergence against sigma over the model's ladder (log-log)",
        f"{_L}:error_by_sigma",
        ("perturbed_score",),
    ),
    Report(
        "map_pictures",
        "images: observation, MAP estimate with the learned prior, and truth, for inpainting and deblurring",
        f"{_MAP}:map_pictures",
        ("image",),
    ),
)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)


@hookimpl
def register_reports(register):
    for report in REPORTS:
        register(report)
