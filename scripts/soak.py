#!/usr/bin/env python3
"""`make soak`: the exactly-once promise under ambiguous failures and crashes (issue 9).

Starts chime-local (release) with throttling, 5xx before the commit, after-commit faults
(5xx / connection reset / a response withheld past CHIME_TIMEOUT_MS) and late commits (the
create commits LATE_COMMIT_MS after the request, after the function gave up; issue 19), plus
operator errors: every Chime call answers 403 for FORBIDDEN_S seconds mid-run; two moto_servers (SQS,
DynamoDB), a request queue with a DLQ, a reply queue and the idempotency table; sends
REQUESTS messages with unique RequestIds (some pairs share a Name); runs esm-local, the local
SQS event source mapping, with the RELEASE function binary, SIGKILLing a few invocations
mid-flight; waits (bounded) until the request queue is empty; then checks chime-local's
accounts and the replies:

  - every RequestId has exactly one account (a same-name pair: two accounts, and the two
    Created replies name different AccountIds), or ended Failed in the DLQ with none;
  - every request got one final reply (redelivered duplicates must be identical: same
    Status and AccountId; a Created after a Failed is a violation);
  - no reply names an AccountId chime-local does not have.

The last line is `soak: N requests, A accounts, D duplicates, L lost` (D: accounts beyond one
per request; L: requests with neither a final reply nor a Failed reply and a DLQ ending);
the exit status is non-zero when D or L or any other violation is non-zero.
Knobs: the constants below, each also a flag (`scripts/soak.py --help`).
"""
import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import boto3
from botocore.config import Config as BotoConfig

# ---- knobs -------------------------------------------------------------------------------
REQUESTS = 1000              # messages sent, each with its own RequestId
SAME_NAME_PAIRS = 50         # pairs of different RequestIds carrying the same Name
MAX_RECEIVE_COUNT = 5        # the function's MAX_RECEIVE_COUNT = the redrive maxReceiveCount
FUNCTION_TIMEOUT_S = 10      # Lambda function timeout; the function starts a message only with
                             # CHIME_TIMEOUT_MS + its reply budget left (src/sqs.rs, has_time)
VISIBILITY_TIMEOUT_S = 12    # > the function timeout, so a killed holder's record has expired
CHIME_TIMEOUT_MS = 1000      # the function's Chime timeout
WITHHOLD_MS = 1500           # an after-commit "withheld" answer comes later than that
LATE_COMMIT_MS = 2500        # a late commit lands this long after the request (> the timeout)
COMMIT_HORIZON_MS = 4000     # CHIME_COMMIT_HORIZON_MS: > LATE_COMMIT_MS less the timeout, and
                             # < VISIBILITY_TIMEOUT_S, so a redelivery comes after it
FORBIDDEN_AT_S, FORBIDDEN_S = 20, 4  # operator error: 403 on every Chime call for 4 s, from 20 s in
OPERATOR_ERROR_AFTER_CALLS = 300  # ... and once chime-local has answered this many calls
LATENCY_MS, JITTER_MS = 20, 30   # chime-local latency: 20-50 ms per call
FAULTS = {                   # per Chime request (chime-local's fault engine)
    "throttle_rate": 0.20,
    "unavailable_rate": 0.05, "failure_rate": 0.05,             # 10 % 5xx before the commit
    "after_commit_failure_rate": 0.03, "after_commit_unavailable_rate": 0.03,
    "after_commit_reset_rate": 0.02, "after_commit_withhold_rate": 0.02,  # 10 % after it
    "late_commit_rate": 0.03,                                    # 3 % commit late
}
BATCH_SIZE = 10              # messages per invocation
CONCURRENCY = 4              # esm-local pollers (execution environments)
KILL_RATE = 0.02             # per invocation: a SIGKILL is scheduled ...
KILL_WINDOW_MS = 250         # ... after a uniform 0..this delay; ~2 % of invocations die
SEED = 9                     # chime-local's faults and esm-local's kill draws
DEADLINE_S = 420             # bound on the wait for the queue to drain
# -------------------------------------------------------------------------------------------

REGION = "us-east-1"
FINAL = {"Created", "Rejected"}


def log(msg):
    print(f"soak: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(name, port, proc, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"soak: {name} exited at start (status {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"soak: {name} did not listen on port {port} within {seconds}s")


def http_json(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


class Processes:
    """Everything started here, stopped (TERM, then KILL) on exit."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, **kw):
        proc = subprocess.Popen(argv, **kw)
        self.procs.append((name, proc))
        return proc

    def stop_all(self):
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def start_chime_local(args, procs, out):
    proc = procs.start("chime-local", [
        args.chime_local, "--port", "0", "--seed", str(args.seed),
        "--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS),
    ], stdout=subprocess.PIPE, stderr=open(os.path.join(out, "chime-local.log"), "w"), text=True)
    line = proc.stdout.readline().strip()
    prefix = "chime-local listening on "
    if not line.startswith(prefix):
        sys.exit(f"soak: chime-local did not start: {line!r} (see {out}/chime-local.log)")
    url = line[len(prefix):]
    faults = dict(FAULTS, latency_ms=LATENCY_MS, jitter_ms=JITTER_MS, withhold_ms=args.withhold_ms,
                  late_commit_ms=LATE_COMMIT_MS, seed=args.seed)
    try:
        http_json("POST", f"{url}/_chime-local/faults", faults)
        after_commit = True
    except urllib.error.HTTPError as err:
        # chime-local without after-commit faults (before branch `chimelocal` lands).
        log(f"WARNING: chime-local refused the after-commit faults ({err.read().decode()[:200]}); "
            "running with before-commit faults only")
        before = {k: v for k, v in faults.items()
                  if not k.startswith(("after_commit", "late_commit")) and k != "withhold_ms"}
        http_json("POST", f"{url}/_chime-local/faults", before)
        after_commit = False
    return url, after_commit


def operator_error(url, faults, at_s, for_s, stop):
    """From `at_s` seconds in, every Chime call answers 403 (ForbiddenException: the role may
    not call Chime) for `for_s` seconds; then the usual faults again (the RNG goes on: no seed)."""
    if stop.wait(at_s):
        return
    # Mid-run means while Chime is being called: on a loaded machine the first batches can
    # come later than `at_s`, so wait for traffic too (bounded by the run's stop event).
    while http_json("GET", f"{url}/_chime-local/stats").get("total", 0) < OPERATOR_ERROR_AFTER_CALLS:
        if stop.wait(0.5):
            return
    log(f"operator error: 403 on every Chime call for {for_s}s")
    http_json("POST", f"{url}/_chime-local/faults",
              dict(faults, fail_next=["ForbiddenException"] * 20000, seed=None))
    stop.wait(for_s)
    http_json("POST", f"{url}/_chime-local/faults", dict(faults, seed=None))
    log("operator error fixed")


def start_moto(args, procs, out, name):
    port = free_port()
    proc = procs.start(name, [args.moto_server, "-H", "127.0.0.1", "-p", str(port)],
                       stdout=open(os.path.join(out, f"{name}.log"), "w"), stderr=subprocess.STDOUT)
    wait_port(name, port, proc)
    return f"http://127.0.0.1:{port}"


def clients(sqs_url, ddb_url):
    kw = dict(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing",
              config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}))
    return boto3.client("sqs", endpoint_url=sqs_url, **kw), boto3.client("dynamodb", endpoint_url=ddb_url, **kw)


def create_resources(sqs, ddb, run):
    dlq = sqs.create_queue(QueueName=f"soak-{run}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    requests = sqs.create_queue(QueueName=f"soak-{run}-requests", Attributes={
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
    })["QueueUrl"]
    replies = sqs.create_queue(QueueName=f"soak-{run}-replies")["QueueUrl"]
    table = f"soak-{run}-idempotency"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    return requests, dlq, replies, table


def plan_requests(run, n, pairs):
    """RequestId -> Name; the first 2*pairs requests form same-name pairs."""
    plan = {}
    for i in range(n):
        name = f"Soak {run} pair {i // 2}" if i < 2 * pairs else f"Soak {run} {i}"
        plan[f"soak-{run}-{i:05d}"] = name
    return plan


def send_requests(sqs, queue, plan):
    items = list(plan.items())
    for start in range(0, len(items), 10):
        entries = [{"Id": str(j), "MessageBody": json.dumps({"Name": name, "RequestId": rid})}
                   for j, (rid, name) in enumerate(items[start:start + 10])]
        failed = sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed", [])
        if failed:
            sys.exit(f"soak: SendMessageBatch failed: {failed}")


def queue_depth(sqs, queue):
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def drain(sqs, queue, sink, wait=1):
    """Receives (and deletes) until an empty receive; appends parsed bodies to sink."""
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                  VisibilityTimeout=60).get("Messages", [])
        if not got:
            return
        for m in got:
            try:
                sink.append(json.loads(m["Body"]))
            except ValueError:
                sink.append({"Unparseable": m["Body"]})
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])


def pump(stream, path, echo):
    with open(path, "w") as f:
        for line in stream:
            f.write(line)
            f.flush()
            if echo(line):
                print(line, end="", flush=True)


def check(plan, replies, dlq_bodies, accounts):
    """The verdict: counters and violations (each a list of human-readable lines)."""
    by_rid = collections.defaultdict(list)
    for r in replies:
        by_rid[r.get("RequestId")].append(r)
    in_dlq = {b.get("RequestId") for b in dlq_bodies}
    account_ids = {a["AccountId"] for a in accounts}
    accounts_by_name = collections.Counter(a["Name"] for a in accounts)
    rids_by_name = collections.defaultdict(list)
    for rid, name in plan.items():
        rids_by_name[name].append(rid)

    v = collections.defaultdict(list)
    endings = collections.Counter()
    created_by_rid = {}
    for rid in plan:
        rs = by_rid.get(rid, [])
        outcomes = {(r.get("Status"), r.get("AccountId")) for r in rs}
        statuses = [r.get("Status") for r in rs]
        final = [o for o in outcomes if o[0] in FINAL]
        if len(final) > 1:
            v["inconsistent replies"].append(f"{rid}: {sorted(map(str, outcomes))}")
        if "Failed" in statuses and any(s == "Created" for s in statuses):
            v["Created after Failed"].append(rid)
        if final:
            endings[final[0][0]] += 1
            if final[0][0] == "Created":
                created_by_rid[rid] = final[0][1]
        elif "Failed" in statuses and rid in in_dlq:
            endings["Failed+DLQ"] += 1
        else:
            endings["lost"] += 1
            v["lost"].append(f"{rid}: replies {statuses}, in DLQ: {rid in in_dlq}")
        for r in rs:
            if r.get("Status") == "Created" and r.get("AccountId") not in account_ids:
                v["reply names a missing account"].append(f"{rid}: {r.get('AccountId')}")

    duplicates = 0
    for name, rids in rids_by_name.items():
        have = accounts_by_name.get(name, 0)
        duplicates += max(0, have - len(rids))
        created = [created_by_rid[r] for r in rids if r in created_by_rid]
        if have > len(created):
            v["accounts no Created reply names"].append(f"{rids}: {have} accounts, {len(created)} Created")
        if len(rids) == 2 and len(created) == 2 and created[0] == created[1]:
            v["same-name pair adopted one account"].append(f"{rids}: {created[0]}")
    foreign = [a for a in accounts if a["Name"] not in rids_by_name]
    if foreign:
        v["accounts of unknown names"].append(f"{len(foreign)}")
    return endings, duplicates, v


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target-dir", default="target")
    p.add_argument("--function", help="default: TARGET/release/chime-onboard")
    p.add_argument("--chime-local", help="default: TARGET/release/chime-local")
    p.add_argument("--esm-local", help="default: TARGET/debug/esm-local")
    # moto with scripts/moto_fast.py's fixes: plain moto copies the whole table on every
    # TransactWriteItems (each create's completion), which would dominate the run.
    p.add_argument("--moto-server", default=os.path.join("scripts", "moto-server"))
    p.add_argument("--out", default=".soak", help="logs and the summary go here")
    p.add_argument("--requests", type=int, default=REQUESTS)
    p.add_argument("--pairs", type=int, default=SAME_NAME_PAIRS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--concurrency", type=int, default=CONCURRENCY)
    p.add_argument("--kill-rate", type=float, default=KILL_RATE)
    p.add_argument("--kill-window-ms", type=int, default=KILL_WINDOW_MS)
    p.add_argument("--withhold-ms", type=int, default=WITHHOLD_MS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--deadline", type=float, default=DEADLINE_S, help="seconds to wait for the drain")
    args = p.parse_args()
    args.function = args.function or os.path.join(args.target_dir, "release", "chime-onboard")
    args.chime_local = args.chime_local or os.path.join(args.target_dir, "release", "chime-local")
    args.esm_local = args.esm_local or os.path.join(args.target_dir, "debug", "esm-local")
    for path in (args.function, args.chime_local, args.esm_local, args.moto_server):
        if not os.access(path, os.X_OK):
            sys.exit(f"soak: {path} not found: run `make soak` (it builds what it needs)")
    if 2 * args.pairs > args.requests:
        sys.exit("soak: --pairs needs 2 requests each")
    os.makedirs(args.out, exist_ok=True)
    for old in ("function.log", "batches.jsonl"):
        if os.path.exists(os.path.join(args.out, old)):
            os.remove(os.path.join(args.out, old))

    started = time.monotonic()
    run = uuid.uuid4().hex[:8]
    procs = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: terminated"))
    try:
        chime_url, after_commit = start_chime_local(args, procs, args.out)
        sqs_url = start_moto(args, procs, args.out, "moto-sqs")
        ddb_url = start_moto(args, procs, args.out, "moto-dynamodb")
        sqs, ddb = clients(sqs_url, ddb_url)
        requests, dlq, replies_q, table = create_resources(sqs, ddb, run)
        plan = plan_requests(run, args.requests, args.pairs)
        send_requests(sqs, requests, plan)
        log(f"{len(plan)} requests sent ({args.pairs} same-name pairs); chime-local {chime_url}, "
            f"faults {json.dumps(FAULTS if after_commit else 'before-commit only')}")

        summary_path = os.path.join(args.out, "esm-summary.json")
        esm = procs.start("esm-local", [
            args.esm_local, "--queue-url", requests, "--endpoint-url", sqs_url,
            "--function", args.function, "--function-name", "chime-onboard",
            "--timeout-secs", str(FUNCTION_TIMEOUT_S), "--batch-size", str(args.batch_size),
            "--concurrency", str(args.concurrency), "--wait-secs", "1",
            "--kill-rate", str(args.kill_rate), "--kill-window-ms", str(args.kill_window_ms),
            "--seed", str(args.seed), "--max-seconds", str(args.deadline + 60), "--status-secs", "10",
            "--function-log", os.path.join(args.out, "function.log"), "--summary-json", summary_path,
            "--trace", os.path.join(args.out, "batches.jsonl"),
            "--env", f"AWS_ENDPOINT_URL_CHIME={chime_url}", "--env", f"AWS_ENDPOINT_URL_SQS={sqs_url}",
            "--env", f"AWS_ENDPOINT_URL_DYNAMODB={ddb_url}", "--env", f"REPLY_QUEUE_URL={replies_q}",
            "--env", f"IDEMPOTENCY_TABLE={table}", "--env", f"MAX_RECEIVE_COUNT={MAX_RECEIVE_COUNT}",
            "--env", f"CHIME_TIMEOUT_MS={CHIME_TIMEOUT_MS}", "--env", "MAX_CONCURRENCY=10",
            "--env", f"CHIME_COMMIT_HORIZON_MS={COMMIT_HORIZON_MS}",
        ], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=pump, daemon=True, args=(
            esm.stdout, os.path.join(args.out, "esm-local.log"),
            lambda line: "returned to the queue" not in line)).start()

        live_faults = http_json("GET", f"{chime_url}/_chime-local/faults")
        live_faults.pop("fail_next", None)
        stop = threading.Event()
        threading.Thread(target=operator_error, daemon=True, args=(
            chime_url, live_faults, FORBIDDEN_AT_S, FORBIDDEN_S, stop)).start()

        replies = []
        end = time.monotonic() + args.deadline
        drained = False
        while time.monotonic() < end:
            drain(sqs, replies_q, replies, wait=0)
            if esm.poll() is not None:
                log(f"esm-local exited early (status {esm.returncode}); see {args.out}/esm-local.log")
                break
            if queue_depth(sqs, requests) == 0:
                drained = True
                break
            time.sleep(1)
        if not drained:
            log(f"the request queue did not drain within {args.deadline:.0f}s")
        stop.set()
        esm.terminate()
        try:
            esm.wait(timeout=FUNCTION_TIMEOUT_S + 15)
        except subprocess.TimeoutExpired:
            esm.kill()
        drain(sqs, replies_q, replies, wait=1)
        dlq_bodies = []
        drain(sqs, dlq, dlq_bodies, wait=1)
        accounts = http_json("GET", f"{chime_url}/_chime-local/accounts")["Accounts"]
        stats = http_json("GET", f"{chime_url}/_chime-local/stats")
        wall = time.monotonic() - started
    finally:
        procs.stop_all()

    try:
        with open(summary_path) as f:
            esm_summary = json.load(f)
    except (OSError, ValueError):
        esm_summary = {}
    endings, duplicates, violations = check(plan, replies, dlq_bodies, accounts)
    lost = endings["lost"]
    n = len(plan)
    by_op = stats.get("by_operation", {})
    calls = sum(sum(outcomes.values()) for outcomes in by_op.values())
    creates = sum(by_op.get("CreateAccount", {}).values())
    invocations = esm_summary.get("invocations", 0)
    kills = esm_summary.get("kills", 0)
    reply_statuses = collections.Counter(r.get("Status") for r in replies)

    log(f"wall time {wall:.0f}s (esm-local {esm_summary.get('seconds', 0):.0f}s); after-commit faults: "
        f"{'on' if after_commit else 'OFF (chime-local lacks them)'}")
    log(f"esm-local: " + " ".join(f"{k}={v}" for k, v in esm_summary.items() if k != "seconds"))
    log(f"kills: {kills} of {invocations} invocations ({100 * kills / max(invocations, 1):.1f} %)")
    log(f"chime-local: {calls} calls, {calls / n:.2f} per request ({creates / n:.2f} CreateAccount); "
        f"by operation {json.dumps(by_op, sort_keys=True)}")
    if "after_commit" in stats:
        log(f"chime-local after-commit faults: {json.dumps(stats['after_commit'], sort_keys=True)}")
    injected = {k: v for k, v in sorted(stats.get("by_outcome", {}).items()) if k != "Success"}
    log(f"faults injected (chime-local outcomes): {json.dumps(injected)}; late commits "
        f"{injected.get('CommittedLate', 0)}, operator errors (403) {injected.get('ForbiddenException', 0)}")
    log(f"endings: {dict(endings)}; replies {dict(reply_statuses)} ({len(replies)} in all); "
        f"DLQ {len(dlq_bodies)}")
    for kind, items in sorted(violations.items()):
        log(f"VIOLATION {kind}: {len(items)}; e.g. {items[:3]}")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"requests": n, "accounts": len(accounts), "duplicates": duplicates, "lost": lost,
                   "wall_seconds": round(wall, 1), "chime_calls_per_request": round(calls / n, 3),
                   "create_calls_per_request": round(creates / n, 3), "kills": kills,
                   "invocations": invocations, "after_commit_faults": after_commit,
                   "endings": endings, "violations": {k: len(x) for k, x in violations.items()},
                   "esm": esm_summary, "chime_stats": stats}, f, indent=1)
    print(f"soak: {n} requests, {len(accounts)} accounts, {duplicates} duplicates, {lost} lost", flush=True)
    return 1 if duplicates or lost or violations else 0


if __name__ == "__main__":
    sys.exit(main())
