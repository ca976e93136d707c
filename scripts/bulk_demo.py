#!/usr/bin/env python3
"""`make bulk-demo N=...`: the whole bulk path on loopback, checked end to end.

  onboard-bulk -> request queue (moto) -> esm-local -> chime-onboard -> chime-local
               <- reply queue (moto)   <-----------------------------'

Generates N unique names in several scripts (about 2 % invalid), starts chime-local with a
token-bucket rate limit, one moto_server for SQS and another for DynamoDB (the idempotency
table), esm-local running the function binary, runs `onboard-bulk submit`, then checks the
report against chime-local's accounts and prints

  bulk: <N> rows, <C> created, <R> rejected, <F> failed, <D> duplicates, <U> unanswered

and the sustained creation rate as a fraction of the rate limit. Exit status 0 only when
the report matches: R = the invalid names generated, C + R = N, nothing failed, no
duplicate account, nothing unanswered.

`--runs R` (make bulk-demo RUNS=R) starts R submits at once against the one stack, each
with names of its own; the stack's reply queue has the template's redrive policy
(maxReceiveCount 5 into a reply DLQ), as has the request queue. Each run replies on a
queue of its own (onboard-bulk's per-run reply queue under the allow-listed prefix). It
prints one `bulk:` line per run and, last,

  bulk-demo: <R> runs, <N> rows, <C> created, <J> rejected, <F> failed, <D> duplicates, <U> unanswered, <L> dead-lettered

where N counts all runs and L the messages in both DLQs.
"""
import argparse
import csv
import datetime
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request

import boto3

REGION = "us-east-1"
CREDS = dict(aws_access_key_id="testing", aws_secret_access_key="testing")

# Words in several scripts; names are "<word> <word> <index>", unique by the index.
WORDS = [
    ["Acme", "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Umbrella"],
    ["Zürich", "Société", "Ærø", "Łódź", "Málaga", "Ñandú", "Øresund"],
    ["Москва", "Ромашка", "Сибирь", "Волга"],
    ["Αθήνα", "Ολυμπος", "Δέλτα"],
    ["東京", "株式会社", "大阪", "北京"],
    ["القاهرة", "شركة", "دبي"],
    ["नमस्ते", "दिल्ली", "मुंबई"],
    ["서울", "부산"],
    ["🚀 Rocket", "🌍 Earth"],
]
# Invalid on purpose, each with the code the name rule gives it.
INVALID = [
    lambda i: "   ",                        # NameEmpty
    lambda i: f"Tab\tCorp {i}",             # NameInvalidCharacter
    lambda i: "x" * 101 + str(i),           # NameTooLong
    lambda i: f"Bell\u0007 {i}",            # NameInvalidCharacter
    lambda i: f"Line\u2028Sep {i}",         # NameInvalidCharacter
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(name, port, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bulk-demo: {name} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"bulk-demo: {name} did not open port {port}")


def generate(n, invalid_share, seed, tag=""):
    """N names, unique by index (and by `tag`, for several runs), about invalid_share bad."""
    rng = random.Random(seed)
    names, invalid = [], 0
    for i in range(n):
        if rng.random() < invalid_share:
            names.append(rng.choice(INVALID)(i))
            invalid += 1
        else:
            script = WORDS[i % len(WORDS)]
            names.append(f"{rng.choice(script)} {rng.choice(script)} {tag}{i}")
    return names, invalid


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def summary_of(stdout):
    lines = [l for l in (stdout or "").strip().splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def queue_depth(sqs, url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="rows per run")
    ap.add_argument("--runs", type=int, default=1, help="concurrent runs against one stack")
    ap.add_argument("--rps", type=float, default=30.0)
    ap.add_argument("--burst", type=int, default=10)
    ap.add_argument("--invalid-share", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--esm-concurrency", type=int, default=2)
    ap.add_argument("--max-concurrency", type=int, default=2)
    ap.add_argument("--visibility", type=int, default=10,
                    help="the request queue's visibility timeout, also the function's timeout")
    ap.add_argument("--max-receive-count", type=int, default=1000,
                    help="the request queue's redrive maxReceiveCount (and MAX_RECEIVE_COUNT)")
    ap.add_argument("--reply-max-receive-count", type=int, default=5,
                    help="the stack's reply queue's redrive maxReceiveCount (the template's default)")
    ap.add_argument("--max-in-flight", type=int, default=200,
                    help="onboard-bulk's window: moto's ReceiveMessage slows with the queue's depth")
    ap.add_argument("--idle-timeout", type=int, default=30)
    ap.add_argument("--dir", default=".bulk-demo")
    ap.add_argument("--bin", default="target/debug")
    ap.add_argument("--moto", default=".venv/bin/moto_server")
    ap.add_argument("--plain-moto", action="store_true",
                    help="run moto_server as it is, without scripts/moto_fast.py's fixes")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds before giving up")
    args = ap.parse_args()
    if not 1 <= args.n <= 1_000_000:
        sys.exit("bulk-demo: N must be 1..=1000000")
    if not 1 <= args.runs <= 8:
        sys.exit("bulk-demo: RUNS must be 1..=8")

    os.makedirs(args.dir, exist_ok=True)
    # One file per run; with one run, the names and the file are as they always were.
    runs = []
    for r in range(args.runs):
        stem = "names" if args.runs == 1 else f"names-{r + 1}"
        for old in (f"{stem}.report.csv", f"{stem}.report.state.json"):
            if os.path.exists(os.path.join(args.dir, old)):
                os.remove(os.path.join(args.dir, old))
        tag = "" if args.runs == 1 else f"r{r + 1}-"
        names, invalid = generate(args.n, args.invalid_share, args.seed + r, tag)
        path = os.path.join(args.dir, f"{stem}.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["Name"])
            for name in names:
                w.writerow([name])
        runs.append({"stem": stem, "path": path, "invalid": invalid,
                     "state": os.path.join(args.dir, f"{stem}.report.state.json"),
                     "report": os.path.join(args.dir, f"{stem}.report.csv")})

    procs = []

    def start(name, argv, env=None):
        log = open(os.path.join(args.dir, f"{name}.log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append(p)
        return p

    prefix = "bulk-demo-bulk-"
    try:
        chime_port, sqs_port, ddb_port = free_port(), free_port(), free_port()
        chime = start("chime-local", [f"{args.bin}/chime-local", "--port", str(chime_port),
                                      "--rate-limit-rps", str(args.rps),
                                      "--rate-limit-burst", str(args.burst)])
        if args.plain_moto:
            moto = [args.moto]
        else:
            # The venv's python (the one beside moto_server) with moto_fast's fixes.
            moto = [os.path.join(os.path.dirname(args.moto), "python"),
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_fast.py")]
        moto_sqs = start("moto-sqs", moto + ["-H", "127.0.0.1", "-p", str(sqs_port)])
        moto_ddb = start("moto-dynamodb", moto + ["-H", "127.0.0.1", "-p", str(ddb_port)])
        wait_port("chime-local", chime_port, chime)
        wait_port("moto (SQS)", sqs_port, moto_sqs)
        wait_port("moto (DynamoDB)", ddb_port, moto_ddb)
        sqs_url, ddb_url = f"http://127.0.0.1:{sqs_port}", f"http://127.0.0.1:{ddb_port}"
        chime_url = f"http://127.0.0.1:{chime_port}"

        sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name=REGION, **CREDS)
        ddb = boto3.client("dynamodb", endpoint_url=ddb_url, region_name=REGION, **CREDS)

        def with_dlq(name, max_receive_count, attributes):
            dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn,
                                                      "maxReceiveCount": str(max_receive_count)})
            return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"], dlq

        # The stack's queues as the template makes them: both with a redrive policy.
        requests, requests_dlq = with_dlq("bulk-requests", args.max_receive_count,
                                          {"VisibilityTimeout": str(args.visibility)})
        replies, replies_dlq = with_dlq("bulk-replies", args.reply_max_receive_count,
                                        {"VisibilityTimeout": "60"})
        ddb.create_table(TableName="bulk-idempotency", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        # The template's allow-list: the stack's reply queue and the per-run prefix.
        allowed = f"{replies},{replies.rsplit('/', 1)[0]}/{prefix}*"

        env_file = os.path.join(args.dir, "function.env")
        with open(env_file, "w") as f:
            f.write("\n".join([
                f"AWS_REGION={REGION}", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
                f"AWS_ENDPOINT_URL_CHIME={chime_url}", f"AWS_ENDPOINT_URL_SQS={sqs_url}",
                f"AWS_ENDPOINT_URL_DYNAMODB={ddb_url}", f"REPLY_QUEUE_URL={replies}",
                f"ALLOWED_REPLY_QUEUES={allowed}",
                "IDEMPOTENCY_TABLE=bulk-idempotency", f"MAX_CONCURRENCY={args.max_concurrency}",
                f"MAX_RECEIVE_COUNT={args.max_receive_count}", "RUST_LOG=warn",
                "AWS_LAMBDA_LOG_LEVEL=WARN", ""]))
        esm_env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                       AWS_REGION=REGION)
        start("esm-local", [f"{args.bin}/esm-local", "--queue-url", requests, "--endpoint-url", sqs_url,
                            "--function", f"{args.bin}/chime-onboard", "--env-file", env_file,
                            "--concurrency", str(args.esm_concurrency),
                            # Lambda refuses a mapping whose queue hides a message for less
                            # than the function's timeout: the timeout is the visibility.
                            "--timeout-secs", str(args.visibility),
                            "--wait-secs", "1", "--status-secs", "10",
                            "--function-log", os.path.join(args.dir, "function.log")], env=esm_env)

        total_invalid = sum(r["invalid"] for r in runs)
        print(f"bulk-demo: {args.runs} x {args.n} names ({total_invalid} invalid) in {args.dir}; "
              f"chime-local rate limit {args.rps:g}/s (burst {args.burst}); esm-local "
              f"x{args.esm_concurrency}, MAX_CONCURRENCY={args.max_concurrency}", flush=True)
        cli_env = dict(esm_env)
        cli_env.pop("AWS_PROFILE", None)
        started = time.monotonic()
        common = ["--endpoint-url", sqs_url, "--json", "--idle-timeout", str(args.idle_timeout)]
        for r in runs:
            out = open(os.path.join(args.dir, f"{r['stem']}.submit.json"), "w+")
            r["out"] = out
            r["proc"] = subprocess.Popen(
                [f"{args.bin}/onboard-bulk", "submit", r["path"], "--queue", requests,
                 "--reply-queue-prefix", prefix, "--max-in-flight", str(args.max_in_flight)] + common,
                env=cli_env, stdout=out, text=True)
        for r in runs:
            code = r["proc"].wait(timeout=args.timeout)
            r["out"].seek(0)
            r["summary"] = summary_of(r["out"].read())
            r["out"].close()
            print(f"bulk-demo: onboard-bulk submit {r['stem']} exited {code} after "
                  f"{time.monotonic() - started:.1f} s: {r['summary'].get('unanswered')} unanswered",
                  flush=True)
        # What a user does when rows stay unanswered: resume (same RequestIds, so the
        # function's idempotency table answers them without a second account).
        resumes = 0
        for r in runs:
            while r["summary"].get("unanswered") and resumes < 3 * len(runs):
                resumes += 1
                cli = subprocess.run([f"{args.bin}/onboard-bulk", "resume", r["state"]] + common,
                                     env=cli_env, stdout=subprocess.PIPE, text=True, timeout=args.timeout)
                r["summary"] = summary_of(cli.stdout)
                print(f"bulk-demo: onboard-bulk resume {r['stem']} exited {cli.returncode}: "
                      f"{r['summary'].get('unanswered')} unanswered", flush=True)
        elapsed = time.monotonic() - started

        with urllib.request.urlopen(f"{chime_url}/_chime-local/accounts", timeout=30) as resp:
            accounts = json.load(resp)["Accounts"]
        with urllib.request.urlopen(f"{chime_url}/_chime-local/stats", timeout=30) as resp:
            stats = json.load(resp)
        with open(os.path.join(args.dir, "chime-local-accounts.json"), "w", encoding="utf-8") as f:
            json.dump({"Accounts": accounts, "stats": stats}, f, ensure_ascii=False)
        for r in runs:
            with open(r["report"], newline="", encoding="utf-8") as f:
                r["rows"] = list(csv.DictReader(f))
        dead_lettered = queue_depth(sqs, requests_dlq) + queue_depth(sqs, replies_dlq)
        stack_replies = queue_depth(sqs, replies)
        left_queues = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    # The reports against chime-local.
    by_id = {a["AccountId"]: a for a in accounts}
    names_count = {}
    for a in accounts:
        names_count[a["Name"]] = names_count.get(a["Name"], 0) + 1
    duplicates = 0
    problems = []
    totals = {"Created": 0, "Rejected": 0, "Failed": 0, "Unanswered": 0}
    for r in runs:
        report = r["rows"]
        dup = len(report) - len({row["Row"] for row in report})
        counts = {"Created": 0, "Rejected": 0, "Failed": 0, "Unanswered": 0}
        for row in report:
            counts[row["Status"]] = counts.get(row["Status"], 0) + 1
            if row["Status"] == "Created":
                a = by_id.get(row["AccountId"])
                if a is None or a["Name"] != row["Name"].strip():
                    problems.append(f"{r['stem']} row {row['Row']}: AccountId {row['AccountId']} "
                                    "is not its account in chime-local")
        if counts["Rejected"] != r["invalid"]:
            problems.append(f"{r['stem']}: {counts['Rejected']} rejected rows for {r['invalid']} invalid names generated")
        if counts["Created"] + counts["Rejected"] != args.n or len(report) != args.n:
            problems.append(f"{r['stem']}: created + rejected = {counts['Created'] + counts['Rejected']}, "
                            f"report rows {len(report)}, N = {args.n}")
        if r["summary"].get("conflicts"):
            problems.append(f"{r['stem']}: conflicts")
        # Accounts beyond one for a name of this run, and rows reported twice.
        own = {row["Name"].strip() for row in report}
        r["duplicates"] = dup + sum(names_count[n] - 1 for n in own if names_count.get(n, 0) > 1)
        duplicates += r["duplicates"]
        for k in totals:
            totals[k] += counts[k]
        print(f"bulk: {args.n} rows, {counts['Created']} created, {counts['Rejected']} rejected, "
              f"{counts['Failed']} failed, {r['duplicates']} duplicates, {counts['Unanswered']} unanswered")
    if len(accounts) != totals["Created"]:
        problems.append(f"chime-local holds {len(accounts)} accounts for {totals['Created']} created rows")
    if dead_lettered:
        problems.append(f"{dead_lettered} messages in the DLQs")
    if stack_replies:
        problems.append(f"{stack_replies} messages on the stack's reply queue (a reply went astray)")
    if left_queues:
        problems.append(f"per-run reply queues left behind: {left_queues}")
    times = sorted(parse_time(a["CreatedTimestamp"]) for a in accounts if a.get("CreatedTimestamp"))
    if len(times) >= 20:
        # Steady state: from the 10th to the 90th percentile of chime-local's creation
        # times, so neither the ramp-up nor the tail (last replies, idle wait) counts.
        lo, hi = len(times) // 10, len(times) - 1 - len(times) // 10
        sustained = (hi - lo) / max(times[hi] - times[lo], 1e-9)
        overall = (len(times) - 1) / max(times[-1] - times[0], 1e-9)
        create = stats.get("by_operation", {}).get("CreateAccount", {})
        throttled = create.get("ThrottledClientException", 0)
        print(f"rate: {sustained:.1f} accounts/s sustained = {sustained / args.rps:.2f} of chime-local's "
              f"{args.rps:g}/s rate limit (creations per second between the 10th and the 90th "
              f"percentile of chime-local's CreatedTimestamps); {overall:.1f}/s first to last "
              f"creation; {throttled} CreateAccount calls throttled; onboard-bulk {elapsed:.1f} s "
              f"({resumes} resume{'s' if resumes != 1 else ''})")
    for p in problems[:10]:
        print(f"bulk-demo: MISMATCH {p}")
    if len(runs) > 1:
        print(f"bulk-demo: {len(runs)} runs, {args.n * len(runs)} rows, {totals['Created']} created, "
              f"{totals['Rejected']} rejected, {totals['Failed']} failed, {duplicates} duplicates, "
              f"{totals['Unanswered']} unanswered, {dead_lettered} dead-lettered")
    ok = not problems and totals["Failed"] == 0 and duplicates == 0 and totals["Unanswered"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
