"""Run schemathesis against the function served locally (`make test-openapi`).

    python scripts/openapi_check.py [--max-examples N] [-- extra schemathesis args]

Starts, on free loopback ports: moto_server (DynamoDB, for the idempotency table,
so `Idempotency-Key` is validated and honoured), chime-local, `cargo lambda watch
--only-lambda-apis` (cargo-lambda's Runtime API emulator, which turns HTTP requests
to /lambda-url/<function>/... into Function URL events) and the function's debug
binary, already built by cargo, attached to that emulator as Lambda would start it.
Then `schemathesis run openapi.yaml` with its default checks against that URL, and
stops everything it started. Every wait is bounded; the exit status is schemathesis's.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
CARGO_LAMBDA = Path(os.environ.get("CARGO_LAMBDA", ROOT / ".venv-deploy" / "bin" / "cargo-lambda"))
CHIME_LOCAL = Path(os.environ.get("CHIME_LOCAL_BIN", ROOT / "target" / "debug" / "chime-local"))
FUNCTION = Path(os.environ.get("FUNCTION_BIN", ROOT / "target" / "debug" / "chime-onboard"))
LOG_DIR = ROOT / "target" / "openapi-check"
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, ready, timeout: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"openapi-check: {p.args[0]} exited ({p.returncode}) before {what} was ready; logs in {LOG_DIR}")
        if ready():
            return
        time.sleep(0.2)
    raise SystemExit(f"openapi-check: {what} not ready after {timeout:.0f} s; logs in {LOG_DIR}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    log = open(LOG_DIR / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    # stdin stays an open pipe: `cargo lambda watch` stops when its stdin closes.
    # Each in its own process group, stopped as a group.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.PIPE, start_new_session=True)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def create_table(endpoint: str) -> str:
    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    name = "openapi-check-idempotency"
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    return name


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # so `finally` stops the servers


def main() -> int:
    signal.signal(signal.SIGTERM, on_signal)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("extra", nargs="*", help="more schemathesis arguments (after --)")
    args = parser.parse_args()
    for tool in (VENV / "bin" / "moto_server", VENV / "bin" / "schemathesis", CARGO_LAMBDA, CHIME_LOCAL, FUNCTION):
        if not tool.exists():
            raise SystemExit(f"openapi-check: {tool} is missing; run it through `make test-openapi`")
    LOG_DIR.mkdir(parents=True, exist_ok=True)

    moto_port, chime_port, invoke_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start("moto", [str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)]))
        procs.append(start("chime-local", [str(CHIME_LOCAL), "--port", str(chime_port)]))
        wait_until("moto_server", lambda: port_open(moto_port), 60, procs)
        wait_until("chime-local", lambda: port_open(chime_port), 60, procs)
        moto = f"http://127.0.0.1:{moto_port}"
        table = create_table(moto)

        cmd = [str(CARGO_LAMBDA), "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(invoke_port)]
        procs.append(start("cargo-lambda", cmd))
        wait_until("cargo lambda's Runtime API", lambda: port_open(invoke_port), 60, procs)

        function_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # cargo lambda's Runtime API for the function named in the URL path.
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{invoke_port}/.rt/chime-onboard",
            "AWS_LAMBDA_FUNCTION_NAME": "chime-onboard",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_CHIME": f"http://127.0.0.1:{chime_port}",
            "AWS_ENDPOINT_URL_SQS": moto,
            "AWS_ENDPOINT_URL_DYNAMODB": moto,
            "IDEMPOTENCY_TABLE": table,
            "RUST_LOG": "warn",
        }
        procs.append(start("function", [str(FUNCTION)], function_env))
        base = f"http://127.0.0.1:{invoke_port}/lambda-url/chime-onboard"
        started = time.monotonic()
        wait_until("the function", lambda: port_open(invoke_port) and answers(f"{base}/"), START_TIMEOUT_S, procs)
        print(f"openapi-check: function up after {time.monotonic() - started:.1f} s at {base}", flush=True)

        st = [str(VENV / "bin" / "schemathesis"), "--config-file", str(ROOT / "scripts" / "schemathesis.toml"),
              "run", str(ROOT / "openapi.yaml"), "--url", base,
              "--max-examples", str(args.max_examples), "--seed", "1",
              # A bearer token for the documented security scheme. The function
              # does not check it: API Gateway does, before the function runs.
              "--header", "Authorization: Bearer local-test-token",
              "--request-timeout", "30", *args.extra]
        print("openapi-check:", " ".join(st), flush=True)
        hooks_env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
                     "PYTHONPATH": str(ROOT / "scripts")}
        return subprocess.run(st, cwd=ROOT, env=hooks_env, timeout=1800).returncode
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
