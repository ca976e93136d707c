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


def generate(n, invalid_share, seed):
    rng = random.Random(seed)
    names, invalid = [], 0
    for i in range(n):
        if rng.random() < invalid_share:
            names.append(rng.choice(INVALID)(i))
            invalid += 1
        else:
            script = WORDS[i % len(WORDS)]
            names.append(f"{rng.choice(script)} {rng.choice(script)} {i}")
    return names, invalid


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rps", type=float, default=30.0)
    ap.add_argument("--burst", type=int, default=10)
    ap.add_argument("--invalid-share", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--esm-concurrency", type=int, default=2)
    ap.add_argument("--max-concurrency", type=int, default=2)
    ap.add_argument("--visibility", type=int, default=10,
                    help="the request queue's visibility timeout, also the function's timeout")
    ap.add_argument("--max-receive-count", type=int, default=1000)
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

    os.makedirs(args.dir, exist_ok=True)
    for old in ("names.report.csv", "names.report.state.json"):
        if os.path.exists(os.path.join(args.dir, old)):
            os.remove(os.path.join(args.dir, old))
    names, invalid = generate(args.n, args.invalid_share, args.seed)
    path = os.path.join(args.dir, "names.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Name"])
        for name in names:
            w.writerow([name])

    procs = []

    def start(name, argv, env=None):
        log = open(os.path.join(args.dir, f"{name}.log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append(p)
        return p

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
        dlq = sqs.create_queue(QueueName="bulk-requests-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        requests = sqs.create_queue(QueueName="bulk-requests", Attributes={
            "VisibilityTimeout": str(args.visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(args.max_receive_count)}),
        })["QueueUrl"]
        replies = sqs.create_queue(QueueName="bulk-replies")["QueueUrl"]
        ddb.create_table(TableName="bulk-idempotency", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])

        env_file = os.path.join(args.dir, "function.env")
        with open(env_file, "w") as f:
            f.write("\n".join([
                f"AWS_REGION={REGION}", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
                f"AWS_ENDPOINT_URL_CHIME={chime_url}", f"AWS_ENDPOINT_URL_SQS={sqs_url}",
                f"AWS_ENDPOINT_URL_DYNAMODB={ddb_url}", f"REPLY_QUEUE_URL={replies}",
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

        print(f"bulk-demo: {args.n} names ({invalid} invalid) in {path}; chime-local rate limit "
              f"{args.rps:g}/s (burst {args.burst}); esm-local x{args.esm_concurrency}, "
              f"MAX_CONCURRENCY={args.max_concurrency}", flush=True)
        cli_env = dict(esm_env)
        cli_env.pop("AWS_PROFILE", None)
        started = time.monotonic()
        state = os.path.join(args.dir, "names.report.state.json")
        cli = subprocess.run([f"{args.bin}/onboard-bulk", "submit", path, "--queue", requests,
                              "--reply-queue", replies, "--endpoint-url", sqs_url, "--json",
                              "--idle-timeout", str(args.idle_timeout),
                              "--max-in-flight", str(args.max_in_flight)],
                             env=cli_env, stdout=subprocess.PIPE, text=True, timeout=args.timeout)
        summary = json.loads(cli.stdout.strip().splitlines()[-1]) if cli.stdout.strip() else {}
        print(f"bulk-demo: onboard-bulk submit exited {cli.returncode} after "
              f"{time.monotonic() - started:.1f} s: {summary.get('unanswered')} unanswered", flush=True)
        # What a user does when rows stay unanswered: resume (same RequestIds, so the
        # function's idempotency table answers them without a second account).
        resumes = 0
        while summary.get("unanswered") and resumes < 3:
            resumes += 1
            cli = subprocess.run([f"{args.bin}/onboard-bulk", "resume", state, "--json",
                                  "--idle-timeout", str(args.idle_timeout)],
                                 env=cli_env, stdout=subprocess.PIPE, text=True, timeout=args.timeout)
            summary = json.loads(cli.stdout.strip().splitlines()[-1]) if cli.stdout.strip() else {}
            print(f"bulk-demo: onboard-bulk resume exited {cli.returncode}: "
                  f"{summary.get('unanswered')} unanswered", flush=True)
        elapsed = time.monotonic() - started

        with urllib.request.urlopen(f"{chime_url}/_chime-local/accounts", timeout=30) as r:
            accounts = json.load(r)["Accounts"]
        with urllib.request.urlopen(f"{chime_url}/_chime-local/stats", timeout=30) as r:
            stats = json.load(r)
        with open(os.path.join(args.dir, "chime-local-accounts.json"), "w", encoding="utf-8") as f:
            json.dump({"Accounts": accounts, "stats": stats}, f, ensure_ascii=False)
        with open(os.path.join(args.dir, "names.report.csv"), newline="", encoding="utf-8") as f:
            report = list(csv.DictReader(f))
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    # The report against chime-local.
    by_id = {a["AccountId"]: a for a in accounts}
    names_count = {}
    for a in accounts:
        names_count[a["Name"]] = names_count.get(a["Name"], 0) + 1
    duplicates = sum(c - 1 for c in names_count.values()) + len(report) - len({r["Row"] for r in report})
    counts = {"Created": 0, "Rejected": 0, "Failed": 0, "Unanswered": 0}
    problems = []
    for r in report:
        counts[r["Status"]] = counts.get(r["Status"], 0) + 1
        if r["Status"] == "Created":
            a = by_id.get(r["AccountId"])
            if a is None or a["Name"] != r["Name"].strip():
                problems.append(f"row {r['Row']}: AccountId {r['AccountId']} is not its account in chime-local")
    if len(accounts) != counts["Created"]:
        problems.append(f"chime-local holds {len(accounts)} accounts for {counts['Created']} created rows")
    if counts["Rejected"] != invalid:
        problems.append(f"{counts['Rejected']} rejected rows for {invalid} invalid names generated")
    if counts["Created"] + counts["Rejected"] != args.n or len(report) != args.n:
        problems.append(f"created + rejected = {counts['Created'] + counts['Rejected']}, report rows {len(report)}, N = {args.n}")

    print(f"bulk: {args.n} rows, {counts['Created']} created, {counts['Rejected']} rejected, "
          f"{counts['Failed']} failed, {duplicates} duplicates, {counts['Unanswered']} unanswered")
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
    if summary.get("conflicts"):
        problems.append("conflicts")
    ok = not problems and counts["Failed"] == 0 and duplicates == 0 and counts["Unanswered"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
