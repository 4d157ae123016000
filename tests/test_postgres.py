"""The team store for real: ``bench server`` on PostgreSQL, a parallel sweep through it, resume on it, and two
sweeps at once on it. Each run gets a database of its own, dropped afterwards.

PostgreSQL is found at ``$BENCH_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``, trust
authentication); without one answering the test is skipped, saying so. CI has one: there it must not skip.
"""

from __future__ import annotations

import os
import uuid

import pytest
from bench_cli import TINY, Started, concurrent_sweeps_run_no_trial_twice, run

from benchbench.store import check_uri

pytestmark = pytest.mark.slow

ADMIN_URI = os.environ.get("BENCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def database() -> str:
    """A fresh database on the PostgreSQL server, as a SQLAlchemy URI."""
    psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed: pip install -e '.[postgres]'")
    try:
        admin = psycopg.connect(ADMIN_URI, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        reason = f"no PostgreSQL answering at {ADMIN_URI} ($BENCH_TEST_POSTGRES): {str(error).strip()[:200]}"
        if os.environ.get("CI"):  # .ci/run's machine runs PostgreSQL: there a missing server is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"bench_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{ADMIN_URI.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_team_server_on_postgresql_runs_resumes_and_refuses_a_second_sweep(database, tmp_path):
    assert check_uri(database, "serve") == database  # driver installed, server reached, database exists
    server = Started(
        ["server", "--port", "0", "--backend-store-uri", database, "--artifacts-destination", "artifacts"], tmp_path
    )
    try:
        url = server.wait_for(r"at (http://127\.0\.0\.1:\d+)").group(1)
        sweep = ["run", "-o", "denoising", "-o", "sliced", *TINY, "--tracking-uri", url, "--experiment", "team"]

        first = run([*sweep, "--executor", "process", "--workers", "2"], tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "2 trials: 2 finished" in first.stdout

        again = run([*sweep, "--executor", "process", "--workers", "2"], tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "2 trials: 2 already done" in again.stdout

        both = ["run", "-o", "denoising", "-o", "sliced", *TINY, "--tracking-uri", url, "--experiment", "both"]
        concurrent_sweeps_run_no_trial_twice(tmp_path, both, url)
    finally:
        server.process.terminate()
        server.finish(60)
