"""The Python peer: chime-onboard as a user would write it in Python 3 + boto3.

Same contract as the Rust function for what the benchmark exercises (DESIGN.md):
HTTP `POST /accounts` with `{"Name": ...}` -> 201 `{"AccountId", "Account"}`,
problem+json errors; SQS batches -> one reply per message on REPLY_QUEUE_URL,
transient failures in `batchItemFailures`. Messages are handled one after the
other, as such handlers are commonly written. Clients are created once, at
init, as AWS recommends. Endpoints come from AWS_ENDPOINT_URL_CHIME /
AWS_ENDPOINT_URL_SQS (honoured by botocore), trust from AWS_CA_BUNDLE.

Run by awslambdaric: `python -m awslambdaric handler.handler`.
"""

import base64
import json
import os
import unicodedata

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=int(os.environ.get("CHIME_TIMEOUT_MS", "5000")) / 1000,
)
CHIME = boto3.client("chime", config=_CONFIG)
SQS = boto3.client("sqs", config=_CONFIG)
REPLY_QUEUE_URL = os.environ.get("REPLY_QUEUE_URL")

PERMANENT = {
    "BadRequestException",
    "ForbiddenException",
    "UnauthorizedClientException",
    "NotFoundException",
}
STATUS = {
    "BadRequestException": 400,
    "ThrottledClientException": 429,
    "ServiceUnavailableException": 503,
}


class Rejected(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.status = status


def account_name(value):
    """DESIGN.md "The account name": trim, no control chars, 1..=100 scalars."""
    if value is None:
        raise Rejected("NameMissing", "Name is required")
    if not isinstance(value, str):
        raise Rejected("NameNotString", "Name must be a string")
    name = value.strip()
    if not name:
        raise Rejected("NameEmpty", "Name is empty after trimming whitespace")
    for ch in name:
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            raise Rejected("NameInvalidCharacter", "Name contains a control character")
    if len(name) > 100:
        raise Rejected("NameTooLong", "Name is longer than 100 characters")
    return name


def create_account(name):
    account = CHIME.create_account(Name=name)["Account"]
    return json.loads(json.dumps(account, default=str))


def problem(status, code, detail, request_id):
    body = {
        "type": "about:blank",
        "title": code,
        "status": status,
        "detail": detail[:100],
        "code": code,
        "requestId": request_id,
    }
    return {
        "statusCode": status,
        "headers": {"content-type": "application/problem+json"},
        "body": json.dumps(body),
    }


def handle_http(event, context):
    request_id = context.aws_request_id
    http = event.get("requestContext", {}).get("http", {})
    method = http.get("method") or event.get("httpMethod")
    path = event.get("rawPath") or event.get("path") or "/"
    if not path.endswith("/accounts"):
        return problem(404, "NotFound", "no such path", request_id)
    if method != "POST":
        return problem(405, "MethodNotAllowed", "use POST", request_id)
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        name = account_name(payload.get("Name"))
        account = create_account(name)
    except Rejected as e:
        return problem(e.status, e.code, str(e), request_id)
    except ValueError as e:
        return problem(400, "BodyNotJson", str(e), request_id)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "ServiceFailureException")
        return problem(STATUS.get(code, 502), code, str(e), request_id)
    except BotoCoreError as e:
        return problem(502, "UpstreamError", str(e), request_id)
    return {
        "statusCode": 201,
        "headers": {
            "content-type": "application/json",
            "location": f"/accounts/{account['AccountId']}",
        },
        "body": json.dumps({"AccountId": account["AccountId"], "Account": account}),
    }


def send_reply(reply):
    SQS.send_message(
        QueueUrl=REPLY_QUEUE_URL,
        MessageBody=json.dumps(reply),
        MessageAttributes={"Status": {"DataType": "String", "StringValue": reply["Status"]}},
    )


def handle_sqs(event, context):
    failures = []
    for record in event["Records"]:
        message_id = record["messageId"]
        reply = {"SourceMessageId": message_id, "RequestId": message_id}
        try:
            body = json.loads(record["body"])
            if not isinstance(body, dict):
                raise Rejected("BodyNotJson", "body is not an object")
            reply["RequestId"] = body.get("RequestId") or message_id
            account = create_account(account_name(body.get("Name")))
            reply.update(Status="Created", AccountId=account["AccountId"], Account=account)
        except (Rejected, ValueError) as e:
            reply.update(Status="Rejected", Error={"Code": getattr(e, "code", "BodyNotJson"), "Message": str(e)})
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "ServiceFailureException")
            if code not in PERMANENT:
                failures.append({"itemIdentifier": message_id})
                continue
            reply.update(Status="Rejected", Error={"Code": code, "Message": str(e)})
        except BotoCoreError:
            failures.append({"itemIdentifier": message_id})
            continue
        try:
            send_reply(reply)
        except (ClientError, BotoCoreError):
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def handler(event, context):
    if isinstance(event, dict) and "Records" in event:
        return handle_sqs(event, context)
    return handle_http(event, context)
