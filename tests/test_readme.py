"""README.md's two commands are the ones users and CI run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    setup_and_quick, setup_and_tests = blocks[0], blocks[1]
    assert setup_and_quick.endswith("bench run --quick")
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = setup_and_tests.split(". .venv/bin/activate && ", 1)[1]
    assert test_command in ci.splitlines()
