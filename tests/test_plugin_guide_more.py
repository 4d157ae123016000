"""README.md's "Write a dataset, metric or backend plugin" works as written: its files, copied verbatim, make an
installable plugin whose dataset, metric and backend `bench run` and `bench table` use beside the built-ins."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_plugin_guide import commands, example_files, follow, guide, listed_plugin

MARKER = "plugin-guide-more"


def test_the_guide_has_a_complete_example():
    assert sorted(example_files(MARKER)) == ["my_extras.py", "my_extras_impl.py", "pyproject.toml"]
    assert [command[:2] for command in commands(MARKER)] == [
        ["pip", "install"],
        ["bench", "list"],
        ["bench", "run"],
        ["bench", "table"],
    ]
    for must in ("register_datasets", "register_metrics", "register_backends", "TrainingProgram"):
        assert must in guide(MARKER)


def test_the_registering_module_imports_no_framework(tmp_path):
    for name, body in example_files(MARKER).items():
        (tmp_path / name).write_text(body)
    probe = "import sys, my_extras; print(sorted({'torch', 'jax'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_new_user_following_the_guide(tmp_path):
    folder, target = tmp_path / "my-extras", tmp_path / "site"
    _, listed, ran, table = follow(MARKER, folder, target)
    plugin = listed_plugin(folder, target, "my-extras")
    assert (plugin["distribution"], plugin["version"], plugin["status"]) == ("bench-my-extras", "0.1.0", "ok")
    assert plugin["registers"] == {"backend": ["torch-sgd"], "dataset": ["my-student-t"], "metric": ["max_score_error"]}
    assert "4 trials: 4 finished" in ran
    header = next(line for line in table.splitlines() if line.startswith("| dataset"))
    assert "max_score_error" in header and "fisher_divergence" in header
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| my-")]
    assert sorted((row[1], row[2]) for row in rows) == [
        ("denoising", "torch"),
        ("denoising", "torch-sgd"),
        ("sliced", "torch"),
        ("sliced", "torch-sgd"),
    ]
    for row in rows:
        fisher, max_error = (float(cell.strip("*").split(" ")[0]) for cell in row[4:6])
        assert 0 < fisher < max_error**2, "a largest error bounds the mean squared error from above"
