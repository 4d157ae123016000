"""The conformance kit on every peer objective, as a plugin author runs it: ``python -m pytest``.

Needs the plugin and the libraries installed. The verdicts are the audit's findings: one loss is known to fail.
"""

import pytest

from benchbench.plugins import Plugins
from benchbench.testing import ConformanceError, check_objective

PLUGINS = Plugins()
PEERS = [name for name in PLUGINS.names("objective") if PLUGINS.owner("objective", name).name == "peers"]
KNOWN_FAILURES = {
    # the finite-difference trace is divided by d: its mean is J + (1/d - 1) tr(ds/dx), not J
    "torchebm-esm-approx": r"torch loss, check expectation\[linear\]: .*expectation is 7\.6\d+ .*expected J = 5\.937",
}


def test_the_plugin_registered_objectives():
    assert len(PEERS) == 11, PLUGINS.errors  # a library missing, or the plugin broken


@pytest.mark.parametrize("name", PEERS)
def test_the_kit_s_verdict(name):
    if name in KNOWN_FAILURES:
        with pytest.raises(ConformanceError, match=KNOWN_FAILURES[name]):
            check_objective(name, plugins=PLUGINS)
    else:
        report = check_objective(name, plugins=PLUGINS)
        assert report.checked
