"""The noise ladder of noise-conditional objectives (NCSN), one definition for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench.errors import ParameterError, TrialFailure


def sigma_ladder(sigma_min: float, sigma_max: float, n_sigmas: int) -> np.ndarray:
    """NCSN's noise levels, geometric from ``sigma_max`` down to ``sigma_min`` (float64, descending)."""
    if sigma_min > sigma_max:
        raise ParameterError(
            f"objective 'denoising-multiscale': sigma_min={sigma_min} is larger than sigma_max={sigma_max}"
        )
    return np.geomspace(sigma_max, sigma_min, n_sigmas)


def objective_ladder(objective: Any, hparams: Mapping[str, Any], backend: str) -> np.ndarray | None:
    """The ladder a backend builds for a noise-conditional objective, from the params it must declare."""
    if not objective.noise_conditional:
        return None
    missing = [name for name in ("sigma_min", "sigma_max", "n_sigmas") if name not in hparams]
    if missing:
        raise TrialFailure(
            f"objective {objective.name!r} is noise-conditional but does not declare {', '.join(missing)}; "
            f"the {backend} backend builds its noise ladder from sigma_min, sigma_max and n_sigmas"
        )
    return sigma_ladder(hparams["sigma_min"], hparams["sigma_max"], hparams["n_sigmas"])
