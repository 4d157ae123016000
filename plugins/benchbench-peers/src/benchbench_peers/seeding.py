"""Running a library loss that draws from torch's global generator as a pure function of benchbench's generator.

torch.random.fork_rng saves and restores the global state around the call, and the global generator is seeded
from one draw of the generator passed in: the library's own sampling code runs unchanged, the same seed gives
the same loss, and nothing leaks into the caller's global random state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def with_global_seed(generator: torch.Generator | None, call: Callable[[], Any]) -> Any:
    if generator is None:  # benchbench's compiled step: the global generator is already the trial's, seeded
        return call()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return call()
