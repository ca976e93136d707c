"""A loopback stand-in for a Lambda Function URL: an HTTP front that turns each
request into an HTTP API v2 event, and the Lambda Runtime API that the built
function binary polls for it. Used by the browser tests (and usable by hand):

    python tests/e2e/lambda_front.py --port 9100 -- target/debug/chime-onboard

Everything listens on 127.0.0.1; the function runs as a child process with the
environment given, and is killed with the front. One invocation at a time, as in
one Lambda execution environment; every wait is bounded.

The front can also play API Gateway answering on its own, before the function
runs (an expired token's 401, a missing scope's 403, its own 429 throttling, a
5xx): such answers carry no problem `code`. Tests queue them and read what the
front received under /_front/:

    POST   /_front/answers   {"status": 403, "headers": {...}, "body": "...",
                              "method": "POST", "path": "/accounts", "times": 1}
    DELETE /_front/answers   forget the queued answers
    GET    /_front/requests  [{"method", "path", "idempotencyKey", "bearer", "faked"}, ...]
    DELETE /_front/requests  forget them
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

RUNTIME_PREFIX = "/2018-06-01/runtime"
CONTROL_PREFIX = "/_front/"
INVOCATION_TIMEOUT_S = 30


class Invocation:
    def __init__(self, event: dict):
        self.id = str(uuid.uuid4())
        self.event = event
        self.done = threading.Event()
        self.response: dict | None = None
        self.error: dict | None = None


class Runtime:
    """Pending invocations and their answers."""

    def __init__(self) -> None:
        self.pending: "queue.Queue[Invocation]" = queue.Queue()
        self.by_id: dict[str, Invocation] = {}
        self.lock = threading.Lock()
        self.init_error: dict | None = None
        self.closed = threading.Event()

    def next(self) -> Invocation | None:
        """The next invocation, or None once the front closes (polled each second)."""
        while not self.closed.is_set():
            try:
                return self.pending.get(timeout=1)
            except queue.Empty:
                continue
        return None

    def invoke(self, event: dict) -> Invocation:
        invocation = Invocation(event)
        with self.lock:
            self.by_id[invocation.id] = invocation
        self.pending.put(invocation)
        invocation.done.wait(INVOCATION_TIMEOUT_S)
        with self.lock:
            self.by_id.pop(invocation.id, None)
        return invocation

    def finish(self, request_id: str, response: dict | None, error: dict | None) -> bool:
        with self.lock:
            invocation = self.by_id.get(request_id)
        if invocation is None:
            return False
        invocation.response, invocation.error = response, error
        invocation.done.set()
        return True


class Gateway:
    """Answers the front gives instead of the function (queued by tests), and
    a bounded log of the requests it received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: list[dict] = []
        self.seen: deque[dict] = deque(maxlen=500)

    def queue(self, answer: dict) -> None:
        status = int(answer["status"])
        if not 100 <= status <= 599:
            raise ValueError(f"status {status}")
        with self.lock:
            self.answers.append({
                "status": status,
                "headers": {str(k): str(v) for k, v in (answer.get("headers") or {}).items()},
                "body": str(answer.get("body", "")),
                "method": answer.get("method", "POST"),
                "path": answer.get("path", "/accounts"),
                "times": max(1, int(answer.get("times", 1))),
            })

    def take(self, method: str, path: str) -> dict | None:
        """The first queued answer for this request, used up after `times`."""
        with self.lock:
            for answer in self.answers:
                if answer["method"] == method and answer["path"] == path:
                    answer["times"] -= 1
                    if answer["times"] == 0:
                        self.answers.remove(answer)
                    return answer
        return None

    def record(self, method: str, path: str, headers: dict[str, str], faked: bool) -> None:
        with self.lock:
            self.seen.append({
                "method": method,
                "path": path,
                "idempotencyKey": headers.get("idempotency-key"),
                "bearer": headers.get("authorization", "").lower().startswith("bearer "),
                "faked": faked,
            })

    def clear(self, what: str) -> None:
        with self.lock:
            (self.answers if what == "answers" else self.seen).clear()

    def requests(self) -> list[dict]:
        with self.lock:
            return list(self.seen)


def v2_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, port: int) -> dict:
    parts = urlsplit(raw_path)
    now = time.time()
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": f"127.0.0.1:{port}",
            "domainPrefix": "127",
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": True,
        "body": base64.b64encode(body).decode(),
    }
    if cookies:
        event["cookies"] = cookies
    return event


def make_handler(runtime: Runtime, gateway: Gateway, front_port: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller left (the function stopping while it polls)

        # ---------------------------------------------------- the Runtime API
        def _runtime(self) -> bool:
            path = self.path
            if not path.startswith(RUNTIME_PREFIX):
                return False
            rest = path[len(RUNTIME_PREFIX):]
            if self.command == "GET" and rest == "/invocation/next":
                invocation = runtime.next()  # the function long-polls
                if invocation is None:
                    self._send(410, [], b"")
                    return True
                deadline = int((time.time() + INVOCATION_TIMEOUT_S) * 1000)
                self._send(200, [
                    ("content-type", "application/json"),
                    ("lambda-runtime-aws-request-id", invocation.id),
                    ("lambda-runtime-deadline-ms", str(deadline)),
                    ("lambda-runtime-invoked-function-arn",
                     "arn:aws:lambda:us-east-1:000000000000:function:chime-onboard"),
                    ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000"),
                ], json.dumps(invocation.event).encode())
                return True
            body = self._body()
            if self.command == "POST" and rest.startswith("/invocation/"):
                request_id, _, kind = rest[len("/invocation/"):].partition("/")
                payload = json.loads(body or b"null")
                ok = runtime.finish(request_id, payload if kind == "response" else None,
                                    payload if kind == "error" else None)
                self._send(202 if ok else 404, [("content-type", "application/json")], b"{}")
                return True
            if self.command == "POST" and rest == "/init/error":
                runtime.init_error = json.loads(body or b"null")
                sys.stderr.write(f"lambda_front: init error: {runtime.init_error}\n")
                self._send(202, [("content-type", "application/json")], b"{}")
                return True
            self._send(404, [], b"")
            return True

        # ---------------------------------------------------- the tests' controls
        def _control(self) -> bool:
            if not self.path.startswith(CONTROL_PREFIX):
                return False
            what = self.path[len(CONTROL_PREFIX):]
            json_type = [("content-type", "application/json")]
            if what not in ("answers", "requests"):
                self._send(404, [], b"")
            elif self.command == "DELETE":
                gateway.clear(what)
                self._send(204, [], b"")
            elif what == "requests" and self.command == "GET":
                self._send(200, json_type, json.dumps(gateway.requests()).encode())
            elif what == "answers" and self.command == "POST":
                try:
                    gateway.queue(json.loads(self._body() or b"null"))
                except (ValueError, KeyError, TypeError) as error:
                    self._send(400, json_type, json.dumps({"error": str(error)}).encode())
                    return True
                self._send(204, [], b"")
            else:
                self._send(405, [], b"")
            return True

        # ---------------------------------------------------- the HTTP front
        def _front(self) -> None:
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            path = urlsplit(self.path).path or "/"
            body = self._body()
            answer = gateway.take(self.command, path)
            gateway.record(self.command, path, headers, faked=answer is not None)
            if answer is not None:
                self._send(answer["status"], list(answer["headers"].items()), answer["body"].encode())
                return
            event = v2_event(self.command, self.path, headers, body, front_port)
            invocation = runtime.invoke(event)
            if not invocation.done.is_set():
                self._send(504, [("content-type", "text/plain")], b"the function did not answer in time\n")
                return
            if invocation.error is not None or not isinstance(invocation.response, dict):
                self._send(502, [("content-type", "application/json")],
                           json.dumps(invocation.error or {"message": "bad response"}).encode())
                return
            response = invocation.response
            out_headers = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
            for k, values in (response.get("multiValueHeaders") or {}).items():
                out_headers += [(k, str(v)) for v in values]
            out_headers += [("set-cookie", c) for c in response.get("cookies") or []]
            body = response.get("body") or ""
            raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
            self._send(int(response.get("statusCode", 200)), out_headers, raw)

        def _dispatch(self) -> None:
            if not self._runtime() and not self._control():
                self._front()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    return Handler


class Front:
    """The front + runtime on two loopback ports, and the function process."""

    def __init__(self, binary: str, env: dict[str, str], port: int = 0, log_path: str | None = None):
        self.runtime = Runtime()
        self.gateway = Gateway()
        self.http = ThreadingHTTPServer(("127.0.0.1", port), None)  # type: ignore[arg-type]
        self.port = self.http.server_address[1]
        self.http.RequestHandlerClass = make_handler(self.runtime, self.gateway, self.port)
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.runtime, self.gateway, self.port))
        self.api.daemon_threads = self.http.daemon_threads = True
        for server in (self.http, self.api):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        child_env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.api.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "chime-onboard",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/chime-onboard",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        }
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen([binary], env=child_env, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.runtime.closed.set()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.http.shutdown()
        self.api.shutdown()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--env-file", help="KEY=VALUE lines passed to the function")
    parser.add_argument("binary", help="the built function (target/debug/chime-onboard)")
    args = parser.parse_args()
    env: dict[str, str] = {}
    if args.env_file:
        for line in open(args.env_file):
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    env.setdefault("RUST_LOG", "info")
    front = Front(args.binary, env, port=args.port)
    print(f"lambda_front: {front.url} -> {args.binary}", flush=True)
    try:
        while front.process.poll() is None:
            time.sleep(0.5)
        print(f"lambda_front: the function exited with {front.process.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        front.close()


if __name__ == "__main__":
    sys.exit(main())
