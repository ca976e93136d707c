"""Harness of the browser tests: chime-local, the local OpenID provider and two
copies of the built function behind loopback Function-URL fronts (one with
sign-in required, one without, for the no-script path), and Debian's Chromium
driven by Playwright. Everything on 127.0.0.1; everything started is stopped.

Inputs (the Makefile sets them): E2E_FUNCTION_BIN, E2E_CHIME_LOCAL_BIN,
E2E_OUT (screenshots and logs), E2E_CHROMIUM (default /usr/bin/chromium).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from lambda_front import Front, wait_for_port  # noqa: E402

OUT = Path(os.environ.get("E2E_OUT", ROOT / "target" / "e2e"))
CLIENT_ID = "chime-onboard-web"
# No browser download works here: the system Chromium, with flags that keep it
# off the network and quiet.
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value or not Path(value).exists():
        pytest.exit(f"{name} must name a built binary (run `make e2e`)", returncode=2)
    return value


class Process:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = open(log, "ab")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class ChimeLocal:
    def __init__(self, url: str):
        self.url = url

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text else None

    def accounts(self) -> list[dict]:
        answer = self._call("GET", "/_chime-local/accounts")
        return answer if isinstance(answer, list) else answer.get("Accounts", [])

    def set_faults(self, faults: dict) -> None:
        self._call("POST", "/_chime-local/faults", faults)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_chime-local/faults")


@pytest.fixture(scope="session")
def out() -> Path:
    (OUT / "screenshots").mkdir(parents=True, exist_ok=True)
    return OUT


@pytest.fixture(scope="session")
def chime(out: Path):
    port = free_port()
    process = Process([required_env("E2E_CHIME_LOCAL_BIN"), "--port", str(port)], out / "chime-local.log")
    try:
        wait_for_port(port)
        yield ChimeLocal(f"http://127.0.0.1:{port}")
    finally:
        process.close()


@pytest.fixture(scope="session")
def issuer(out: Path):
    port = free_port()
    process = Process([sys.executable, str(ROOT / "scripts" / "oidc_dev.py"), "--port", str(port)],
                      out / "oidc.log")
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.close()


def function_env(chime: ChimeLocal) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_CHIME": chime.url,
        "CHIME_TIMEOUT_MS": "3000",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "RUST_LOG": "info",
    }


def serve(env: dict[str, str], log: Path):
    """The function behind a Function URL front on loopback; yields its URL, then stops it."""
    front = Front(required_env("E2E_FUNCTION_BIN"), env, log_path=str(log))
    try:
        wait_for_port(front.port)
        yield front.url
    finally:
        front.close()


@pytest.fixture(scope="session")
def app(chime: ChimeLocal, issuer: str, out: Path):
    """The function with sign-in required, verifying the local issuer's ID tokens."""
    env = {
        **function_env(chime),
        "AUTH_REQUIRED": "true",
        "AUTH_JWT_ISSUER": issuer,
        "AUTH_JWT_AUDIENCE": CLIENT_ID,
        "WEB_SIGNIN_AUTHORIZE_URL": f"{issuer}/oauth2/authorize",
        "WEB_SIGNIN_TOKEN_URL": f"{issuer}/oauth2/token",
        "WEB_SIGNIN_CLIENT_ID": CLIENT_ID,
        "WEB_SIGNIN_SCOPES": "openid email",
        "WEB_SIGNIN_TOKEN": "id",
    }
    yield from serve(env, out / "function-auth.log")


@pytest.fixture(scope="session")
def open_app(chime: ChimeLocal, out: Path):
    """The function without sign-in (as `make dev` without auth)."""
    yield from serve(function_env(chime), out / "function-open.log")


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(autouse=True)
def no_faults(chime: ChimeLocal):
    chime.clear_faults()
    yield
    chime.clear_faults()


def pytest_sessionstart(session):
    session.config._e2e_started = time.monotonic()
