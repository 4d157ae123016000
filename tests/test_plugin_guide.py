"""README.md's "Write an objective plugin" works as written: its example files, copied verbatim, make an
installable plugin, and its commands (run verbatim, except that ``pip install .`` goes to a --target folder so
the shared environment is untouched) list it, pass the conformance kit, run it and table it beside a built-in.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def guide(marker: str = "plugin-guide") -> str:
    text = README.read_text()
    start, end = text.index(f"<!-- {marker}:start -->"), text.index(f"<!-- {marker}:end -->")
    return text[start:end]


def example_files(marker: str = "plugin-guide") -> dict[str, str]:
    """Every fenced toml/python block of the guide whose first line is ``# FILENAME``, verbatim."""
    blocks = re.findall(r"```(?:toml|python)\n(# ([\w.-]+\.(?:toml|py))\n.*?)```", guide(marker), flags=re.S)
    return {name: body for body, name in blocks}


def commands(marker: str = "plugin-guide") -> list[list[str]]:
    [block] = re.findall(r"```bash\n(.*?)```", guide(marker), flags=re.S)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.split("#")[0].strip()]


def follow(marker: str, folder: Path, target: Path) -> list[str]:
    """Write the guide's files into ``folder`` and run its commands there as written (``pip install`` into the
    ``target`` folder, offline; ``bench`` as ``python -m benchbench``); their standard outputs, in order."""
    folder.mkdir()
    for name, body in example_files(marker).items():
        (folder / name).write_text(body)
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("MLFLOW_TRACKING_URI", None)
    offline = ["--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target)]
    outputs = []
    for command in commands(marker):
        if command[:2] == ["pip", "install"]:
            command = [*command[:2], *offline, *command[2:]]
        argv = [sys.executable, "-m", "benchbench", *command[1:]] if command[0] == "bench" else command
        if argv[0] in ("pip", "python"):
            argv = [sys.executable, *(["-m", "pip"] if argv[0] == "pip" else []), *argv[1:]]
        result = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    return outputs


def listed_plugin(folder: Path, target: Path, name: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(target))
    listing = subprocess.run(
        [sys.executable, "-m", "benchbench", "list", "plugins", "--json"], cwd=folder, env=env, capture_output=True
    )
    return {row["name"]: row for row in json.loads(listing.stdout)}[name]


def test_the_guide_has_a_complete_example():
    assert sorted(example_files()) == [
        "my_hutchinson.py",
        "my_hutchinson_losses.py",
        "pyproject.toml",
        "test_my_hutchinson.py",
    ]
    assert [command[:2] for command in commands()] == [
        ["pip", "install"],
        ["bench", "list"],
        ["python", "-m"],
        ["bench", "run"],
        ["bench", "table"],
    ]
    section = guide()
    for must in ("register_objectives", "loss(score_fn, x, generator, **hparams)", "loss(score_fn, x, key, **hparams)"):
        assert must in section
    assert "[project.entry-points.benchbench]" in example_files()["pyproject.toml"]


def test_the_registering_module_imports_no_framework(tmp_path):
    for name, body in example_files().items():
        (tmp_path / name).write_text(body)
    probe = "import sys, my_hutchinson; print(sorted({'torch', 'jax'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_new_user_following_the_guide(tmp_path):
    folder, target = tmp_path / "my-hutchinson", tmp_path / "site"
    _, listed, tested, ran, table = follow("plugin-guide", folder, target)
    plugin = listed_plugin(folder, target, "my-hutchinson")
    assert (plugin["distribution"], plugin["version"], plugin["status"]) == ("bench-my-hutchinson", "0.1.0", "ok")
    assert plugin["registers"] == {"objective": ["my-hutchinson"]} and "my-hutchinson" in listed
    assert "1 passed" in tested
    assert "4 trials: 4 finished" in ran
    rows = [line.split("|")[2:4] for line in table.splitlines() if line.startswith("| gaussian")]
    assert sorted((o.strip(), b.strip()) for o, b in rows) == [
        ("my-hutchinson", "jax"),
        ("my-hutchinson", "torch"),
        ("sliced", "jax"),
        ("sliced", "torch"),
    ]
