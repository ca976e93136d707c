"""Tests for the template policy (policy/rules.py) and the linters' wiring.

- the real template passes every rule, for every parameter combination;
- each rule catches a mutation of the real template (so the bad case stays in
  sync with the template) and a static fixture `fixtures/bad-<rule>.yaml`;
- `cfn-lint` and `sam validate --lint` exit non-zero on `fixtures/bad-lint.yaml`,
  and the static rule fixtures are lint-clean (the policy catches what lint does not).

Run: `make test-deploy` (or `.venv-deploy/bin/pytest policy`).
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATE = ROOT / "template.yaml"
FIXTURES = HERE / "fixtures"
sys.path.insert(0, str(HERE))

import check  # noqa: E402
import rules  # noqa: E402


@pytest.fixture(scope="module")
def template() -> dict:
    return check.load(TEMPLATE)


def violated(t: dict) -> set[str]:
    return {v.rule for v in rules.check(t)}


# ---------------------------------------------------------------- the loader (cfn-lint's decoder)

def test_loader_turns_short_form_intrinsics_into_long_form():
    t = check.loads(
        "A: !Ref X\nB: !GetAtt Q.Arn\nC: !If [Cond, !Sub '${AWS::StackName}.fifo', !Ref AWS::NoValue]\n"
        "D: !Not [Condition: Y]\nE: !Condition Z\nF: !Join ['', [a, !Ref B]]\n"
    )
    assert t["A"] == {"Ref": "X"}
    assert t["B"] == {"Fn::GetAtt": ["Q", "Arn"]}
    assert t["C"] == {"Fn::If": ["Cond", {"Fn::Sub": "${AWS::StackName}.fifo"}, {"Ref": "AWS::NoValue"}]}
    assert t["D"] == {"Fn::Not": [{"Condition": "Y"}]}
    assert t["E"] == {"Condition": "Z"}
    assert t["F"] == {"Fn::Join": ["", ["a", {"Ref": "B"}]]}


def test_loader_refuses_what_cfn_lint_cannot_parse():
    with pytest.raises(ValueError, match="E0000"):
        check.loads("A: [\n")
    with pytest.raises(ValueError, match="mapping"):
        check.loads("- a list\n")


def test_loaded_template_round_trips_through_yaml(template, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(template))
    assert check.load(path) == template


# ---------------------------------------------------------------- the real template

def test_real_template_passes_every_rule(template):
    assert rules.check(template) == []


def test_check_cli_passes_real_template(capsys):
    assert check.main([str(TEMPLATE)]) == 0
    assert "5 policy rules pass" in capsys.readouterr().out


def fn(t: dict) -> dict:
    return t["Resources"]["OnboardFunction"]["Properties"]


def statements(t: dict) -> list:
    return t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def statement(t: dict, sid: str) -> dict:
    return next(s for s in statements(t) if isinstance(s, dict) and s.get("Sid") == sid)


def test_template_facts_the_design_relies_on(template):
    """Not a policy rule, but what DESIGN.md and the issue ask of the template."""
    f = fn(template)
    assert f["Runtime"] == "provided.al2023" and f["Architectures"] == ["arm64"]
    assert template["Resources"]["OnboardFunction"]["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert 128 <= template["Parameters"]["FunctionMemoryMB"]["Default"] <= 256
    env = f["Environment"]["Variables"]
    for name in ("REPLY_QUEUE_URL", "ALLOWED_REPLY_QUEUES", "IDEMPOTENCY_TABLE", "IDEMPOTENCY_TTL_SECONDS", "MAX_CONCURRENCY",
                 "MAX_RECEIVE_COUNT", "CHIME_TIMEOUT_MS"):
        assert name in env, name
    assert f["LoggingConfig"]["LogFormat"] == "JSON"
    # timeout above CHIME_TIMEOUT_MS x 3 (two Chime calls per message + margin), for the largest allowed value
    assert f["Timeout"] * 1000 > template["Parameters"]["ChimeTimeoutMs"]["MaxValue"] * 3
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    for q in ("RequestQueue", "RequestDeadLetterQueue", "ReplyQueue", "ReplyDeadLetterQueue"):
        name = template["Resources"][q]["Properties"]["QueueName"]["Fn::If"][1]["Fn::Sub"]
        assert name.endswith(".fifo"), q
    assert set(template["Outputs"]) >= {"ApiUrl", "RequestQueueUrl", "ReplyQueueUrl", "IdempotencyTableName", "FunctionName"}


# ---------------------------------------------------------------- mutations of the real template
# (rule expected to fire, description, mutation)

def _drop(d: dict, key: str) -> None:
    del d[key]


MUTATIONS: list[tuple[str, str, Callable[[dict], None]]] = [
    ("http-post-authorized", "POST route opts out with Authorizer NONE",
     lambda t: fn(t)["Events"]["CreateAccount"]["Properties"]["Auth"].update(Authorizer="NONE")),
    ("http-post-authorized", "no route auth and no default authorizer",
     lambda t: (_drop(fn(t)["Events"]["CreateAccount"]["Properties"], "Auth"),
                _drop(t["Resources"]["HttpApi"]["Properties"]["Auth"], "DefaultAuthorizer"))),
    ("http-post-authorized", "route names an authorizer the API does not define",
     lambda t: fn(t)["Events"]["CreateAccount"]["Properties"]["Auth"].update(Authorizer="Missing")),
    ("http-post-authorized", "JWT authorizer without audience",
     lambda t: _drop(t["Resources"]["HttpApi"]["Properties"]["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"], "audience")),
    ("http-post-authorized", "a second public route besides the form",
     lambda t: fn(t)["Events"].update(Admin={"Type": "HttpApi", "Properties": {
         "ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/accounts", "Auth": {"Authorizer": "NONE"}}})),
    ("http-post-authorized", "POST /accounts takes any token of the audience (no scope)",
     lambda t: _drop(fn(t)["Events"]["CreateAccount"]["Properties"]["Auth"], "AuthorizationScopes")),
    ("http-post-authorized", "a public POST disguised as the form's script",
     lambda t: fn(t)["Events"]["OnboardingScript"]["Properties"].update(Method="POST")),
    ("http-post-authorized", "the POST /accounts route is gone",
     lambda t: _drop(fn(t)["Events"], "CreateAccount")),
    ("http-post-authorized", "Function URL without auth",
     lambda t: t["Resources"]["OnboardFunctionUrl"]["Properties"].update(AuthType="NONE")),
    ("iam-least-privilege", "action wildcard sqs:*",
     lambda t: statement(t, "SendReplies").update(Action="sqs:*")),
    ("iam-least-privilege", "full wildcard action",
     lambda t: statement(t, "ChimeAccountsNoResourceLevelPermissions").update(Action="*")),
    ("iam-least-privilege", "chime:* instead of the two actions",
     lambda t: statement(t, "ChimeAccountsNoResourceLevelPermissions").update(Action=["chime:*"])),
    ("iam-least-privilege", "an extra chime action (DeleteAccount)",
     lambda t: statement(t, "ChimeAccountsNoResourceLevelPermissions")["Action"].append("chime:DeleteAccount")),
    ("iam-least-privilege", "SQS on Resource *",
     lambda t: statement(t, "SendReplies").update(Resource="*")),
    ("iam-least-privilege", "SQS on an ARN pattern with a wildcard",
     lambda t: statement(t, "SendReplies").update(Resource={"Fn::Sub": "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:*"})),
    ("iam-least-privilege", "SendMessage to the request queue (not a reply queue)",
     lambda t: statement(t, "SendReplies").update(Resource={"Fn::GetAtt": ["RequestQueue", "Arn"]})),
    ("iam-least-privilege", "receive from the reply queue (not the event source)",
     lambda t: statement(t, "PollRequestQueue").update(Resource={"Fn::GetAtt": ["ReplyQueue", "Arn"]})),
    ("iam-least-privilege", "dynamodb:Scan added (inside the Fn::If branch)",
     lambda t: statements(t)[-1]["Fn::If"][1]["Action"].append("dynamodb:Scan")),
    ("iam-least-privilege", "DynamoDB on every table",
     lambda t: statements(t)[-1]["Fn::If"][1].update(Resource="*")),
    ("iam-least-privilege", "NotAction",
     lambda t: statements(t).append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})),
    ("iam-least-privilege", "an AWS managed policy",
     lambda t: t["Resources"]["FunctionRole"]["Properties"].update(
         ManagedPolicyArns=["arn:aws:iam::aws:policy/AmazonSQSFullAccess"])),
    ("iam-least-privilege", "a broad SAM policy template on the function",
     lambda t: fn(t).update(Policies=[{"DynamoDBCrudPolicy": {"TableName": {"Ref": "IdempotencyTable"}}}])),
    ("queues-have-dlq", "request queue without redrive",
     lambda t: _drop(t["Resources"]["RequestQueue"]["Properties"], "RedrivePolicy")),
    ("queues-have-dlq", "reply queue without redrive",
     lambda t: _drop(t["Resources"]["ReplyQueue"]["Properties"], "RedrivePolicy")),
    ("queues-have-dlq", "maxReceiveCount hard-coded apart from MAX_RECEIVE_COUNT",
     lambda t: t["Resources"]["RequestQueue"]["Properties"]["RedrivePolicy"].update(maxReceiveCount=3)),
    ("queues-have-dlq", "visibility timeout below 6x the function timeout",
     lambda t: t["Resources"]["RequestQueue"]["Properties"].update(VisibilityTimeout=60)),
    ("queues-have-dlq", "function timeout raised past visibility / 6",
     lambda t: fn(t).update(Timeout=60)),
    ("queues-have-dlq", "FIFO request queue with a standard DLQ",
     lambda t: _drop(t["Resources"]["RequestDeadLetterQueue"]["Properties"], "FifoQueue")),
    ("report-batch-item-failures", "FunctionResponseTypes removed",
     lambda t: _drop(fn(t)["Events"]["Requests"]["Properties"], "FunctionResponseTypes")),
    ("report-batch-item-failures", "FunctionResponseTypes empty",
     lambda t: fn(t)["Events"]["Requests"]["Properties"].update(FunctionResponseTypes=[])),
    ("report-batch-item-failures", "ScalingConfig removed",
     lambda t: _drop(fn(t)["Events"]["Requests"]["Properties"], "ScalingConfig")),
    ("report-batch-item-failures", "the SQS event source is gone",
     lambda t: _drop(fn(t)["Events"], "Requests")),
    ("operator-alerts", "request DLQ alarm removed",
     lambda t: _drop(t["Resources"], "RequestDeadLetterQueueAlarm")),
    ("operator-alerts", "reply DLQ alarm removed",
     lambda t: _drop(t["Resources"], "ReplyDeadLetterQueueAlarm")),
    ("operator-alerts", "DLQ alarm only fires above 10 messages",
     lambda t: t["Resources"]["RequestDeadLetterQueueAlarm"]["Properties"].update(Threshold=10)),
    ("operator-alerts", "errors alarm removed",
     lambda t: _drop(t["Resources"], "FunctionErrorsAlarm")),
    ("operator-alerts", "throttles alarm removed",
     lambda t: _drop(t["Resources"], "FunctionThrottlesAlarm")),
    ("operator-alerts", "log retention removed",
     lambda t: _drop(t["Resources"]["FunctionLogGroup"]["Properties"], "RetentionInDays")),
    ("operator-alerts", "text logs",
     lambda t: fn(t)["LoggingConfig"].update(LogFormat="Text")),
]


@pytest.mark.parametrize("rule,mutation", [(r, m) for r, _, m in MUTATIONS],
                         ids=[f"{r}: {d}" for r, d, _ in MUTATIONS])
def test_rule_catches_mutated_real_template(template, rule, mutation):
    bad = copy.deepcopy(template)
    mutation(bad)
    assert rule in violated(bad)


def test_every_rule_has_a_mutation():
    assert {r for r, _, _ in MUTATIONS} == set(rules.RULES)


def test_check_cli_fails_on_a_mutated_template(template, tmp_path, capsys):
    bad = copy.deepcopy(template)
    _drop(bad["Resources"]["RequestQueue"]["Properties"], "RedrivePolicy")
    path = tmp_path / "bad-mutated.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert check.main([str(path)]) == 1
    assert "[queues-have-dlq] RequestQueue" in capsys.readouterr().out


# ---------------------------------------------------------------- static fixtures

def expectation(path: Path) -> list[str]:
    m = re.match(r"# expect: (.+)\n", path.read_text())
    assert m, f"{path.name} must start with '# expect: ...'"
    return m.group(1).split()


RULE_FIXTURES = sorted(p for p in FIXTURES.glob("bad-*.yaml") if expectation(p)[0] in rules.RULES)


def test_every_rule_has_a_static_fixture():
    assert {expectation(p)[0] for p in RULE_FIXTURES} == set(rules.RULES)


@pytest.mark.parametrize("path", RULE_FIXTURES, ids=lambda p: p.name)
def test_static_fixture_breaks_exactly_its_rule(path):
    expected = set(expectation(path))
    assert violated(check.load(path)) == expected
    assert check.main([str(path)]) == 1


def tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed (run `make test-deploy`)")
    return found


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cfn_lint_fails_on_bad_lint_fixture():
    result = run([tool("cfn-lint"), str(FIXTURES / "bad-lint.yaml")])
    assert result.returncode != 0
    assert "E3002" in result.stdout


def test_sam_validate_lint_fails_on_bad_lint_fixture():
    result = run([tool("sam"), "validate", "--lint", "-t", str(FIXTURES / "bad-lint.yaml")])
    assert result.returncode != 0, result.stdout + result.stderr


def test_rule_fixtures_are_lint_clean_so_only_the_policy_catches_them():
    result = run([tool("cfn-lint"), *map(str, RULE_FIXTURES)])
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------- what SAM actually deploys

def test_sam_translation_keeps_the_jwt_and_scope_on_post_and_only_the_form_public(template, monkeypatch):
    """Translate with SAM's own translator (offline) and read the HTTP API's
    OpenAPI body: the route security is what API Gateway enforces."""
    transform = pytest.importorskip("samtranslator.translator.transform").transform
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sam = copy.deepcopy(template)
    sam["Resources"]["OnboardFunction"]["Properties"]["CodeUri"] = "s3://bucket/chime-onboard.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    params = {"JwtIssuer": "https://issuer.example.com", "JwtAudience": ["client"],
              "CorsAllowOrigins": ["https://admin.example.com"]}
    out = transform(sam, params, NoManagedPolicies())["Resources"]
    body = out["HttpApi"]["Properties"]["Body"]
    routes = {(path, method): op.get("security") for path, ops in body["paths"].items()
              for method, op in ops.items()}
    # POST needs the JWT *and* the scope; only the form and its two files are public.
    assert routes.pop(("/accounts", "post")) == [{"JwtAuthorizer": [{"Ref": "AccountsScope"}]}]
    assert routes == {(path, "get"): [{"NONE": []}] for path in ("/", "/app.js", "/app.css")}
    jwt = body["components"]["securitySchemes"]["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert jwt["type"] == "jwt" and set(jwt["jwtConfiguration"]) == {"issuer", "audience"}
    assert body["x-amazon-apigateway-cors"]["allowOrigins"] == ["https://admin.example.com"]
    mappings = [r["Properties"] for r in out.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1 and mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    fn_props = out["OnboardFunction"]["Properties"]
    assert fn_props["Architectures"] == ["arm64"] and fn_props["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
    # SAM added no role or policy of its own: FunctionRole is the only identity policy.
    assert [k for k, r in out.items() if r["Type"].startswith("AWS::IAM::")] == ["FunctionRole"]


# ---------------------------------------------------------------- grants = calls

# SDK operations the function could call, by IAM service prefix (snake_case as
# the Rust SDKs spell the fluent call, e.g. `client.put_item()`).
SDK_OPERATIONS = {
    "chime": ["CreateAccount", "ListAccounts", "GetAccount", "UpdateAccount", "DeleteAccount"],
    "dynamodb": ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                 "BatchWriteItem", "TransactGetItems", "TransactWriteItems"],
    "sqs": ["SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
            "ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "GetQueueAttributes", "GetQueueUrl"],
}
# What Lambda itself does with the function's role: the SQS event source mapping
# polls with it (the actions of AWSLambdaSQSQueueExecutionRole) and the runtime
# writes the function's logs.
PLATFORM_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                    "logs:CreateLogStream", "logs:PutLogEvents"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def code_calls() -> set[str]:
    """`service:Operation` for every SDK fluent call in src/ (`.put_item()`)."""
    source = "\n".join(p.read_text() for p in sorted((ROOT / "src").rglob("*.rs")))
    return {f"{svc}:{op}" for svc, ops in SDK_OPERATIONS.items() for op in ops
            if re.search(rf"\.{snake(op)}\(\)", source)}


def granted(t: dict) -> set[str]:
    out: set[str] = set()
    for stmt in statements(t):
        for s in rules.alternatives(stmt):
            if isinstance(s, dict) and s.get("Effect") == "Allow":
                out.update(rules.as_list(s.get("Action")))
    return out


def test_the_role_grants_exactly_what_the_code_and_the_platform_call(template):
    needed = code_calls() | PLATFORM_ACTIONS
    assert {"chime:CreateAccount", "sqs:SendMessage", "dynamodb:PutItem"} <= needed  # the scan works
    assert granted(template) == needed, (
        f"granted but never called: {sorted(granted(template) - needed)}; "
        f"called but not granted: {sorted(needed - granted(template))}")
