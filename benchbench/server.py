"""MLflow tracking servers we start: ``bench server`` for a team or a cluster, and the private one that a
parallel sweep puts in front of a local sqlite store.

Why a server: sqlite serialises writers with a file lock, and under many concurrent writers MLflow's sqlite
store answers "database is locked". One ``mlflow server`` process owns the database and every trial worker
talks HTTP to it, so trials running in parallel never lose a logged value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchbench.errors import BenchError
from benchbench.processes import check_port, free_port, guarded, stop_tree, wait_until_listening

# MLflow 3 starts a job runner with seven huey consumer processes (GenAI evaluation jobs) beside the server:
# measured on this 2-core machine, switching it off took start-up from 41 s to 18 s and the tree from 10 to 3
# processes. Tracking runs needs none of it.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

# MLflow's own default artifact root for a sqlite store used directly (DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH),
# resolved against the working directory when an experiment is created.
LOCAL_ARTIFACT_ROOT = "mlruns"


def is_local_sqlite(uri: str) -> bool:
    """A sqlite file on this machine: fine for one writer, needs a server in front for parallel trials."""
    return uri.startswith("sqlite:///")


@dataclass
class TrackingServer:
    """One ``mlflow server`` child process and every process it starts, stopped together.

    With ``serve_artifacts`` (``bench server``) clients upload artifacts through the server to
    ``artifacts_destination``, so nodes without a shared disk can log them. Without it (the private server of a
    sweep) new experiments store artifacts under ``default_artifact_root``, written directly by clients on this
    machine: the same place MLflow uses for the sqlite store without a server, so the store reads back the same
    either way.
    """

    backend_store_uri: str
    host: str = "127.0.0.1"
    port: int = 0
    serve_artifacts: bool = True
    artifacts_destination: str = "mlartifacts"
    default_artifact_root: str = LOCAL_ARTIFACT_ROOT
    allowed_hosts: str | None = None
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _output: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def local_host(self) -> str:
        """Where this machine reaches the server: loopback when it listens on every interface."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def url(self) -> str:
        return f"http://{self.local_host}:{self.port}"

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_store_uri]
        command += ["--host", self.host, "--port", str(self.port), "--workers", "1"]
        if self.serve_artifacts:
            command += ["--serve-artifacts", "--artifacts-destination", _absolute(self.artifacts_destination)]
        else:
            command += ["--no-serve-artifacts", "--default-artifact-root", _absolute(self.default_artifact_root)]
        if self.allowed_hosts:
            command += ["--allowed-hosts", self.allowed_hosts]
        return command

    def start(self, timeout: float = 180.0) -> TrackingServer:
        """Start the server and return once it answers ``/health``; a BenchError with its log if it does not."""
        self.port = self.port or free_port()
        check_port(self.host, self.port)
        self._output = open(self.log_path, "wb") if self.log_path else None  # closed in stop()
        # A session of its own: a Ctrl-C at the terminal must not stop the server while the trials it serves
        # are still writing their KILLED status; we stop it ourselves, last. Its guard stops it if we die first.
        self.process = subprocess.Popen(
            guarded(self.command()),
            env=os.environ | SERVER_ENVIRONMENT,
            stdout=self._output,
            stderr=subprocess.STDOUT if self._output else None,
            start_new_session=True,
        )
        try:
            wait_until_listening(self.process, self.local_host, self.port, self.name, timeout)
            self._wait_healthy(timeout=30.0)
        except BaseException as error:
            self.stop()
            if isinstance(error, BenchError):
                raise BenchError(f"{error}{self._log_tail()}") from None
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError as error:
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name} listens on port {self.port} but /health fails: {error}") from None
            time.sleep(0.2)

    @property
    def name(self) -> str:
        return f"the MLflow tracking server for {self.backend_store_uri}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_note(self) -> str:
        """A clause for an error message when the server is gone, with the end of its log."""
        if self.process is None or self.process.poll() is None:
            return ""
        return f" ({self.name} exited with code {self.process.returncode}{self._log_tail()})"

    def _log_tail(self, lines: int = 5) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        return "; its log ends: " + " / ".join(line.strip() for line in tail) if tail else ""

    def stop(self) -> None:
        """SIGTERM the server and its workers, SIGKILL what is left (see :func:`processes.stop_tree`)."""
        if self.process is not None:
            stop_tree(self.process)
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> TrackingServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _absolute(location: str) -> str:
    """Folders are made absolute so the server and its clients agree whatever their working directories."""
    return location if "://" in location or ":/" in location else str(Path(location).resolve())


class PrivateServer:
    """The server a parallel sweep starts in front of a local sqlite store, for the sweep's duration.

    Its log goes to a temporary file, quoted in the error if the server fails to start or dies mid-sweep.
    """

    def __init__(self, sqlite_uri: str) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="bench-server-")
        self.server = TrackingServer(sqlite_uri, serve_artifacts=False, log_path=Path(self._folder.name) / "log")

    def __enter__(self) -> TrackingServer:
        try:
            return self.server.start()
        except BaseException:
            self._folder.cleanup()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()
        self._folder.cleanup()


def serve(server: TrackingServer, echo: Callable[[str], None] = print) -> None:
    """``bench server``: start, say how to use it, block until Ctrl-C or SIGTERM, then stop all it started."""

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        if server.host in ("0.0.0.0", "::"):
            echo(
                f"warning: --host {server.host} exposes the server to the network, and it has no authentication: "
                "anyone who reaches it can read and delete runs; keep it inside a private network"
            )
        server.start()
        where = (
            f"artifacts served from {_absolute(server.artifacts_destination)}"
            if server.serve_artifacts
            else f"artifacts in {_absolute(server.default_artifact_root)}"
        )
        echo(f"MLflow tracking server for {server.backend_store_uri} at {server.url} ({where})")
        echo(f"run sweeps with: bench run --tracking-uri {_client_url(server)} ...   (Ctrl-C stops the server)")
        if server.host in ("0.0.0.0", "::") and not server.allowed_hosts:
            echo("other machines: use this machine's private IP address, or start with --allowed-hosts NAME:PORT to")
            echo("reach it by a host name (MLflow refuses other Host headers)")
        server.process.wait()
        raise BenchError(f"{server.name} exited with code {server.process.returncode}")
    except KeyboardInterrupt:
        echo("stopping the MLflow tracking server")
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _client_url(server: TrackingServer) -> str:
    """The URL other machines use: the host's name when the server listens on every interface."""
    if server.host in ("0.0.0.0", "::"):
        import socket

        return f"http://{socket.gethostname()}:{server.port}"
    return server.url
