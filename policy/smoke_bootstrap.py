"""Smoke-test a built `bootstrap` the way Lambda would start it from template.yaml.

    python policy/smoke_bootstrap.py [.aws-sam/build/OnboardFunction/bootstrap]

Serves a minimal Lambda Runtime API on 127.0.0.1, starts the bootstrap with the
environment that template.yaml gives the function (parameter defaults, sample
resource names) plus what Lambda adds (LoggingConfig -> AWS_LAMBDA_LOG_FORMAT /
AWS_LAMBDA_LOG_LEVEL, runtime API address, region, dummy credentials), and hands
it events that need no AWS call. Every AWS endpoint points at a closed loopback
port, so nothing leaves the machine. An arm64 binary on an x86_64 host runs under
qemu-aarch64 (`make smoke-arm64` installs it).

Checks: init succeeds with the template's configuration; GET / returns the form;
a blank name is a 400 problem+json with code NameEmpty; an unsupported payload is
reported through the Runtime API's error route; logs are JSON lines.
"""
from __future__ import annotations

import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import check  # noqa: E402  (the template, read with cfn-lint's decoder)
import render  # noqa: E402  (the template for one set of parameter values)

PREFIX = "/2018-06-01/runtime"
SAMPLE_RESOURCES = {
    "ReplyQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/chime-onboard-ReplyQueue-EXAMPLE",
    "IdempotencyTable": "chime-onboard-IdempotencyTable-EXAMPLE",
    "WebClient": "4example5clientid6",
    "UserPool": "us-east-1_EXAMPLE",
    "UserPoolDomain": "chime-onboard-51af3dc0-da77-11e4-872e-1234567db123",
}


def template_environment(t: dict, overrides: dict | None = None) -> dict[str, str]:
    """The function's environment as CloudFormation would resolve it with the
    parameters' defaults (and `overrides`) and sample values for the resources
    and pseudo parameters it references (render.py)."""
    renderer = render.Renderer(t, overrides, SAMPLE_RESOURCES)
    fn = t["Resources"]["OnboardFunction"]["Properties"]
    env = {}
    for k, v in fn["Environment"]["Variables"].items():
        resolved = renderer.resolve(v)
        if resolved is not None:
            env[k] = str(resolved)
    logging_config = fn["LoggingConfig"]
    env["AWS_LAMBDA_LOG_FORMAT"] = logging_config["LogFormat"]
    env["AWS_LAMBDA_LOG_LEVEL"] = str(renderer.resolve(logging_config["ApplicationLogLevel"]))
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(renderer.resolve(fn["MemorySize"]))
    return env


class RuntimeApi:
    """Hands out queued events on /next and records responses and errors."""

    def __init__(self, events: list[tuple[str, dict]]):
        self.pending: "queue.Queue[tuple[str, dict]]" = queue.Queue()
        for item in events:
            self.pending.put(item)
        self.results: dict[str, tuple[str, object]] = {}
        self.init_error: object = None
        self.done = threading.Event()
        self.expected = len(events)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    self.send_error(404)
                    return
                try:
                    request_id, event = api.pending.get(timeout=30)
                except queue.Empty:
                    self.send_error(504)
                    return
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:chime-onboard-smoke")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    payload = raw.decode(errors="replace")
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts[:2] == ["init", "error"]:
                    api.init_error = payload
                    api.done.set()
                elif len(parts) == 3 and parts[0] == "invocation":
                    api.results[parts[1]] = (parts[2], payload)
                    if len(api.results) == api.expected:
                        api.done.set()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    return {0xB7: "aarch64", 0x3E: "x86_64"}.get(int.from_bytes(header[18:20], "little"), "unknown")


def main(argv: list[str]) -> int:
    bootstrap = Path(argv[1] if len(argv) > 1 else ROOT / ".aws-sam/build/OnboardFunction/bootstrap")
    if not bootstrap.exists():
        print(f"{bootstrap}: not built (make sam-build)", file=sys.stderr)
        return 2
    events_dir = ROOT / "events"
    events = [
        ("req-get-form", json.loads((events_dir / "apigw-v2-get-form.json").read_text())),
        ("req-bad-name", json.loads((events_dir / "apigw-v2-post-accounts-bad-name.json").read_text())),
        ("req-unsupported", json.loads((events_dir / "unsupported-s3-put.json").read_text())),
    ]
    api = RuntimeApi(events)
    closed = "http://127.0.0.1:9"  # discard port: nothing listens, nothing leaves loopback
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **template_environment(check.load(ROOT / "template.yaml")),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "chime-onboard-smoke",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDSMOKETEST",
        "AWS_SECRET_ACCESS_KEY": "smoke-test-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": closed,
        "AWS_ENDPOINT_URL_CHIME": closed,
        "AWS_ENDPOINT_URL_SQS": closed,
        "AWS_ENDPOINT_URL_DYNAMODB": closed,
    }
    cmd = [str(bootstrap)]
    machine = elf_machine(bootstrap)
    if machine != platform.machine():
        cmd = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", *cmd] if machine == "aarch64" else cmd
    shown = {k: v for k, v in env.items() if k != "PATH" and not k.startswith("AWS_SECRET")}
    print(f"starting {bootstrap} ({machine}) with:", json.dumps(shown, indent=1))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finished = api.done.wait(timeout=60)
    elapsed = time.monotonic() - started
    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    api.server.shutdown()

    failures: list[str] = []

    def expect(ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    expect(api.init_error is None, f"init succeeded with the template's environment (init error: {api.init_error})")
    expect(finished, f"all {len(events)} invocations answered ({len(api.results)} in {elapsed:.1f} s)")
    kind, form = api.results.get("req-get-form", ("missing", None))
    expect(kind == "response" and isinstance(form, dict) and form.get("statusCode") == 200
           and "text/html" in json.dumps(form.get("headers") or {}), "GET / -> 200 text/html")
    kind, bad = api.results.get("req-bad-name", ("missing", None))
    problem = json.loads(bad.get("body") or "{}") if isinstance(bad, dict) else {}
    expect(kind == "response" and bad.get("statusCode") == 400 and problem.get("code") == "NameEmpty"
           and problem.get("requestId") == "req-bad-name",
           f"POST /accounts with a blank name -> 400 NameEmpty ({bad.get('statusCode') if isinstance(bad, dict) else bad}, {problem.get('code')})")
    kind, err = api.results.get("req-unsupported", ("missing", None))
    expect(kind == "error", f"unsupported payload -> Runtime API error route ({kind}: {err})")
    log_lines = [line for line in output.splitlines() if line.strip()]
    json_lines = []
    for line in log_lines:
        try:
            json_lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    expect(bool(log_lines) and len(json_lines) == len(log_lines),
           f"logs are JSON lines ({len(json_lines)}/{len(log_lines)})")
    if failures:
        print("--- bootstrap output ---\n" + output)
        return 1
    print(f"smoke test passed: {len(events)} invocations")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
