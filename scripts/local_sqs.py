#!/usr/bin/env python3
"""Local stand-ins for what AWS wires around the function, for `make dev`.

  setup   creates the request queue (+ DLQ), the reply queue and the idempotency
          table in moto_server, and prints their names as KEY=VALUE lines;
  poll    a local SQS event source mapping: long-polls the request queue, invokes
          the function through `cargo lambda watch` with a real SQS event, and
          deletes what the function did not list in batchItemFailures; messages
          received MAX_RECEIVE_COUNT times move to the DLQ through moto's redrive.
"""
import argparse
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request

import boto3

REGION = "us-east-1"


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name=REGION,
              aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("sqs", **kw), boto3.client("dynamodb", **kw)


def setup(args):
    sqs, ddb = clients(args.endpoint)
    dlq = sqs.create_queue(QueueName="chime-onboard-requests-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    requests = sqs.create_queue(QueueName="chime-onboard-requests", Attributes={
        "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(args.max_receive_count)}),
    })["QueueUrl"]
    replies = sqs.create_queue(QueueName="chime-onboard-replies")["QueueUrl"]
    table = "chime-onboard-idempotency"
    if table not in ddb.list_tables()["TableNames"]:
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    print(f"REQUEST_QUEUE_URL={requests}")
    print(f"REQUEST_DLQ_URL={dlq}")
    print(f"REPLY_QUEUE_URL={replies}")
    print(f"IDEMPOTENCY_TABLE={table}")


def record(message, queue_arn):
    attributes = {k: v for k, v in message.get("Attributes", {}).items()}
    message_attributes = {
        name: {"stringValue": value.get("StringValue"), "stringListValues": [], "binaryListValues": [],
               "dataType": value.get("DataType", "String")}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"], "attributes": attributes, "messageAttributes": message_attributes,
        "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    }


def poll(args):
    sqs, _ = clients(args.endpoint)
    arn = sqs.get_queue_attributes(QueueUrl=args.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    invoke = f"http://127.0.0.1:{args.invoke_port}/2015-03-31/functions/{args.function}/invocations"
    print(f"local SQS poller: {args.queue} -> {args.function}", flush=True)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=args.queue, MaxNumberOfMessages=10, WaitTimeSeconds=5,
                                  AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            continue
        event = {"Records": [record(m, arn) for m in messages]}
        request = urllib.request.Request(invoke, data=json.dumps(event).encode(),
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                result = json.loads(response.read() or b"{}")
        except (urllib.error.URLError, ValueError) as err:
            print(f"local SQS poller: invoke failed ({err}); messages return after the visibility timeout", flush=True)
            continue
        failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=args.queue, ReceiptHandle=m["ReceiptHandle"])
        print(f"local SQS poller: batch of {len(messages)}, {len(failed)} to retry", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="moto_server URL")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--max-receive-count", type=int, default=5)
    p = sub.add_parser("poll")
    p.add_argument("--queue", required=True)
    p.add_argument("--function", default="chime-onboard")
    p.add_argument("--invoke-port", type=int, default=9000)
    p.add_argument("--max-seconds", type=float, default=12 * 3600, help="stop after this long")
    args = parser.parse_args()
    {"setup": setup, "poll": poll}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
