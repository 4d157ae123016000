"""Opening a tracking store safely: the URI checked before MLflow sees it, and one sweep at a time per experiment.

MLflow answers a malformed URI with a traceback, retries an unwritable sqlite file for about 100 s, and
retries an unreachable server for minutes. :func:`check_uri` says what is wrong in one line first: a URI
that cannot be a store is bad input (exit 2); a store that does not answer is a TrackingError (exit 1),
found with one short TCP connection instead of MLflow's retries.

**Concurrent sweeps.** Two ``bench run`` in one experiment would each run every trial the other is running
(resume only skips trials that are already FINISHED). So a sweep holds the experiment's lock for its whole
duration (:class:`SweepLock`): a RUNNING MLflow run tagged ``bench.kind=lock`` that names its owner (host,
pid and the pid's start time) and carries a heartbeat. A second sweep on the same experiment stops with one
line naming the owner; a lock whose owner is dead (same host: its pid is gone; another host: no heartbeat for
:data:`STALE_AFTER_S`) is taken over. Holding the lock also means that every trial or sweep run still RUNNING
in the experiment belongs to a sweep that died, so the new sweep closes them KILLED with the reason
(:func:`close_stale_runs`) and resume runs those trials again.

Why a lock and not claiming trials one by one: MLflow offers no compare-and-set, and a claim has to be
released when its owner dies, which needs the same liveness check per trial that the lock needs once. The
rule is safe on any store that serialises writes (sqlite, PostgreSQL, a server in front of either): each
sweep writes its lock, then reads all locks, and backs off if it sees another live one; two sweeps cannot
both miss each other, because the one that reads last sees the other's lock.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from benchbench.errors import TrackingError, UsageError
from benchbench.tags import ERROR, HEARTBEAT, KILLED, KIND, KIND_LOCK, KIND_SWEEP, KIND_TRIAL, LOCK_OWNER, STATUS

HEARTBEAT_EVERY_S = 20.0
STALE_AFTER_S = 120.0  # six missed heartbeats: a sweep on another host is taken for dead
CONNECT_TIMEOUT_S = 3.0
SQLITE_HEADER = b"SQLite format 3\x00"
DATABASES = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
"""Database servers MLflow stores runs in (besides sqlite), with their default ports."""
DRIVER_EXTRAS = {"psycopg": "pip install 'benchbench[postgres]'"}
VALID = "sqlite:///FILE, postgresql://USER@HOST:PORT/DB, or http(s)://HOST:PORT of an MLflow server"


class ExperimentBusy(TrackingError):
    """Another live sweep holds the experiment's lock."""


def check_uri(uri: str, purpose: str = "write", reach: bool = True) -> str:
    """``uri`` if it can be the tracking store for ``purpose``: ``write`` (bench run), ``read`` (bench table,
    bench ui: the store must already exist) or ``serve`` (bench server's backend store: a database, no server).

    A URI that cannot be a store raises UsageError; with ``reach``, a server or database that does not accept
    a TCP connection within a few seconds raises TrackingError.
    """
    where = f"tracking URI {uri!r}" if purpose != "serve" else f"--backend-store-uri {uri!r}"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as error:
        raise UsageError(f"{where} is malformed ({error}); valid: {VALID}") from None
    scheme = parts.scheme.partition("+")[0]
    if scheme == "sqlite":
        _check_sqlite(uri, where, purpose)
    elif scheme in ("http", "https") and purpose != "serve":
        if not parts.hostname:
            raise UsageError(f"{where} names no host; valid: {VALID}")
        if reach:
            _connect(parts.hostname, port or (443 if scheme == "https" else 80), f"tracking store {uri}")
    elif scheme in DATABASES:
        if not parts.hostname and not parts.query:
            raise UsageError(f"{where} names no host; valid: {scheme}://USER:PASSWORD@HOST:PORT/DB")
        _check_driver(uri, where)
        if reach and parts.hostname:
            _connect(parts.hostname, port or DATABASES[scheme], f"database {_redacted(parts)}")
            _probe_database(uri, _redacted(parts))
    else:
        hint = " (a path: write sqlite:///PATH)" if not parts.scheme else ""
        valid = VALID if purpose != "serve" else "sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB"
        raise UsageError(f"{where} is not a tracking store{hint}; valid: {valid}")
    return uri


def _redacted(parts: SplitResult) -> str:
    """The URI without its password, for messages."""
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0] + "@" if len(netloc) == 2 else ""
    return f"{parts.scheme}://{user}{netloc[-1]}{parts.path}"


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for an in-memory database)."""
    path = uri.split("://", 1)[1].split("?", 1)[0]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        return None
    return Path(path[1:])  # sqlite:///relative.db, sqlite:////absolute.db


def _check_sqlite(uri: str, where: str, purpose: str) -> None:
    path = sqlite_path(uri)
    if path is None:
        raise UsageError(f"{where}: an in-memory or empty sqlite path keeps nothing; valid: sqlite:///FILE")
    if path.is_dir():
        raise UsageError(f"{where}: {path.resolve()} is a folder; give a file, e.g. sqlite:///{path}/mlflow.db")
    if path.exists():
        try:
            with open(path, "rb") as file:
                head = file.read(len(SQLITE_HEADER))
        except OSError as error:
            raise UsageError(f"{where}: cannot read {path.resolve()} ({error.strerror})") from None
        if head and head != SQLITE_HEADER:
            raise UsageError(f"{where}: {path.resolve()} is not a sqlite database")
        if purpose != "read" and not os.access(path, os.W_OK):
            raise UsageError(f"{where}: {path.resolve()} is read-only; bench table and bench ui can read it")
        return
    if purpose == "read":
        raise UsageError(f"no tracking store at {path.resolve()} ({uri}); run bench run first, or pass --tracking-uri")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{where}: cannot create {path.absolute()}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot create {path.absolute()}: the folder {folder} is not writable")


def _check_driver(uri: str, where: str) -> None:
    """The DBAPI module SQLAlchemy picks for the URI (``postgresql://`` means psycopg 3 since SQLAlchemy 2.1)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(uri).get_dialect()
    except (ArgumentError, NoSuchModuleError) as error:
        raise UsageError(f"{where}: {error}") from None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        module = getattr(error, "name", None) or dialect.driver
        install = DRIVER_EXTRAS.get(module, f"pip install {module}")
        raise UsageError(f"{where} needs the database driver {module}, which is not installed: {install}") from None


def _probe_database(uri: str, shown: str) -> None:
    """One connection, as MLflow's first would be: MLflow retries a failing one ten times with backoff (about
    100 s) and then raises a traceback; a wrong database name or password is known after the first."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.DBAPIError as error:
        lines = [line.strip() for line in str(error.orig).strip().splitlines() if line.strip()]
        raise TrackingError(f"database {shown} refused the connection: {' / '.join(lines)[:300]}") from None
    finally:
        engine.dispose()


def _connect(host: str, port: int, what: str) -> None:
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TrackingError(f"{what} is unreachable at {host}:{port}: {reason}") from None


def check_experiment_name(name: str) -> str:
    """MLflow refuses an empty name or one over its limit, with a traceback; say so in one line."""
    from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH

    if not name.strip():
        raise UsageError("--experiment: the experiment name is empty; give a name, e.g. --experiment my-sweep")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise UsageError(
            f"--experiment: the name has {len(name)} characters; MLflow allows at most {MAX_EXPERIMENT_NAME_LENGTH}"
        )
    return name


@contextmanager
def sqlite_created(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on the sqlite file's folder while the block opens (and so creates) the store.

    MLflow builds the schema of a new file with alembic, and two processes doing it at once crash one of them
    with an alembic traceback; the second to arrive waits here and finds the schema built.
    """
    path = sqlite_path(uri) if uri.startswith("sqlite:") else None
    if path is None:
        yield
        return
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.absolute().parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


# -- one sweep per experiment --------------------------------------------------------------------------------------


def owner_tag() -> str:
    """``host:pid:start time of the pid`` (the start time tells a reused pid from the owner)."""
    import psutil

    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.3f}"


def owner_alive(owner: str, heartbeat: float | None, now: float) -> bool:
    """Whether the sweep that wrote ``owner`` still runs: by its pid on this host, by its heartbeat elsewhere."""
    import psutil

    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return heartbeat is not None and now - heartbeat < STALE_AFTER_S
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.01
    except (psutil.NoSuchProcess, ValueError):
        return False


class SweepLock:
    """The experiment's lock for the duration of a sweep (see the module docstring); ``tracker`` is a
    :class:`benchbench.tracking.Tracker` on the store itself, which must outlive any server the sweep starts."""

    def __init__(self, tracker: Any, experiment_id: str, say: Callable[[str], None] = print) -> None:
        self.tracker, self.experiment_id, self.say = tracker, experiment_id, say
        self.run_id: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> SweepLock:
        for _attempt in range(4):
            others = self._live_others()
            if others:
                raise ExperimentBusy(_busy_line(others[0], self.experiment_id))
            self.run_id = self.tracker.start_run(
                self.experiment_id,
                f"sweep lock (pid {os.getpid()})",
                {KIND: KIND_LOCK, LOCK_OWNER: owner_tag(), HEARTBEAT: f"{time.time():.0f}"},
            )
            if not self._live_others():
                break
            self._release()  # two sweeps started together and saw each other: both back off, then try again
            time.sleep(random.uniform(0.2, 1.5))
        else:
            raise ExperimentBusy(f"experiment {self.experiment_id}: another sweep kept taking its lock; try again")
        closed = close_stale_runs(self.tracker, self.experiment_id)
        if closed:
            self.say(f"closed {closed} runs left RUNNING by a sweep that died (status KILLED, tag bench.error)")
        self._beat = threading.Thread(target=self._heartbeat, name="bench-sweep-lock", daemon=True)
        self._beat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self._release()

    def _locks(self) -> list[Any]:
        query = f"tags.`{KIND}` = '{KIND_LOCK}' and attributes.status = 'RUNNING'"
        return list(self.tracker.client.search_runs([self.experiment_id], query, max_results=1000))

    def _live_others(self) -> list[Any]:
        now, live = time.time(), []
        for run in self._locks():
            if run.info.run_id == self.run_id:
                continue
            beat = run.data.tags.get(HEARTBEAT)
            if owner_alive(run.data.tags.get(LOCK_OWNER, ""), float(beat) if beat else None, now):
                live.append(run)
            else:  # its sweep died: nothing to keep, the sweep's own runs are closed with the reason
                _end(self.tracker, run.info.run_id, "the sweep holding this lock died")
                self.tracker.client.delete_run(run.info.run_id)
        return live

    def _release(self) -> None:
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        try:
            self.tracker.end(run_id, "FINISHED")
            self.tracker.client.delete_run(run_id)
        except Exception:  # noqa: BLE001 - a lock left behind is stale once this process is gone
            pass

    def _heartbeat(self) -> None:
        from benchbench.tracking import Tracker

        tracker = Tracker(self.tracker.uri)  # a client of its own: this thread must not share the sweep's
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            try:
                tracker.client.set_tag(self.run_id, HEARTBEAT, f"{time.time():.0f}")
            except Exception:  # noqa: BLE001 - the sweep itself reports a store that stopped answering
                pass


def _busy_line(run: Any, experiment_id: str) -> str:
    host, _, rest = run.data.tags.get(LOCK_OWNER, "?:?").partition(":")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((run.info.start_time or 0) / 1000))
    return (
        f"another sweep is running in this experiment (id {experiment_id}): bench run pid {rest.partition(':')[0]} "
        f"on {host}, since {since}; wait for it to end, or use another --experiment"
    )


def _end(tracker: Any, run_id: str, reason: str) -> None:
    tracker.log(run_id, tags={STATUS: KILLED, ERROR: f"stale: {reason}"})
    tracker.end(run_id, "KILLED")


def close_stale_runs(tracker: Any, experiment_id: str) -> int:
    """End KILLED every trial and sweep run of the experiment still RUNNING (call it holding the lock: then
    no live sweep owns them), with the reason in ``bench.error``; the number closed."""
    running = tracker.client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=50000)
    stale = [run for run in running if run.data.tags.get(KIND) in (KIND_TRIAL, KIND_SWEEP)]
    for run in stale:
        _end(tracker, run.info.run_id, "left RUNNING by a sweep that died; closed by the next sweep")
    return len(stale)


# How long a command that only reads (bench table) waits for a server that accepted the connection but does
# not answer: MLflow's default is 7 retries with backoff, about 4 minutes per request.
READ_ENVIRONMENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


@contextmanager
def reading(uri: str) -> Iterator[None]:
    """Read the store with bounded HTTP retries; a failure of the store itself is one TrackingError line."""
    from mlflow.exceptions import MlflowException

    added = {k: v for k, v in READ_ENVIRONMENT.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    except MlflowException as error:
        lines = str(error.message).strip().splitlines() or [type(error).__name__]
        raise TrackingError(f"tracking store {uri} failed: {lines[0][:300]}") from None
    except OSError as error:  # requests' ConnectionError is an OSError
        raise TrackingError(f"tracking store {uri} failed: {type(error).__name__}: {str(error)[:300]}") from None
    finally:
        for key in added:
            os.environ.pop(key, None)


def check_artifact_location(location: str) -> str:
    """A folder, or a URI of an artifact store MLflow knows (s3, gs, ...): MLflow accepts any other scheme at
    start and fails on every upload later."""
    scheme = urlsplit(location).scheme if "://" in location else ""
    if not scheme:
        return location
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    known = sorted(filter(None, getattr(_artifact_repository_registry, "_registry", {})))
    if known and scheme not in known:
        raise UsageError(
            f"--artifacts-destination {location!r}: unknown artifact store {scheme!r}; valid: a folder "
            f"or a URI of {', '.join(known)}"
        )
    return location
