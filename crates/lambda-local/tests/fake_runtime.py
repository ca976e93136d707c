"""A Lambda runtime in a few lines, for lambda-local's tests. FAKE_MODE picks its behaviour:

echo          answer each event with {"event", "requestId", "deadlineMs", "env"}
error         post an invocation error
init-error    post init/error, then exit
exit-at-init  exit before asking for an event
crash         exit in the middle of the first invocation
sleep         never answer (the invocation times out)
sqs           a batch response failing every record whose body contains "fail"; each event
              is appended as one JSON line to FAKE_EVENTS
"""
import json
import os
import sys
import time
import urllib.request

BASE = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
MODE = os.environ.get("FAKE_MODE", "echo")


def post(path, body):
    request = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request).read()


if MODE == "init-error":
    post("/init/error", {"errorType": "Runtime.FakeInit", "errorMessage": "no config"})
    sys.exit(1)
if MODE == "exit-at-init":
    sys.exit(3)

while True:
    with urllib.request.urlopen(BASE + "/invocation/next") as response:
        request_id = response.headers["lambda-runtime-aws-request-id"]
        deadline = response.headers["lambda-runtime-deadline-ms"]
        event = json.loads(response.read())
    if MODE == "crash":
        os._exit(2)
    if MODE == "sleep":
        time.sleep(3600)
    if MODE == "error":
        post(f"/invocation/{request_id}/error", {"errorType": "Fake", "errorMessage": "boom"})
        continue
    if MODE == "sqs":
        with open(os.environ["FAKE_EVENTS"], "a") as f:
            f.write(json.dumps(event) + "\n")
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if "fail" in r["body"]]
        post(f"/invocation/{request_id}/response", {"batchItemFailures": failures})
        continue
    names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "FAKE_MODE"]
    post(f"/invocation/{request_id}/response", {
        "event": event, "requestId": request_id, "deadlineMs": int(deadline),
        "env": {n: os.environ.get(n) for n in names},
    })
