"""Signals and deadlines around a trial: its --timeout (SIGALRM) and Ctrl-C/SIGTERM held while a trial is written.

Only the main thread can receive signals, so a trial run elsewhere relies on its executor's own limit (the process
pool kills the worker).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class TrialTimeout(BaseException):
    """Raised by SIGALRM in a trial past its budget. A BaseException, like KeyboardInterrupt, so that the
    ``except Exception`` that isolates one metric or report from the others cannot swallow it."""


def timeout_reason(seconds: float) -> str:
    return f"timeout: the trial ran longer than its --timeout of {seconds:g} s"


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise TrialTimeout in this thread after ``seconds``; only the main thread can receive signals, so a
    trial run elsewhere relies on its executor's own limit (the process pool kills the worker)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        if _importing(frame):
            # An import cut short leaves a half-initialised module in sys.modules, and every later trial in
            # this process (the local executor, a reused Ray worker) fails on it: seen with torch._dynamo,
            # which torch imports during the first optimizer step. Try again once the import is done.
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        raise TrialTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _importing(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM while a trained trial is written, then raise it: a run is complete or KILLED,
    never FINISHED with half its metrics (writing takes ~0.1 s; training the trial again takes minutes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
