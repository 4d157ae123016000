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


def test_a_trial_that_loses_the_race_to_insert_its_dataset_still_logs_it(database):
    """Two trials of a parallel sweep on the same data both look the dataset up, miss it, and insert it (CI saw
    this break a team sweep). Here the race is staged, not hoped for: another connection inserts the same dataset
    and holds its transaction open, so the trial's insert waits on the unique key and fails once that commits."""
    import hashlib
    import threading
    import time

    import numpy as np
    import psycopg

    from benchbench.specs import Data
    from benchbench.tracking import Tracker
    from benchbench.trial import Settings, Trial

    tracker = Tracker(database)  # creates the schema
    experiment = tracker.experiment_id("race")
    run_id = tracker.start_run(experiment, "loser", {})
    data = Data("gaussian", np.arange(6.0).reshape(3, 2), np.zeros((1, 2)), (2,))
    trial = Trial("denoising", {}, "torch", "gaussian", {"dim": 2}, 0, Settings())
    digest = hashlib.sha256(data.train.tobytes()).hexdigest()[:16]

    winner = psycopg.connect(database)
    winner.execute(
        "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type, dataset_source)"
        " VALUES ('winner', %s, 'gaussian', %s, 'benchbench', '{}')",
        (int(experiment), digest),
    )
    outcome: list[BaseException | None] = []

    def log() -> None:
        try:
            tracker.log_dataset(run_id, data, trial)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    logger = threading.Thread(target=log)
    logger.start()
    with psycopg.connect(database, autocommit=True) as watcher:  # wait until the trial's insert waits on the key
        deadline = time.monotonic() + 60
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while watcher.execute(waiting).fetchone()[0] == 0:
            assert time.monotonic() < deadline, "the trial's insert never waited on the other transaction"
            time.sleep(0.05)
    winner.commit()
    winner.close()
    logger.join(60)

    assert outcome == [None], outcome
    inputs = tracker.client.get_run(run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("gaussian", digest)]
    with psycopg.connect(database) as check:
        assert check.execute("SELECT dataset_uuid FROM datasets").fetchall() == [("winner",)]
