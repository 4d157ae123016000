"""The process-pool executor: every trial in a fresh process of its own, at most ``workers`` at a time.

A trial that crashes, is killed by the out-of-memory killer or hangs takes only its own process down: the
pool marks that trial FAILED with the reason and goes on. It is not a ``concurrent.futures`` pool, because
one dead worker breaks a ProcessPoolExecutor for every pending trial, and ``multiprocessing.Pool`` waits
forever for the result of a worker that died.

Processes come from a forkserver that imported the runner, MLflow and the sweep's backends once: a fresh
interpreter per trial costs 6-7 s of imports on this 2-core machine (torch + mlflow), a fork from the
forkserver a few milliseconds, and the forkserver is a clean single-threaded process (forking the driver
itself would copy its progress-bar thread and its open HTTP connections to the tracking server).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil

from benchbench import TrackingError, TrialJob, TrialOutcome, record_lost_trial, run_job, timeout_reason
from benchbench.plugins import get_plugins
from benchbench.processes import die_with_parent
from benchbench_executors.preload import PRELOAD_VARIABLE

# A worker past its --timeout stops itself (SIGALRM in run_job); one stuck where Python cannot run (a long
# C call) is killed this long after its budget, plus 10% of the budget.
KILL_GRACE_S = 5.0
# Ctrl-C: running trials get this long to write their KILLED status before their process is killed.
INTERRUPT_GRACE_S = 30.0
# The tracking store is gone: nothing more can be written, so workers are not waited for.
LOST_STORE_GRACE_S = 2.0
PROGRESS_EVERY_S = 0.25
DRIVER_GONE = 70  # a worker's exit code when the driver died under it


@dataclass
class _Worker:
    job: TrialJob
    process: Any
    conn: Connection
    started: float = field(default_factory=time.monotonic)
    outcome: TrialOutcome | None = None
    tracking_error: str | None = None


def execute(jobs: Sequence[TrialJob], options: Mapping[str, Any]) -> Iterator[TrialOutcome]:
    """Yield outcomes as trials finish. ``options``: ``workers``, and ``step_progress(job, steps_done)``."""
    workers = int(options.get("workers") or 2)
    step_progress = options.get("step_progress")
    context = _forkserver(jobs, threads=max(1, (os.cpu_count() or 1) // workers))
    pending = deque(jobs)
    running: list[_Worker] = []
    store_lost = False
    try:
        while pending or running:
            while pending and len(running) < workers:
                running.append(_start(context, pending.popleft()))
            waitables = [w.conn for w in running] + [w.process.sentinel for w in running]
            multiprocessing.connection.wait(waitables, timeout=0.5)
            for worker in list(running):
                _drain(worker, step_progress)
                outcome = _finished(worker)
                if outcome is not None:
                    running.remove(worker)
                    yield outcome
    except TrackingError:
        store_lost = True
        raise
    finally:
        _stop(running, LOST_STORE_GRACE_S if store_lost else INTERRUPT_GRACE_S, record=not store_lost)
        _stop_forkserver()


def _start(context: Any, job: TrialJob) -> _Worker:
    parent_end, child_end = context.Pipe(duplex=False)
    process = context.Process(target=_work, args=(job, child_end), name=f"bench-trial {job.trial.run_name}")
    process.start()
    child_end.close()
    return _Worker(job, process, parent_end)


def _drain(worker: _Worker, step_progress: Any) -> None:
    try:
        while worker.conn.poll():
            kind, value = worker.conn.recv()
            if kind == "steps" and step_progress:
                step_progress(worker.job, value)
            elif kind == "outcome":
                worker.outcome = value
            elif kind == "tracking_error":
                worker.tracking_error = value
    except (EOFError, OSError):
        pass  # the worker exited (or died mid-message): its exit code says which


def _finished(worker: _Worker) -> TrialOutcome | None:
    """The worker's outcome once it has exited; the reason when it died without one; None while it runs."""
    job = worker.job
    if worker.process.exitcode is None:
        if job.timeout and time.monotonic() - worker.started > job.timeout * 1.1 + KILL_GRACE_S:
            worker.process.kill()
            worker.process.join()
            worker.conn.close()
            reason = timeout_reason(job.timeout) + "; it did not stop, so its worker process was killed"
            return record_lost_trial(job, "failed", reason)
        return None
    worker.process.join()
    _drain(worker, None)
    worker.conn.close()
    if worker.tracking_error:
        raise TrackingError(worker.tracking_error)
    if worker.outcome is not None:
        return worker.outcome
    return record_lost_trial(job, "failed", _death(worker.process.exitcode))


def _death(exitcode: int) -> str:
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else "?"
        hint = "; out of memory?" if -exitcode == signal.SIGKILL else ""
        return f"worker process died (signal {-exitcode}, {name}{hint})"
    return f"worker process exited with code {exitcode} before reporting its trial"


def _stop(running: list[_Worker], grace: float, record: bool) -> None:
    """Interrupt running trials (they end their runs KILLED), kill those that do not stop within ``grace``."""
    for worker in running:
        if worker.process.exitcode is None:
            os.kill(worker.process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    try:
        for worker in running:
            while worker.process.exitcode is None and time.monotonic() < deadline:
                multiprocessing.connection.wait([worker.conn, worker.process.sentinel], timeout=0.2)
                _drain(worker, None)  # a worker blocked on a full pipe would never exit
    except KeyboardInterrupt:
        record = False  # a second Ctrl-C: stop now, without waiting for anything more to be written
    for worker in running:
        if worker.process.exitcode is None:
            worker.process.kill()
        worker.process.join()
        worker.conn.close()
    if record:
        for worker in running:
            if worker.outcome is None and not worker.tracking_error:
                record_lost_trial(worker.job, "killed", "interrupted", create=False)


def _work(job: TrialJob, conn: Connection) -> None:
    """A worker process: one trial, its progress and outcome sent to the driver through ``conn``.

    When the driver dies (SIGKILL runs none of its cleanup) the worker exits at once, without a word: the pipe
    to the driver breaks (its next progress message, within :data:`PROGRESS_EVERY_S`), and on Linux the
    forkserver's exit kills it too. Its run stays RUNNING and the next sweep closes it as stale
    (:mod:`benchbench.store`). Left alive, it went on training, recorded the broken pipe as the trial's failure
    and printed tracebacks into the user's terminal after ``bench run`` had ended.
    """
    die_with_parent(signal.SIGKILL)
    if not psutil.pid_exists(multiprocessing.parent_process().pid):
        os._exit(DRIVER_GONE)  # the driver died before the line above could take effect
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt_once)
    last = [0.0]

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == job.trial.settings.steps:
            last[0] = now
            _send(conn, ("steps", done))

    try:
        _send(conn, ("outcome", run_job(job, progress)))
    except TrackingError as error:
        _send(conn, ("tracking_error", str(error)))
    except KeyboardInterrupt:
        pass  # run_job has ended the run KILLED (or FINISHED, when the signal came while it was being written)
    finally:
        conn.close()


def _send(conn: Connection, message: tuple[str, Any]) -> None:
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        os._exit(DRIVER_GONE)  # nobody is left to report to; see _work


def _interrupt_once(signum: int, frame: Any) -> None:
    """The driver and the terminal may both send SIGINT: the second must not interrupt the KILLED write."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _forkserver(jobs: Sequence[TrialJob], threads: int) -> Any:
    """A forkserver that imported what the trials import, with BLAS/OpenMP threads split among workers."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["benchbench_executors.preload"])
    variables = {PRELOAD_VARIABLE: ",".join(_modules_of(jobs))}
    # Without a limit each of N workers starts one BLAS/OpenMP thread per core: N x cores threads on cores.
    variables |= {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with _environment(variables):
        multiprocessing.forkserver.ensure_running()
    return context


def _modules_of(jobs: Sequence[TrialJob]) -> list[str]:
    """The modules behind every lazy reference the trials will resolve: backends, losses, datasets, samplers
    of their backends, every metric and report; first this module (the worker's entry point, with the
    runner), MLflow and matplotlib, which every trial uses."""
    modules = ["benchbench_executors.process", "mlflow.tracking", "matplotlib.pyplot"]
    if not jobs:
        return modules
    # Measured in a forked trial: building the tracking store's client imported 2.6 s of sqlalchemy store
    # (the REST client is light), and torch's first optimizer imported its compiler, torch._dynamo, 4.2 s.
    if jobs[0].tracking_uri.startswith("sqlite:"):
        modules.append("mlflow.store.tracking.sqlalchemy_store")
    if any(job.trial.backend == "torch" for job in jobs):
        modules.append("torch._dynamo")
    plugins = get_plugins(jobs[0].plugin_modules)
    backends = {job.trial.backend for job in jobs}
    refs = [plugins.get("backend", name).program for name in sorted(backends)]
    for objective in sorted({job.trial.objective for job in jobs}):
        losses = plugins.get("objective", objective).losses
        refs += [losses[name] for name in sorted(backends & set(losses))]
    refs += [plugins.get("dataset", name).load for name in sorted({job.trial.dataset for job in jobs})]
    for sampler, _ in plugins.items("sampler"):
        refs += [sampler.samplers[name] for name in sorted(backends & set(sampler.samplers))]
    refs += [metric.compute for metric, _ in plugins.items("metric")]
    refs += [report.render for report, _ in plugins.items("report")]
    for ref in refs:
        module = ref.partition(":")[0] if isinstance(ref, str) else ref.__module__
        if module not in modules:
            modules.append(module)
    return modules


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables the user has not set, for the duration of the block."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _stop_forkserver() -> None:
    """Stop the forkserver with the sweep, so no process outlives it and the next sweep in this process gets
    its own preload. CPython keeps the forkserver in a private module global (3.8-3.14 alike)."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        stop()
