"""Shared fixtures: one real sqlite MLflow store per test session, the fixture plugins on sys.path."""

from __future__ import annotations

import os
import shutil
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


def pip_install(target: Path, *sources: Path) -> Path:
    """Real pip, offline and without dependencies, into the folder ``target`` (entry points included)."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(target), *map(str, sources)], check=True)
    return target


def pip_install_copy(tmp_path_factory, source: Path) -> Path:
    """``pip install SOURCE`` into a fresh target folder, built from a copy: pip builds in place, and the source
    tree must stay clean."""
    copy = tmp_path_factory.mktemp(f"{source.name}-src") / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return pip_install(tmp_path_factory.mktemp(f"{source.name}-site"), copy)


@pytest.fixture(scope="session")
def plugin_dists(tmp_path_factory) -> Path:
    """The fixture plugin distributions installed with real pip into a target folder (entry points included)."""
    return pip_install(tmp_path_factory.mktemp("site"), *sorted((FIXTURES / "dists").iterdir()))


@pytest.fixture
def subprocess_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(FIXTURES)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env
