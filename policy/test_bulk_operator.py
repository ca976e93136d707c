"""policy/bulk-operator.json, the IAM policy an onboard-bulk operator needs, checked
against template.yaml's names and against the SQS calls the CLI makes.

The policy's placeholders (`${Partition}`, `${Region}`, `${AccountId}`, `${StackName}`)
are the template's pseudo parameters without `AWS::`; the README shows how to fill them
(`envsubst`). What must agree:
- the request queue: the name CloudFormation generates for `RequestQueue`
  (`<stack>-RequestQueue-<random>`) and the FIFO name the template gives it;
- the per-run reply queues: the prefix of the `BulkReplyQueuePrefix` output is the one
  the function admits in `ALLOWED_REPLY_QUEUES`, the one its role may send to, and the
  one the operator may create, read and delete queues under;
- the actions: exactly the IAM actions of the SQS calls in crates/onboard-bulk/src.

Run: `make test-deploy`, or `.venv/bin/python -m pytest policy/test_bulk_operator.py`.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import check  # noqa: E402

POLICY = HERE / "bulk-operator.json"
CLI_SOURCES = ROOT / "crates" / "onboard-bulk" / "src"

# The SDK's fluent calls (`client.send_message_batch()`) and the IAM action each needs.
SQS_CALLS = {
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "get_queue_url": "sqs:GetQueueUrl",
    "create_queue": "sqs:CreateQueue",
    "delete_queue": "sqs:DeleteQueue",
    "set_queue_attributes": "sqs:SetQueueAttributes",
    "tag_queue": "sqs:TagQueue",
    "list_queues": "sqs:ListQueues",
    "purge_queue": "sqs:PurgeQueue",
}


@pytest.fixture(scope="module")
def template() -> dict:
    return check.load(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def policy() -> dict:
    return json.loads(POLICY.read_text())


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statement(policy: dict, sid: str) -> dict:
    return next(s for s in policy["Statement"] if s.get("Sid") == sid)


def placeholders(sub: str) -> str:
    """A template `Fn::Sub` string in the policy's spelling: `${AWS::Region}` -> `${Region}`."""
    return sub.replace("${AWS::", "${")


def arn(name: str) -> str:
    return "arn:${Partition}:sqs:${Region}:${AccountId}:" + name


def bulk_prefix(template: dict) -> str:
    return template["Outputs"]["BulkReplyQueuePrefix"]["Value"]["Fn::Sub"]


def test_the_request_queue_is_named_as_the_template_names_it(template, policy):
    queue = template["Resources"]["RequestQueue"]["Properties"]["QueueName"]["Fn::If"]
    assert queue[0] == "IsFifo" and queue[2] == {"Ref": "AWS::NoValue"}
    fifo_name = placeholders(queue[1]["Fn::Sub"])
    # Standard queues keep CloudFormation's generated name: <stack>-<logical id>-<random>.
    expected = {arn("${StackName}-RequestQueue-*"), arn(fifo_name)}
    assert set(as_list(statement(policy, "SendRequests")["Resource"])) == expected


def test_the_run_reply_prefix_is_the_one_the_function_admits_and_may_send_to(template, policy):
    prefix = bulk_prefix(template)
    assert prefix.startswith("${AWS::StackName}") and re.fullmatch(r"\$\{AWS::StackName\}[A-Za-z0-9_-]+", prefix)
    function = template["Resources"]["OnboardFunction"]["Properties"]
    allowed = function["Environment"]["Variables"]["ALLOWED_REPLY_QUEUES"]["Fn::Sub"].split(",")
    assert "${ReplyQueue}" in allowed
    assert "https://sqs.${AWS::Region}.${AWS::URLSuffix}/${AWS::AccountId}/" + prefix + "*" in allowed
    role = template["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    sends = next(s for s in role if isinstance(s, dict) and s.get("Sid") == "SendBulkRunReplies")
    assert sends["Action"] == "sqs:SendMessage"
    assert sends["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:" + prefix + "*"}
    assert statement(policy, "OwnRunReplyQueues")["Resource"] == arn(placeholders(prefix) + "*")


def cli_actions() -> set[str]:
    source = "\n".join(p.read_text() for p in sorted(CLI_SOURCES.rglob("*.rs")))
    return {action for call, action in SQS_CALLS.items() if re.search(rf"\.{call}\(\)", source)}


def test_the_actions_are_exactly_what_the_cli_calls(policy):
    called = cli_actions()
    assert {"sqs:SendMessage", "sqs:CreateQueue", "sqs:DeleteQueue"} <= called  # the scan works
    granted = {a for s in policy["Statement"] for a in as_list(s["Action"])}
    assert granted == called, (
        f"granted but never called: {sorted(granted - called)}; called but not granted: {sorted(called - granted)}")
    # Sending goes to the request queue only; the run's queues are only read and managed.
    assert "sqs:SendMessage" not in as_list(statement(policy, "OwnRunReplyQueues")["Action"])
    assert "sqs:CreateQueue" not in as_list(statement(policy, "SendRequests")["Action"])


def test_no_wildcard_beyond_the_named_prefixes(policy):
    assert policy["Version"] == "2012-10-17"
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s
        assert not any("*" in a or "?" in a for a in as_list(s["Action"])), s["Sid"]
        for resource in as_list(s["Resource"]):
            assert resource != "*"
            assert resource.startswith(arn("${StackName}-")), resource
            assert resource.count("*") <= 1 and (resource.endswith("*") or "*" not in resource), resource
