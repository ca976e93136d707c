#!/usr/bin/env python3
"""The AWS resources `make dev` wires around the function, in moto_server.

  setup   creates the request queue (+ DLQ, redrive after --max-receive-count
          receives, visibility timeout above the function's 30 s), the reply queue
          and the idempotency table, and prints their names as KEY=VALUE lines.

The event source mapping itself is esm-local (crates/lambda-local), started by
scripts/dev.sh.
"""
import argparse
import json
import sys

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
        "VisibilityTimeout": "35",
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="moto_server URL")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--max-receive-count", type=int, default=5)
    args = parser.parse_args()
    {"setup": setup}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
