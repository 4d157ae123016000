"""``bench ui``: the MLflow UI on our tracking store, and a clean stop of every process it started."""

from __future__ import annotations

import signal
import subprocess
import sys

from benchbench.errors import BenchError
from benchbench.processes import free_port, stop_tree, wait_until_listening


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
        "--workers",
        "1",
    ]


def serve(tracking_uri: str, host: str = "127.0.0.1", port: int | None = None, echo=print) -> None:
    """Start the UI, print its URL, and block until Ctrl-C or SIGTERM; then stop all it started."""
    port = port or free_port()
    process = subprocess.Popen(ui_command(tracking_uri, host, port), start_new_session=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        wait_until_listening(process, host, port, "the MLflow UI")
        echo(f"MLflow UI for {tracking_uri} at http://{host}:{port}  (Ctrl-C stops it)")
        process.wait()
        raise BenchError(f"the MLflow UI exited with code {process.returncode}")
    except KeyboardInterrupt:
        echo("stopping the MLflow UI")
    finally:
        stop_tree(process)
        signal.signal(signal.SIGTERM, previous)
