"""``bench ui`` end to end: a real sweep, the MLflow UI as a subprocess, the experiment opened in headless
Chromium; then SIGINT / SIGTERM and a check that no process ``bench ui`` started is left."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchbench.cli import cli
from benchbench.processes import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


class UI:
    """``bench ui`` in a subprocess; its stdout read on a thread so a silent UI cannot hang the test."""

    def __init__(self, uri: str, log: Path, experiment: str) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchbench",
                "ui",
                "--tracking-uri",
                uri,
                "--port",
                "0",
                "--experiment",
                experiment,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def printed(self, pattern: str, timeout: float = 150.0) -> str:
        """The first group of ``pattern`` in what bench ui printed, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, "".join(self.lines))
            if found:
                return found.group(1)
            assert self.process.poll() is None, f"bench ui exited early: {self.diagnostics()}"
            time.sleep(0.2)
        raise AssertionError(f"bench ui printed no {pattern!r} within {timeout:.0f} s: {self.diagnostics()}")

    def started(self) -> list[psutil.Process]:
        """Every process bench ui started and is running now: its descendants and the UI's process group."""
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return tree + [p for p in group_members({c.pid for c in tree}) if p.pid not in {c.pid for c in tree}]

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.log.close()

    def diagnostics(self) -> str:
        return "".join(self.lines) + Path(self.log.name).read_text()[-3000:]


def group_members(pgids: set[int]) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) in pgids and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def alive(processes: list[psutil.Process]) -> list[str]:
    """The processes still running (a zombie has exited; a reused pid is another process)."""
    left = []
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
    return left


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def assert_everything_stopped(ui: UI, started: list[psutil.Process], exit_code: int, url: str | None) -> None:
    assert exit_code == 0, ui.diagnostics()
    assert "stopping the MLflow UI" in "".join(ui.lines)
    assert started, "bench ui started no process"
    later = group_members({p.pid for p in started})  # anything that joined the UI's group after the snapshot
    assert alive(started + later) == [], "left running after bench ui stopped"
    if url:
        assert not listening(url)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian package 'chromium')")
def test_the_ui_shows_the_sweep_in_chromium_and_ctrl_c_stops_every_process(tracking_uri, experiment, tmp_path):
    from playwright.sync_api import sync_playwright

    run = CliRunner().invoke(
        cli,
        ["run", "-o", "denoising", "-o", "denoising:sigma=0.5", "-b", "torch", "-d", "gaussian:dim=2",
         "--steps", "20", "--width", "16", "--depth", "1", "--n-samples", "64", "--sampler", "langevin:n_steps=10",
         "--tracking-uri", tracking_uri, "--experiment", experiment],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    sweep = next(r.info.run_name for r in runs if r.data.tags["bench.kind"] == "sweep")
    trials = sorted(r.info.run_name for r in runs if r.data.tags["bench.kind"] == "trial")
    assert trials == ["denoising/torch/gaussian:dim=2/seed0", "denoising:sigma=0.5/torch/gaussian:dim=2/seed0"]

    ui = UI(tracking_uri, tmp_path / "ui.log", experiment)
    exit_code, started, url = None, [], None
    try:
        url = ui.printed(r" at (http://127\.0\.0\.1:\d+)")
        runs_page = ui.printed(rf"runs of experiment '{re.escape(experiment)}': (\S+)")
        assert runs_page == f"{url}/#/experiments/{experiment_id}/runs"
        started = ui.started()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 800},
            )
            try:
                page = browser.new_page()
                page.goto(runs_page, timeout=90_000)
                sweep_row = page.locator('[role="row"]', has_text=sweep).first
                sweep_row.wait_for(timeout=90_000)
                sweep_row.locator("button").first.click()  # the trials are nested under their sweep
                for name in trials:
                    page.get_by_text(name, exact=True).wait_for(state="visible", timeout=30_000)
                _tidy_for_the_screenshot(page)
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "ui_sweep_runs.png"))
                assert all(page.get_by_text(name, exact=True).is_visible() for name in [sweep, *trials])
            finally:
                browser.close()
        started = ui.started()  # MLflow may start workers lazily: take the full picture before stopping
    finally:
        exit_code = ui.stop(signal.SIGINT)
    assert_everything_stopped(ui, started, exit_code, url)


def _tidy_for_the_screenshot(page) -> None:
    """Cosmetics only (the assertions do not depend on them): close the assistant panel, widen the name column."""
    from playwright.sync_api import Error

    with contextlib.suppress(Error):
        page.get_by_role("button", name="Close").click(timeout=3000)
    with contextlib.suppress(Error):
        page.locator('.ag-header-cell[col-id="attributes.`Run Name`"] .ag-header-cell-resize').dblclick(timeout=3000)


@pytest.mark.slow
def test_sigterm_while_the_ui_is_starting_still_stops_every_process(tracking_uri, experiment, tmp_path):
    MlflowClient(tracking_uri).create_experiment(experiment)  # the store file exists
    ui = UI(tracking_uri, tmp_path / "ui.log", experiment)
    deadline = time.monotonic() + 60
    started: list[psutil.Process] = []
    while not started and time.monotonic() < deadline:
        started = ui.started()
        time.sleep(0.05)
    exit_code = ui.stop(signal.SIGTERM)  # MLflow is starting, not yet listening
    assert "at http://" not in "".join(ui.lines)
    assert_everything_stopped(ui, started, exit_code, None)


# serve() with the MLflow UI replaced by a child that ignores SIGTERM (so stopping it takes the SIGKILL grace),
# and a SIGTERM that arrives while Popen is still returning: before serve() could have installed a handler after it.
STUBBORN_UI = """
import os, signal, subprocess, sys
import benchbench.ui as ui

real_popen = subprocess.Popen
child = "import signal as s, time; s.signal(s.SIGTERM, s.SIG_IGN); print('ready', flush=True); time.sleep(300)"

def popen_then_signal(command, **options):
    quiet = dict(stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    process = real_popen([sys.executable, "-c", child], **quiet, **options)
    process.stdout.readline()
    print(process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    return process

ui.subprocess.Popen = popen_then_signal
ui.serve(sys.argv[1], port=int(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_stop_signal_during_start_or_during_the_stop_is_not_lost(tmp_path):
    (tmp_path / "m.db").touch()
    serve = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_UI, f"sqlite:///{tmp_path / 'm.db'}", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child = psutil.Process(int(serve.stdout.readline()))
    try:
        time.sleep(1.0)  # serve() is now in its stop, waiting out the grace period of a child that ignores SIGTERM
        serve.send_signal(signal.SIGINT)  # a second Ctrl-C must not cut the stop short
        out = serve.stdout.read()  # until serve() exits (communicate() would drop what readline() buffered)
        assert serve.wait(timeout=60) == 0, serve.stderr.read()
        assert "stopping the MLflow UI" in out
        assert alive([child]) == []
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_missing_store_and_busy_port_are_usage_errors(tmp_path):
    result = CliRunner().invoke(cli, ["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'nothing.db'}"])
    assert result.exit_code == 2 and "no tracking store at" in result.output and "nothing.db" in result.output
    (tmp_path / "m.db").touch()
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = CliRunner().invoke(
            cli, ["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--port", str(port)]
        )
    assert result.exit_code == 2 and f"--port {port}: 127.0.0.1:{port} is not free" in result.output
