"""The plugin manager: built-ins through entry points, pip-installed plugins, broken and duplicate plugins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchbench import hookimpl
from benchbench.errors import DuplicateNameError, UnknownNameError, UsageError
from benchbench.plugins import PluginInfo, Plugins

BUILTIN = {"objectives", "torch", "jax", "datasets", "metrics", "samplers", "executors"}


@pytest.fixture
def installed(plugin_dists, monkeypatch):
    """The fixture distributions visible to importlib.metadata, as a real install would make them."""
    monkeypatch.syspath_prepend(str(plugin_dists))
    for name in list(sys.modules):
        if name.startswith("bench_") and name.endswith("_plugin"):
            del sys.modules[name]
    return plugin_dists


def test_builtins_load_through_entry_points_with_distribution_and_version():
    plugins = Plugins()
    assert BUILTIN <= set(plugins.plugins)
    info = plugins.plugins["torch"]
    assert (info.distribution, info.status) == ("benchbench", "ok")
    assert "torch" in plugins.names("backend")
    assert plugins.owner("objective", "denoising").name == "objectives"


def test_pip_installed_plugin_is_found_through_its_entry_point(installed):
    plugins = Plugins()
    good = plugins.plugins["good"]
    assert (good.distribution, good.version, good.status) == ("bench-good-plugin", "1.2.3", "ok")
    assert good.registered == {"objective": ["scaled-denoising"], "metric": ["mean_abs_score"]}
    assert plugins.get("objective", "scaled-denoising").params[1].name == "scale"


def test_broken_and_malformed_plugins_are_reported_and_the_rest_keep_working(installed):
    plugins = Plugins()
    broken, malformed = plugins.plugins["broken"], plugins.plugins["malformed"]
    assert broken.status == "broken" and "ModuleNotFoundError" in broken.error
    assert malformed.status == "broken" and "direction must be 'lower' or 'higher'" in malformed.error
    assert "sideways_metric" not in plugins.names("metric")
    lines = [line for line in plugins.errors if "bench-broken-plugin 1.2.3" in line]
    assert len(lines) == 1 and lines[0].startswith("plugin 'broken' (distribution bench-broken-plugin 1.2.3)")
    assert "scaled-denoising" in plugins.names("objective")  # the good plugin still works


def test_a_plugin_cannot_take_a_builtin_name(installed):
    """The built-in keeps the name and works; the plugin's object is ignored, said in one line and its status."""
    plugins = Plugins()
    assert "denoising" in plugins.names("objective")
    assert plugins.owner("objective", "denoising").distribution == "benchbench"
    lines = [line for line in plugins.errors if "'denoising'" in line]
    assert len(lines) == 1
    assert lines[0].startswith("plugin 'duplicate' (distribution bench-duplicate-plugin 1.2.3): its objective")
    assert "belongs to the built-in plugin 'objectives' (distribution benchbench" in lines[0]
    assert plugins.plugins["duplicate"].status == "conflict"
    assert plugins.plugins["objectives"].status == "ok"


def test_two_plugins_with_one_name_make_it_unusable():
    from benchbench.specs import Objective

    class Registers:
        def __init__(self, name):
            self.name = name

        @hookimpl
        def register_objectives(self, register):
            register(Objective("twin", "one of two", losses={"torch": lambda *a, **k: None}))

    plugins = Plugins(entry_points=False)
    for name in ("first", "second"):
        plugins._register(Registers(name), PluginInfo(name, name, f"dist-{name}", "1"))
    plugins._collect()
    with pytest.raises(DuplicateNameError, match="registered by both plugin 'first' .* and plugin 'second'"):
        plugins.get("objective", "twin")
    assert plugins.plugins["first"].status == plugins.plugins["second"].status == "conflict"


def test_restricting_plugins_with_the_environment(installed, monkeypatch):
    monkeypatch.setenv("BENCHBENCH_PLUGINS", "objectives,torch,datasets,metrics,executors,duplicate")
    plugins = Plugins()
    assert "good" not in plugins.plugins and "broken" not in plugins.plugins


def test_extra_plugin_module_that_is_not_installed():
    plugins = Plugins(["failing_objectives"])
    assert plugins.plugins["failing_objectives"].distribution == "(not installed)"
    assert {"nan-loss", "raises", "wrong-shape"} <= set(plugins.names("objective"))
    with pytest.raises(UsageError, match="--plugin no_such_module_xyz: failed to import"):
        Plugins(["no_such_module_xyz"])


def test_unknown_name_error():
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'gausian'; valid: .*\(did you mean 'gaussian'\?\)"):
        Plugins().get("dataset", "gausian")


def test_bench_list_plugins_shows_broken_ones(installed, subprocess_env):
    subprocess_env["PYTHONPATH"] = f"{installed}:{subprocess_env['PYTHONPATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "benchbench", "list", "plugins", "--json"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["broken"]["status"] == "broken" and "benchbench_this_module_does_not_exist" in rows["broken"]["error"]
    assert rows["good"]["registers"] == {"objective": ["scaled-denoising"], "metric": ["mean_abs_score"]}
    assert "bench: plugin error: plugin 'broken' (distribution bench-broken-plugin 1.2.3)" in result.stderr
