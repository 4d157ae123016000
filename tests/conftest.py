"""Shared fixtures: one real sqlite MLflow store per test session, the fixture plugins on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """A real sqlite store shared by the session: creating the schema costs ~1 s, so it is built once."""
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def experiment(request) -> str:
    """A unique experiment name per test, so tests sharing the store never see each other's runs."""
    return f"test-{request.node.name}"


@pytest.fixture(scope="session")
def plugin_dists(tmp_path_factory) -> Path:
    """The fixture plugin distributions installed with real pip into a target folder (entry points included)."""
    target = tmp_path_factory.mktemp("site")
    dists = sorted((FIXTURES / "dists").iterdir())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *map(str, dists),
        ],
        check=True,
    )
    return target


@pytest.fixture
def subprocess_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(FIXTURES)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env
