"""The benchbench conformance kit on fd-sliced, as any plugin author runs it: ``python -m pytest``.

Needs the plugin installed (``pip install .``) so that benchbench finds it through its entry point.
"""

import pytest

pytest_plugins = ["benchbench.testing"]


@pytest.mark.parametrize("variant", ["ssm", "vr"])
def test_fd_sliced_conforms(objective_conformance, variant):
    report = objective_conformance("fd-sliced", hparams={"variant": variant})
    assert report.checked  # torch and/or jax, whichever is installed; the kit fails if neither is
