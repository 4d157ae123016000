"""Registers the peers' losses as objectives, each library only when it is installed (no torch or jax here).

Every objective is named after its library and calls the library's own loss code (see each ``*_losses`` module
for the adaptations: what the network outputs, where the randomness comes from). Defaults are the library's.
"""

from __future__ import annotations

import importlib.util

from benchbench import Objective, Param, hookimpl

BIAS = "benchbench_peers.bias:"


def _torch(module: str, function: str) -> dict[str, str]:
    return {"torch": f"benchbench_peers.{module}:{function}"}


TORCHEBM = (
    Objective(
        name="torchebm-esm-approx",
        description="torchebm ScoreMatching(hessian_method='approx'): 1/2||s||^2 + finite-difference trace",
        losses=_torch("torchebm_losses", "esm_approx_loss"),
        reference="torchebm 0.8.9, torchebm.losses.ScoreMatching; Hyvarinen (2005)",
    ),
    Objective(
        name="torchebm-dsm",
        description="torchebm DenoisingScoreMatching: 1/2||grad E(x + noise) - noise / sigma^2||^2",
        losses=_torch("torchebm_losses", "dsm_loss"),
        params=(Param("sigma", 0.01, "noise_scale (torchebm's default)", low=1e-6),),
        biased=True,
        expected_bias=BIAS + "torchebm_dsm_bias",
        reference="torchebm 0.8.9, torchebm.losses.DenoisingScoreMatching; Vincent (2011)",
    ),
    Objective(
        name="torchebm-ssm",
        description="torchebm SlicedScoreMatching: 1/2 (v's)^2 + v'(ds/dx)v by double backward",
        losses=_torch("torchebm_losses", "sliced_loss"),
        params=(
            Param("n_projections", 5, "projections per example (torchebm's default)", low=1),
            Param("projection", "rademacher", "projection_type", choices=("rademacher", "sphere", "gaussian")),
        ),
        reference="torchebm 0.8.9, torchebm.losses.SlicedScoreMatching; Song et al. (2019)",
    ),
)

SCORE_MODELS = (
    Objective(
        name="score-models-dsm",
        description="score-models ScoreModel.loss_fn on a VE SDE: sum||z + sigma s(x + sigma z)||^2 / B",
        losses=_torch("score_models_losses", "dsm_loss"),
        params=(
            Param("sigma_min", 0.01, "VESDE sigma_min", low=1e-6),
            Param("sigma_max", 1.0, "VESDE sigma_max", low=1e-6),
            Param(
                "n_sigmas",
                10,
                "benchbench's evaluation ladder only: the loss draws sigma continuously",
                low=1,
                loss_independent="benchbench's evaluation ladder; the loss draws sigma continuously",
            ),
        ),
        noise_conditional=True,
        biased=True,
        expected_bias=BIAS + "score_models_dsm_bias",
        reference="score-models 0.5.11, score_models.dsm.denoising_score_matching; Song et al. (2021)",
    ),
    Objective(
        name="score-models-ssm",
        description="score-models sliced_score_matching_loss: 1/2||s||^2 + v'(ds/dx)v by torch.func.vjp",
        losses=_torch("score_models_losses", "ssm_loss"),
        params=(
            Param("n_cotangent_vectors", 1, "probes per example", low=1),
            Param("noise_type", "rademacher", "probe distribution", choices=("rademacher", "gaussian")),
        ),
        reference="score-models 0.5.11, score_models.sliced_score_matching; Song et al. (2019)",
    ),
)

_TOY_PARAMS = (
    Param("n_slices", 1, "projections per example", low=1),
    Param(
        "noise_type", "gaussian", "Trainer's noise_type (its spelling)", choices=("gaussian", "radermacher", "sphere")
    ),
)

TOY_GRADLOGP = (
    Objective(
        name="toy-gradlogp-ssm",
        description="toy-gradlogp Trainer loss_type='ssm': 1/2 (v's)^2 + v'(ds/dx)v",
        losses=_torch("toy_gradlogp_losses", "ssm_loss"),
        params=_TOY_PARAMS,
        reference="toy-gradlogp 0.2.2, toy_gradlogp.energy.Trainer; Song et al. (2019)",
    ),
    Objective(
        name="toy-gradlogp-ssm-vr",
        description="toy-gradlogp Trainer loss_type='ssm-vr': 1/2||s||^2 + v'(ds/dx)v",
        losses=_torch("toy_gradlogp_losses", "ssm_vr_loss"),
        params=_TOY_PARAMS,
        reference="toy-gradlogp 0.2.2, toy_gradlogp.energy.Trainer; Song et al. (2019)",
    ),
    Objective(
        name="toy-gradlogp-dsm",
        description="toy-gradlogp Trainer loss_type='dsm' (sigma = 0.1)",
        losses=_torch("toy_gradlogp_losses", "dsm_loss"),
        biased=True,
        expected_bias=BIAS + "toy_gradlogp_dsm_bias",
        reference="toy-gradlogp 0.2.2, toy_gradlogp.energy.Trainer; Vincent (2011)",
    ),
    Objective(
        name="toy-gradlogp-deen",
        description="toy-gradlogp Trainer loss_type='deen' (sigma = 0.1): sigma^4 x DSM",
        losses=_torch("toy_gradlogp_losses", "deen_loss"),
        biased=True,
        expected_bias=BIAS + "toy_gradlogp_deen_bias",
        reference="toy-gradlogp 0.2.2, toy_gradlogp.energy.Trainer; Saremi et al. (2018), DEEN",
    ),
)

_COREAX_PARAMS = (
    Param("num_random_vectors", 1, "projections per example", low=1),
    Param(
        "variant",
        "general",
        "general: 1/2 (v's)^2; analytic: 1/2 ||s||^2 (use_analytic)",
        choices=("general", "analytic"),
    ),
)

COREAX = (
    Objective(
        name="coreax-ssm",
        description="coreax SlicedScoreMatching(noise_conditioning=False): its _loss, jvp per example",
        losses={"jax": "benchbench_peers.coreax_losses:ssm_loss"},
        params=_COREAX_PARAMS,
        reference="coreax 1.0.0, coreax.score_matching.SlicedScoreMatching; Song et al. (2019)",
    ),
    Objective(
        name="coreax-ssm-nc",
        description="coreax SlicedScoreMatching (noise_conditioning=True, its default): "
        "sum_i sigma_i^2 sliced(x + sigma_i z)",
        losses={"jax": "benchbench_peers.coreax_losses:ssm_noise_conditional_loss"},
        params=(
            *_COREAX_PARAMS,
            Param("num_noise_models", 100, "noise levels", low=1),
            Param("sigma", 1.0, "largest noise level", low=1e-6),
            Param("gamma", 0.95, "ratio of the geometric noise levels", low=1e-6, high=1.0),
        ),
        biased=True,
        expected_bias=BIAS + "coreax_noise_conditional_bias",
        reference="coreax 1.0.0, coreax.score_matching.SlicedScoreMatching; Song & Ermon (2020)",
    ),
)

LIBRARIES = {"torchebm": TORCHEBM, "score_models": SCORE_MODELS, "toy_gradlogp": TOY_GRADLOGP, "coreax": COREAX}


@hookimpl
def register_objectives(register):
    for module, objectives in LIBRARIES.items():
        if importlib.util.find_spec(module) is not None:  # a library that is not installed registers nothing
            for objective in objectives:
                register(objective)
