"""The Ray executor: each trial is one Ray task, on a cluster (``address``) or on a local Ray instance.

A local instance is started and shut down by the sweep, small on purpose (``workers`` CPUs, default every
core; no dashboard). On a cluster, the driver only submits tasks and collects outcomes as they finish; every
node logs its trials straight to the tracking server, so the server's URI must be reachable from every node
(checked before anything is submitted). A task asks for ``cpus_per_trial`` CPUs and, when the trial's device
is cuda/gpu, one GPU; Ray limits its BLAS/OpenMP threads to its CPUs. Tasks are not retried: a trial whose
worker dies (out of memory, a crash) ends FAILED with the reason instead of being run again and again.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from benchbench import BenchError, TrackingError, TrialJob, TrialOutcome, UsageError, record_lost_trial, run_job

# Ctrl-C: cancelled tasks get this long to write their KILLED status before they are force-cancelled.
INTERRUPT_GRACE_S = 30.0
GPU_DEVICES = ("cuda", "gpu")


def execute(jobs: Sequence[TrialJob], options: Mapping[str, Any]) -> Iterator[TrialOutcome]:
    """Yield outcomes as tasks finish. ``options``: ``address``, ``workers`` (0: as many as Ray schedules),
    ``cpus_per_trial``."""
    import ray

    _connect(ray, options)
    inflight: dict[Any, TrialJob] = {}
    record = True
    try:
        _check_cluster(ray, jobs)
        task = ray.remote(max_retries=0)(_run_task)
        pending = deque(jobs)
        limit = int(options.get("workers") or 0) or len(jobs)
        while pending or inflight:
            while pending and len(inflight) < limit:
                job = pending.popleft()
                gpus = 1 if job.trial.settings.device in GPU_DEVICES else 0
                cpus = float(options.get("cpus_per_trial") or 1)
                inflight[task.options(num_cpus=cpus, num_gpus=gpus).remote(job)] = job
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in done:
                yield _outcome(ray, ref, inflight.pop(ref))
    except TrackingError:
        record = False  # the store is gone: nothing more can be written
        raise
    finally:
        try:
            _cancel(ray, inflight, record)
        finally:
            ray.shutdown()


def _run_task(job: TrialJob) -> tuple[str, Any]:
    """The Ray task. A lost tracking store is returned, not raised, so the driver tells it from a trial's error."""
    try:
        return "outcome", run_job(job)
    except TrackingError as error:
        return "tracking_error", str(error)


def _outcome(ray: Any, ref: Any, job: TrialJob) -> TrialOutcome:
    try:
        kind, value = ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return record_lost_trial(job, "killed", "cancelled")
    except ray.exceptions.RayError as error:  # the worker died: out of memory, a crash, a lost node
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        return record_lost_trial(job, "failed", f"Ray worker died ({type(error).__name__}: {first})")
    if kind == "tracking_error":
        raise TrackingError(value)
    return value


def _cancel(ray: Any, inflight: dict[Any, TrialJob], record: bool) -> None:
    """Ctrl-C: a cancelled task gets KeyboardInterrupt (run_job ends its run KILLED); queued ones never start."""
    if not inflight:
        return
    for ref in inflight:
        ray.cancel(ref)
    refs = list(inflight)
    done, stuck = ray.wait(refs, num_returns=len(refs), timeout=INTERRUPT_GRACE_S if record else 2.0)
    for ref in stuck:
        ray.cancel(ref, force=True)
    if record:
        for job in inflight.values():
            record_lost_trial(job, "killed", "interrupted", create=False)


def _connect(ray: Any, options: Mapping[str, Any]) -> None:
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    address = options.get("address") or None
    if address is None and not os.environ.get("RAY_ADDRESS"):
        cpus = int(options.get("workers") or 0) or os.cpu_count() or 1
        # Kept small for a laptop or a 2-core CI machine: no dashboard, a 256 MiB object store (a trial's
        # arguments and outcome are a few kB; the default would reserve 30% of memory).
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=256 * 2**20, **quiet)
        return
    try:
        ray.init(address=address, **quiet)
    except Exception as error:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or its own errors
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = ""
        if "auth" in str(error).lower():
            hint = "; the cluster uses token authentication: set RAY_AUTH_MODE=token and the cluster's token"
            hint += " (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token)"
        raise BenchError(
            f"--address {address or os.environ['RAY_ADDRESS']}: cannot connect to Ray: {first}{hint}"
        ) from None


def _check_cluster(ray: Any, jobs: Sequence[TrialJob]) -> None:
    """Refuse, before any trial runs, a tracking store or artifact folder that other nodes cannot reach."""
    here = ray.util.get_node_ip_address()
    others = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} - {here})
    if not jobs or not others:
        return
    uri = jobs[0].tracking_uri
    host = urlparse(uri).hostname if uri.startswith(("http://", "https://")) else None
    if host is None or host == "localhost" or _is_loopback(host):
        raise UsageError(
            f"tracking URI {uri} is local to this machine, but the Ray cluster has other nodes ({', '.join(others)}); "
            "start a server they can reach (bench server --host 0.0.0.0) and pass --tracking-uri http://HOST:PORT"
        )
    from benchbench.tracking import Tracker

    location = Tracker(uri).client.get_experiment(jobs[0].experiment_id).artifact_location
    if location.startswith("/") or location.startswith("file:"):
        raise UsageError(
            f"the experiment stores artifacts in the folder {location}, which other Ray nodes would write on their "
            "own disks; use an experiment created through a server that serves artifacts (bench server): "
            "pick a new --experiment name"
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
