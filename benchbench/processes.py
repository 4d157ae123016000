"""Child processes we start (the MLflow UI, a tracking server): wait until they listen, stop their whole tree."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import psutil

from benchbench.errors import BenchError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(process: subprocess.Popen, host: str, port: int, name: str, timeout: float = 90.0) -> None:
    """Return once ``host:port`` accepts connections; a clear error if ``name`` exits or never listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with code {process.returncode} before listening on {host}:{port}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise BenchError(f"{name} did not listen on {host}:{port} within {timeout:.0f} s")


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
