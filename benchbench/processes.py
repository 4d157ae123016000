"""Child processes we start (the MLflow UI, a tracking server): wait until they listen, stop their whole tree,
and make sure none outlives us, whatever ends us.

A process killed with SIGKILL runs no cleanup, so its children must notice on their own. A child we start
runs under a guard (``python -m benchbench.processes PARENT_PID COMMAND...``, see :func:`guarded`): the guard
starts the command, watches its parent, and when the parent is gone stops the command's whole tree and exits.
On Linux it is told at once (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and as a second line, it polls its
parent pid every :data:`WATCH_EVERY_S`. MLflow's server starts uvicorn and its workers as grandchildren, which a
death signal set on the direct child alone would not reach.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from benchbench.errors import BenchError, UsageError

WATCH_EVERY_S = 0.5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """Fail with the port's name before starting MLflow, rather than after its own traceback or a health-check
    timeout."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT, as uvicorn does
        try:
            sock.bind((host, port))
        except socket.gaierror as error:
            raise UsageError(f"--host {host}: not an address of this machine ({error.strerror})") from None
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"--host {host}: not an address of this machine ({error.strerror})") from None
            raise UsageError(
                f"--port {port}: {host}:{port} is not free ({error.strerror}); pick another or 0"
            ) from None


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


def guarded(command: list[str]) -> list[str]:
    """``command`` run under a guard that stops its whole tree when this process dies, SIGKILL included."""
    return [sys.executable, "-m", "benchbench.processes", str(os.getpid()), *command]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (nothing elsewhere: callers also poll)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _guard(parent: int, command: list[str]) -> int:
    """Run ``command`` until it exits (its exit code is ours) or our parent is gone (stop it, exit 1)."""
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    die_with_parent()
    child = subprocess.Popen(command)
    while child.poll() is None and not stop and os.getppid() == parent:
        try:
            child.wait(timeout=WATCH_EVERY_S)
        except subprocess.TimeoutExpired:
            pass
    if child.poll() is None:
        stop_tree(child, grace=5.0)
    code = child.returncode
    return code if code is not None and code >= 0 else 128 + (-code if code else 1)


if __name__ == "__main__":
    sys.exit(_guard(int(sys.argv[1]), sys.argv[2:]))
