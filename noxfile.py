"""Developer sessions. CI runs the README's test command through .ci/run; these are the same steps in nox."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
CONSTRAINTS = ("-c", "constraints.txt")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite, slow end-to-end tests included."""
    session.install(*CONSTRAINTS, "-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The default suite (bench run --quick) into ./mlflow.db, then its table."""
    session.install(*CONSTRAINTS, "-e", ".[all]")
    session.run("bench", "run", "--quick", *session.posargs)
