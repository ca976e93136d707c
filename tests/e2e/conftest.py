"""Harness of the browser tests: chime-local, the local OpenID provider and
copies of the built function behind loopback Function-URL fronts (sign-in
required with an OpenID Connect end-session sign-out; the same with a
Cognito-style /logout; no sign-in, for the no-script path), and Debian's
Chromium driven by Playwright. The first front also plays API Gateway answering
on its own (`gateway`). Everything on 127.0.0.1; everything started is stopped.

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
import urllib.parse
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


def call(url: str, method: str = "GET", body: dict | None = None):
    """A JSON request to one of the harness's own servers; the decoded answer, if any."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text else None


class ChimeLocal:
    def __init__(self, url: str):
        self.url = url

    def _call(self, method: str, path: str, body: dict | None = None):
        return call(self.url + path, method, body)

    def accounts(self) -> list[dict]:
        answer = self._call("GET", "/_chime-local/accounts")
        return answer if isinstance(answer, list) else answer.get("Accounts", [])

    def set_faults(self, faults: dict) -> None:
        self._call("POST", "/_chime-local/faults", faults)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_chime-local/faults")


class Issuer(str):
    """The local OpenID provider's URL, and its users."""

    def set_user(self, sub: str, claims: dict) -> None:
        call(f"{self}/users/{urllib.parse.quote(sub, safe='')}", "PUT", claims)


class Gateway:
    """The `app` front playing API Gateway: answers without the function, and
    what it received (tests/e2e/lambda_front.py)."""

    def __init__(self, url: str):
        self.url = url + "/_front/"

    def answer(self, status: int, body: dict | str, headers: dict[str, str] | None = None,
               times: int = 1) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        call(self.url + "answers", "POST", {
            "status": status, "body": text, "times": times,
            "headers": {"content-type": "application/json", **(headers or {})},
        })

    def requests(self, method: str = "POST", path: str = "/accounts") -> list[dict]:
        return [r for r in call(self.url + "requests") if r["method"] == method and r["path"] == path]

    def reset(self) -> None:
        call(self.url + "answers", "DELETE")
        call(self.url + "requests", "DELETE")


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
        yield Issuer(f"http://127.0.0.1:{port}")
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


def signed_in_env(chime: ChimeLocal, issuer: str, logout_url: str) -> dict[str, str]:
    """The function with sign-in required, verifying the local issuer's ID tokens."""
    return {
        **function_env(chime),
        "AUTH_REQUIRED": "true",
        "AUTH_JWT_ISSUER": issuer,
        "AUTH_JWT_AUDIENCE": CLIENT_ID,
        "WEB_SIGNIN_AUTHORIZE_URL": f"{issuer}/oauth2/authorize",
        "WEB_SIGNIN_TOKEN_URL": f"{issuer}/oauth2/token",
        "WEB_SIGNIN_CLIENT_ID": CLIENT_ID,
        "WEB_SIGNIN_SCOPES": "openid email profile",
        "WEB_SIGNIN_TOKEN": "id",
        "WEB_SIGNIN_LOGOUT_URL": logout_url,
    }


@pytest.fixture(scope="session")
def app(chime: ChimeLocal, issuer: Issuer, out: Path):
    """Sign-in required; "Sign out" goes to the issuer's OpenID Connect end_session_endpoint."""
    yield from serve(signed_in_env(chime, issuer, f"{issuer}/oauth2/end_session"), out / "function-auth.log")


@pytest.fixture(scope="session")
def cognito_app(chime: ChimeLocal, issuer: Issuer, out: Path):
    """Sign-in required; "Sign out" goes to a Cognito-style /logout."""
    yield from serve(signed_in_env(chime, issuer, f"{issuer}/logout"), out / "function-cognito.log")


@pytest.fixture
def gateway(app: str):
    """API Gateway's own answers on the `app` front; none queued before or after a test."""
    gateway = Gateway(app)
    gateway.reset()
    yield gateway
    gateway.reset()


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
