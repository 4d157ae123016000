"""``bench ui``: the MLflow UI on our tracking store, and a clean stop of every process it started."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import psutil

from benchbench.errors import BenchError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]


def wait_until_listening(process: subprocess.Popen, host: str, port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the MLflow UI exited with code {process.returncode} before listening on {host}:{port}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise BenchError(f"the MLflow UI did not listen on {host}:{port} within {timeout:.0f} s")


def stop_tree(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process and every descendant, then SIGKILL what is left after ``grace`` seconds."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for proc in tree:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    if process.poll() is None:
        process.wait(timeout=grace)


def serve(tracking_uri: str, host: str = "127.0.0.1", port: int | None = None, echo=print) -> None:
    """Start the UI, print its URL, and block until Ctrl-C or SIGTERM; then stop all it started."""
    port = port or free_port()
    process = subprocess.Popen(ui_command(tracking_uri, host, port), start_new_session=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        wait_until_listening(process, host, port)
        echo(f"MLflow UI for {tracking_uri} at http://{host}:{port}  (Ctrl-C stops it)")
        process.wait()
        raise BenchError(f"the MLflow UI exited with code {process.returncode}")
    except KeyboardInterrupt:
        echo("stopping the MLflow UI")
    finally:
        stop_tree(process)
        signal.signal(signal.SIGTERM, previous)
