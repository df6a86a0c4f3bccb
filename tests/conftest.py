"""Shared fixtures: an isolated workspace per test, offline hub settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    """The throughput store the estimates learn from: a fresh one per test session (served apps and
    workers inherit it). Without this the suite read this machine's real store (a startup of 1.8 h that
    a sweep had recorded refused a test's launch) and taught it the test runs' fake teachers and tiny
    models. A hook, not module code: the benches that import this file keep their own store."""
    os.environ["BALDISTILL_THROUGHPUTS"] = str(Path(tempfile.mkdtemp(prefix="baldistill-test-throughputs-"))
                                               / "throughputs.json")


REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output"


@pytest.fixture
def ws(tmp_path):
    """A fresh workspace with the bundled demo datasets imported: (Workspace, connection)."""
    from baldistill_core.workspace import open_workspace

    w, conn = open_workspace(tmp_path / "ws")
    yield w, conn
    conn.close()


@pytest.fixture
def empty_ws(tmp_path):
    from baldistill_core.workspace import open_workspace

    w, conn = open_workspace(tmp_path / "ws", bundled=False)
    yield w, conn
    conn.close()


@pytest.fixture
def page_env(tmp_path, monkeypatch):
    """Point the Streamlit bridge at a fresh workspace for AppTest page tests."""
    root = tmp_path / "page_ws"
    monkeypatch.setenv("BALDISTILL_WORKSPACE", str(root))
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return root


# ---------------------------------------------------------------- served app + real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """`streamlit run app.py` (or ``script``, e.g. a bench's page) on a free localhost port against its own
    workspace; ``extra_args`` go to streamlit."""

    def __init__(self, workspace: Path, log_path: Path, *, script: Path | None = None, extra_args=()):
        import subprocess
        import sys

        self.port = _free_port()
        self.url = f"http://localhost:{self.port}"
        self.workspace = workspace
        env = dict(os.environ, BALDISTILL_WORKSPACE=str(workspace))
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script or REPO / "app.py"), "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             *extra_args],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 90.0) -> None:
        import time
        import urllib.request

        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not become healthy in {timeout_s}s; see {self.log.name}")

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, Exception):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture(scope="session")
def browser_output() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="module")
def served_app(tmp_path_factory, browser_output):
    app = ServedApp(tmp_path_factory.mktemp("served_ws"), browser_output / "streamlit-server.log")
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


def count_frames(pg) -> tuple[list[int], list[int]]:
    """Lists that collect the size of every websocket frame ``pg`` receives and sends from now on."""
    received: list[int] = []
    sent: list[int] = []

    def watch(ws):
        ws.on("framereceived", lambda f: received.append(len(f)))
        ws.on("framesent", lambda f: sent.append(len(f)))
    pg.on("websocket", watch)
    return received, sent


def wait_for_app(pg) -> None:
    """Wait until Streamlit finished running the script (no 'running' status widget)."""
    pg.wait_for_selector('[data-testid="stApp"]')
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
    )
