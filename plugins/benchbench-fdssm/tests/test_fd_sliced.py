"""The benchbench conformance kit on fd-sliced, as any plugin author runs it: ``python -m pytest``.

Needs the plugin installed (``pip install .``) so that benchbench finds it through its entry point.
"""

pytest_plugins = ["benchbench.testing"]


def test_fd_sliced_conforms(objective_conformance):
    # the default variant, ssm; vr's O(eps^2) bias on nonlinear score models is visible to the kit's gradient check
    report = objective_conformance("fd-sliced")
    assert report.checked  # torch and/or jax, whichever is installed; the kit fails if neither is
