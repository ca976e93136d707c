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
import render  # noqa: E402
import rules  # noqa: E402
import smoke_bootstrap  # noqa: E402


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
    assert f"{len(rules.RULES)} policy rules pass" in capsys.readouterr().out


def fn(t: dict) -> dict:
    return t["Resources"]["OnboardFunction"]["Properties"]


def res(t: dict, lid: str) -> dict:
    return t["Resources"][lid]["Properties"]


def route(t: dict, lid: str) -> dict:
    return res(t, lid)


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
    ("http-post-authorized", "POST route opts out with AuthorizationType NONE",
     lambda t: route(t, "CreateAccountRoute").update(AuthorizationType="NONE")),
    ("http-post-authorized", "POST route without AuthorizationType (defaults to NONE)",
     lambda t: _drop(route(t, "CreateAccountRoute"), "AuthorizationType")),
    ("http-post-authorized", "route names an authorizer the template does not declare",
     lambda t: route(t, "CreateAccountRoute").update(AuthorizerId="Missing")),
    ("http-post-authorized", "JWT authorizer without audience",
     lambda t: _drop(res(t, "JwtAuthorizer")["JwtConfiguration"], "Audience")),
    ("http-post-authorized", "JWT authorizer with a plain-http issuer",
     lambda t: res(t, "JwtAuthorizer")["JwtConfiguration"]["Issuer"]["Fn::If"].__setitem__(2, "http://issuer.example.com")),
    ("http-post-authorized", "a second public route besides the form",
     lambda t: t["Resources"].update(AdminRoute={"Type": "AWS::ApiGatewayV2::Route", "Properties": {
         "ApiId": {"Ref": "HttpApi"}, "RouteKey": "GET /accounts", "AuthorizationType": "NONE",
         "Target": {"Fn::Sub": "integrations/${OnboardIntegration}"}}})),
    ("http-post-authorized", "a public catch-all $default route",
     lambda t: t["Resources"].update(CatchAll={"Type": "AWS::ApiGatewayV2::Route", "Properties": {
         "ApiId": {"Ref": "HttpApi"}, "RouteKey": "$default", "AuthorizationType": "NONE",
         "Target": {"Fn::Sub": "integrations/${OnboardIntegration}"}}})),
    ("http-post-authorized", "POST /accounts takes any token of the audience (no scope)",
     lambda t: _drop(route(t, "CreateAccountRoute"), "AuthorizationScopes")),
    ("http-post-authorized", "POST /accounts requires only openid (every signed-in user has it)",
     lambda t: route(t, "CreateAccountRoute").update(AuthorizationScopes=["openid"])),
    ("http-post-authorized", "a public POST disguised as the form's script",
     lambda t: route(t, "OnboardingScriptRoute").update(RouteKey="POST /app.js")),
    ("http-post-authorized", "the POST /accounts route is gone",
     lambda t: _drop(t["Resources"], "CreateAccountRoute")),
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
    ("sign-in-pool", "the form's client gets a secret",
     lambda t: res(t, "WebClient").update(GenerateSecret=True)),
    ("sign-in-pool", "the implicit flow besides code",
     lambda t: res(t, "WebClient").update(AllowedOAuthFlows=["code", "implicit"])),
    ("sign-in-pool", "client_credentials instead of code",
     lambda t: res(t, "WebClient").update(AllowedOAuthFlows=["client_credentials"])),
    ("sign-in-pool", "OAuth flows switched off",
     lambda t: res(t, "WebClient").update(AllowedOAuthFlowsUserPoolClient=False)),
    ("sign-in-pool", "the client cannot obtain the create scope",
     lambda t: res(t, "WebClient").update(AllowedOAuthScopes=["openid", "email"])),
    ("sign-in-pool", "a plain-http callback",
     lambda t: res(t, "WebClient").update(CallbackURLs=["http://localhost:9000/"])),
    ("sign-in-pool", "a callback that is not this stack's API",
     lambda t: res(t, "WebClient").update(CallbackURLs=["https://evil.example.com/"])),
    ("sign-in-pool", "user existence errors revealed",
     lambda t: res(t, "WebClient").update(PreventUserExistenceErrors="LEGACY")),
    ("sign-in-pool", "the password sent in the clear",
     lambda t: res(t, "WebClient")["ExplicitAuthFlows"].append("ALLOW_USER_PASSWORD_AUTH")),
    ("sign-in-pool", "self sign-up on by default",
     lambda t: t["Parameters"]["AllowSelfSignUp"].update(Default="true")),
    ("sign-in-pool", "self sign-up hard-wired on",
     lambda t: res(t, "UserPool")["AdminCreateUserConfig"].update(AllowAdminCreateUserOnly=False)),
    ("sign-in-pool", "8-character passwords",
     lambda t: res(t, "UserPool")["Policies"]["PasswordPolicy"].update(MinimumLength=8)),
    ("sign-in-pool", "the pool and its users go with the stack",
     lambda t: (t["Resources"]["UserPool"].update(DeletionPolicy="Delete"), _drop(res(t, "UserPool"), "DeletionProtection"))),
    ("sign-in-pool", "no hosted-UI domain for the pool",
     lambda t: _drop(t["Resources"], "UserPoolDomain")),
    ("sign-in-pool", "no resource server for the custom scope",
     lambda t: _drop(t["Resources"], "AccountsResourceServer")),
    ("sign-in-pool", "the authorizer trusts the created pool for any audience",
     lambda t: res(t, "JwtAuthorizer")["JwtConfiguration"]["Audience"]["Fn::If"].__setitem__(1, {"Ref": "JwtAudience"})),
    # Issue 21: each of these is the template as it was before.
    ("safe-releases", "no alias: a deploy replaces the running code at once",
     lambda t: _drop(fn(t), "AutoPublishAlias")),
    ("safe-releases", "no deployment preference: a new version takes all traffic at once",
     lambda t: _drop(fn(t), "DeploymentPreference")),
    ("safe-releases", "a canary that watches no alarm",
     lambda t: _drop(fn(t)["DeploymentPreference"], "Alarms")),
    ("safe-releases", "a deployment preference switched off",
     lambda t: fn(t)["DeploymentPreference"].update(Enabled=False)),
    ("safe-releases", "the API integration calls $LATEST",
     lambda t: res(t, "OnboardIntegration").update(IntegrationUri={"Fn::GetAtt": ["OnboardFunction", "Arn"]})),
    ("safe-releases", "API Gateway's permission is on the function, not the alias",
     lambda t: res(t, "HttpApiInvokePermission").update(FunctionName={"Ref": "OnboardFunction"})),
    ("safe-releases", "the Function URL serves $LATEST",
     lambda t: res(t, "OnboardFunctionUrl").update(TargetFunctionArn={"Fn::GetAtt": ["OnboardFunction", "Arn"]})),
    ("retained-data", "the request DLQ is deleted with the stack",
     lambda t: t["Resources"]["RequestDeadLetterQueue"].update(DeletionPolicy="Delete")),
    ("retained-data", "the reply DLQ is deleted with the stack",
     lambda t: t["Resources"]["ReplyDeadLetterQueue"].update(DeletionPolicy="Delete")),
    ("retained-data", "the idempotency table is deleted with the stack",
     lambda t: t["Resources"]["IdempotencyTable"].update(DeletionPolicy="Delete")),
    ("retained-data", "the idempotency table is dropped when an update replaces it",
     lambda t: t["Resources"]["IdempotencyTable"].update(UpdateReplacePolicy="Delete")),
    ("retained-data", "the user pool is deleted with the stack",
     lambda t: t["Resources"]["UserPool"].update(DeletionPolicy="Delete")),
    ("log-level", "LogLevel allows TRACE again",
     lambda t: t["Parameters"]["LogLevel"]["AllowedValues"].insert(0, "TRACE")),
    ("log-level", "LogLevel with no AllowedValues",
     lambda t: _drop(t["Parameters"]["LogLevel"], "AllowedValues")),
    ("log-level", "TRACE hard-wired",
     lambda t: fn(t)["LoggingConfig"].update(ApplicationLogLevel="TRACE")),
    ("log-level", "RUST_LOG=trace in the environment",
     lambda t: fn(t)["Environment"]["Variables"].update(RUST_LOG="chime_onboard=trace")),
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

# The two sign-in modes, as `sam deploy --parameter-overrides` would give them.
MODES = {
    "created-pool": {},  # CreateUserPool=true is the default
    "existing-issuer": {"CreateUserPool": "false", "JwtIssuer": "https://issuer.example.com",
                        "JwtAudience": "client-a,client-b",
                        "WebSignInAuthorizeUrl": "https://auth.example.com/authorize",
                        "WebSignInTokenUrl": "https://auth.example.com/token", "WebSignInClientId": "client-a"},
    "existing-issuer-api-only": {"CreateUserPool": "false", "JwtIssuer": "https://issuer.example.com",
                                 "JwtAudience": "client-a", "CorsAllowOrigins": "https://admin.example.com"},
    # Deployed again after a teardown: the kept pool, adopted (docs/DEPLOY.md, "Tearing down").
    "reused-pool": {"ExistingUserPoolId": "us-east-1_AbCdEf123"},
}


def sam_transform(t: dict, overrides: dict, monkeypatch) -> dict:
    """The template after SAM's own translator (offline), for these parameters."""
    transform = pytest.importorskip("samtranslator.translator.transform").transform
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sam = copy.deepcopy(t)
    sam["Resources"]["OnboardFunction"]["Properties"]["CodeUri"] = "s3://bucket/chime-onboard.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    params = render.parameters(t, overrides)
    return transform(sam, params, NoManagedPolicies())


@pytest.mark.parametrize("mode", MODES)
def test_every_rule_holds_in_each_sign_in_mode(template, mode):
    assert rules.check(render.render(template, MODES[mode])) == []


@pytest.mark.parametrize("mode", MODES)
def test_the_deploy_rules_accept_each_mode(template, mode):
    """The template's Rules section (checked by CloudFormation before anything is
    created) accepts the documented parameter sets..."""
    assert rule_failures(template, MODES[mode]) == []


@pytest.mark.parametrize("overrides,refused", [
    ({"JwtIssuer": "https://issuer.example.com"}, "CreatedUserPoolIsTheIssuer"),
    ({"JwtAudience": "client"}, "CreatedUserPoolIsTheIssuer"),
    ({"WebSignInClientId": "client"}, "CreatedUserPoolIsTheIssuer"),
    ({"AccountsScope": "other/scope"}, "CreatedUserPoolIsTheIssuer"),
    ({"CreateUserPool": "false"}, "ExistingIssuerIsGiven"),
    ({"CreateUserPool": "false", "JwtIssuer": "https://issuer.example.com"}, "ExistingIssuerIsGiven"),
])
def test_the_deploy_rules_refuse_mixed_modes(template, overrides, refused):
    """...and refuse a parameter set that mixes them (an upgrade from the
    issuer-only template that still passes JwtIssuer must say CreateUserPool=false)."""
    assert refused in rule_failures(template, overrides)


def rule_failures(t: dict, overrides: dict) -> list[str]:
    """Names of the template's Rules whose assertions fail for these parameters."""
    r = render.Renderer(t, overrides)

    def value(e):
        if isinstance(e, dict) and len(e) == 1:
            (k, v), = e.items()
            if k == "Fn::EachMemberEquals":
                members, expected = r.resolve(v[0]), r.resolve(v[1])
                return all(m == expected for m in members)
            if k == "Fn::Not":
                return not value(v[0])
            if k == "Fn::And":
                return all(value(x) for x in v)
            if k == "Fn::Equals":
                return str(r.resolve(v[0])) == str(r.resolve(v[1]))
        raise AssertionError(f"unsupported rule function {e!r}")

    failed = []
    for name, rule in t["Rules"].items():
        if "RuleCondition" in rule and not value(rule["RuleCondition"]):
            continue
        if not all(value(a["Assert"]) for a in rule["Assertions"]):
            failed.append(name)
    return failed


def dependencies(expr) -> set[str]:
    """Logical ids an expression depends on (Ref, GetAtt, ${X} in Fn::Sub)."""
    out: set[str] = set()
    if isinstance(expr, dict):
        for k, v in expr.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                out.update(n.split(".")[0] for n in re.findall(r"\$\{([^!}]+)\}", text))
                if isinstance(v, list):
                    out.update(dependencies(v[1]))
            else:
                out.update(dependencies(v))
    elif isinstance(expr, list):
        for item in expr:
            out.update(dependencies(item))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_no_circular_dependency_after_the_sam_transform(template, mode, monkeypatch):
    """The failure this layout exists to avoid: client -> API URL, authorizer ->
    client id, function -> client id, API -> function must not close a loop."""
    out = render.render(sam_transform(template, MODES[mode], monkeypatch), MODES[mode])["Resources"]
    graph = {lid: {d for d in dependencies(r.get("Properties")) | set(as_list(r.get("DependsOn"))) if d in out}
             for lid, r in out.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, f"cycle: {' -> '.join(path + [node])}"
        if node in done:
            return
        for dep in graph[node]:
            visit(dep, path + [node])
        done.add(node)

    for node in graph:
        visit(node, [])
    if mode in ("created-pool", "reused-pool"):
        assert "HttpApi" in graph["WebClient"] and "WebClient" in graph["JwtAuthorizer"]
        assert "WebClient" in graph["OnboardFunction"] and "OnboardFunctionAliaslive" in graph["OnboardIntegration"]
        assert "OnboardFunction" in graph["OnboardFunctionVersion" + next(
            k[len("OnboardFunctionVersion"):] for k in graph if k.startswith("OnboardFunctionVersion"))]


def as_list(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


@pytest.mark.parametrize("mode", MODES)
def test_sam_translation_keeps_the_jwt_and_scope_on_post_and_only_the_form_public(template, mode, monkeypatch):
    """What API Gateway enforces, read from the translated template: POST needs the
    JWT authorizer *and* the scope; only the form and its two files are public."""
    out = render.render(sam_transform(template, MODES[mode], monkeypatch), MODES[mode])["Resources"]
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in out.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    post = routes.pop("POST /accounts")
    assert post["AuthorizationType"] == "JWT" and post["AuthorizerId"] == {"Ref": "JwtAuthorizer"}
    assert post["AuthorizationScopes"] == [{"Ref": "AccountsScope"}]
    assert set(routes) == {"GET /", "GET /app.js", "GET /app.css"}
    assert all(r["AuthorizationType"] == "NONE" for r in routes.values())
    targets = {json_dump(r["Target"]) for r in [post, *routes.values()]}
    assert targets == {json_dump({"Fn::Sub": "integrations/${OnboardIntegration}"})}
    integration = out["OnboardIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY" and integration["PayloadFormatVersion"] == "2.0"
    # Every caller reaches the live alias (issue 21), which CodeDeploy moves on a release.
    alias = {"Ref": "OnboardFunctionAliaslive"}
    assert integration["IntegrationUri"] == alias
    jwt = out["JwtAuthorizer"]["Properties"]
    assert jwt["AuthorizerType"] == "JWT" and jwt["IdentitySource"] == ["$request.header.Authorization"]
    if mode in ("created-pool", "reused-pool"):
        pool = {"Ref": "UserPool" if mode == "created-pool" else "ExistingUserPoolId"}
        assert jwt["JwtConfiguration"] == {
            "Issuer": {"Fn::Sub": ["https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${PoolId}", {"PoolId": pool}]},
            "Audience": [{"Ref": "WebClient"}]}
    else:
        assert jwt["JwtConfiguration"] == {"Issuer": {"Ref": "JwtIssuer"}, "Audience": {"Ref": "JwtAudience"}}
    stage = out["HttpApiDefaultStage"]["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert set(stage["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    cors = out["HttpApi"]["Properties"].get("CorsConfiguration")
    if mode == "existing-issuer-api-only":
        assert cors["AllowOrigins"] == {"Ref": "CorsAllowOrigins"} and cors["AllowCredentials"] is False
    else:
        assert cors is None  # the form is same-origin; no CORS unless origins are given
    permissions = [r["Properties"] for r in out.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert len(permissions) == 1 and permissions[0]["Principal"] == "apigateway.amazonaws.com"
    assert permissions[0]["SourceArn"]["Fn::Sub"].endswith(":${HttpApi}/*")
    assert permissions[0]["FunctionName"] == alias
    mappings = [r["Properties"] for r in out.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1 and mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mappings[0]["FunctionName"] == alias
    fn_props = out["OnboardFunction"]["Properties"]
    assert fn_props["Architectures"] == ["arm64"] and fn_props["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
    # The release: CodeDeploy moves the alias, watching the two release alarms.
    live = out["OnboardFunctionAliaslive"]
    assert live["Properties"]["Name"] == "live"
    update = live["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["DeploymentGroupName"] == {"Ref": "OnboardFunctionDeploymentGroup"}
    group = out["OnboardFunctionDeploymentGroup"]["Properties"]
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert group["AlarmConfiguration"]["Alarms"] == [{"Name": {"Ref": "FunctionErrorsAlarm"}},
                                                     {"Name": {"Ref": "ReleaseFailedRequestsAlarm"}}]
    # SAM's only identity resources beside FunctionRole: CodeDeploy's service role, with
    # nothing but AWS's managed policy for Lambda deployments.
    iam = {k: r for k, r in out.items() if r["Type"].startswith("AWS::IAM::")}
    assert sorted(iam) == ["CodeDeployServiceRole", "FunctionRole"]
    codedeploy = iam["CodeDeployServiceRole"]["Properties"]
    assert codedeploy["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": ["codedeploy.amazonaws.com"]}
    assert [a if isinstance(a, str) else a.get("Fn::Sub") for a in codedeploy["ManagedPolicyArns"]] == [
        "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"]
    assert "Policies" not in codedeploy
    cognito = sorted(k for k, r in out.items() if r["Type"].startswith("AWS::Cognito::"))
    if mode == "created-pool":
        assert cognito == ["AccountsResourceServer", "UserPool", "UserPoolDomain", "WebClient"]
    elif mode == "reused-pool":
        assert cognito == ["AccountsResourceServer", "UserPoolDomain", "WebClient"]
        for lid in cognito:
            assert out[lid]["Properties"]["UserPoolId"] == {"Ref": "ExistingUserPoolId"}
    else:
        assert cognito == []


def json_dump(value) -> str:
    import json
    return json.dumps(value, sort_keys=True)


def test_created_pool_sign_in_as_the_issue_asks(template):
    """Issue 10: a pool, a public code+PKCE client calling back to the API's URL,
    a hosted-UI domain, wired into the authorizer and the page."""
    t = render.render(template, MODES["created-pool"])
    pool = res(t, "UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["UsernameAttributes"] == ["email"] and pool["MfaConfiguration"] == "OPTIONAL"
    assert "{username}" in pool["AdminCreateUserConfig"]["InviteMessageTemplate"]["EmailMessage"]["Fn::Sub"]
    assert "{####}" in pool["AdminCreateUserConfig"]["InviteMessageTemplate"]["EmailMessage"]["Fn::Sub"]
    api_url = {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}
    assert t["Outputs"]["ApiUrl"]["Value"] == api_url
    client = res(t, "WebClient")
    assert client["GenerateSecret"] is False and client["AllowedOAuthFlows"] == ["code"]
    assert client["CallbackURLs"] == [api_url] and client["LogoutURLs"] == [api_url]
    assert client["AllowedOAuthScopes"] == ["openid", {"Ref": "AccountsScope"}]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    server = res(t, "AccountsResourceServer")
    scope = render.resolve(template, {"Ref": "AccountsScope"})
    assert scope == f"{server['Identifier']}/{server['Scopes'][0]['ScopeName']}"
    assert res(t, "UserPoolDomain")["ManagedLoginVersion"] == 1
    assert set(t["Outputs"]) >= {"ApiUrl", "UserPoolId", "UserPoolClientId", "SignInUrl"}
    with_self_sign_up = render.render(template, {"AllowSelfSignUp": "true"})
    assert res(with_self_sign_up, "UserPool")["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is False


def test_default_domain_prefix_is_a_valid_unique_cognito_prefix(template):
    prefix = render.resolve(template, res(template, "UserPoolDomain")["Domain"])
    assert re.fullmatch(template["Parameters"]["SignInDomainPrefix"]["AllowedPattern"], prefix), prefix
    assert prefix.startswith("chime-onboard-") and len(prefix) <= 63
    assert not any(word in prefix for word in ("aws", "amazon", "cognito"))  # Cognito reserves these
    assert render.resolve(template, res(template, "UserPoolDomain")["Domain"], {"SignInDomainPrefix": "acme-onboard"}) == "acme-onboard"


@pytest.mark.parametrize("mode", MODES)
def test_the_function_environment_in_each_mode(template, mode):
    """What the page is configured with (WEB_SIGNIN_*), as smoke_bootstrap.py
    gives it to the built function: all three or none, https URLs."""
    env = smoke_bootstrap.template_environment(template, MODES[mode])
    signin = {k: v for k, v in env.items() if k.startswith("WEB_SIGNIN_")}
    if mode in ("created-pool", "reused-pool"):
        host = "https://chime-onboard-51af3dc0-da77-11e4-872e-1234567db123.auth.us-east-1.amazoncognito.com"
        assert signin == {"WEB_SIGNIN_AUTHORIZE_URL": f"{host}/oauth2/authorize",
                          "WEB_SIGNIN_TOKEN_URL": f"{host}/oauth2/token",
                          "WEB_SIGNIN_CLIENT_ID": smoke_bootstrap.SAMPLE_RESOURCES["WebClient"],
                          "WEB_SIGNIN_SCOPES": "openid chime-onboard/accounts.create",
                          "WEB_SIGNIN_LOGOUT_URL": f"{host}/logout"}
    elif mode == "existing-issuer":
        assert signin == {"WEB_SIGNIN_AUTHORIZE_URL": "https://auth.example.com/authorize",
                          "WEB_SIGNIN_TOKEN_URL": "https://auth.example.com/token",
                          "WEB_SIGNIN_CLIENT_ID": "client-a",
                          "WEB_SIGNIN_SCOPES": "openid chime-onboard/accounts.create"}
    else:
        assert signin == {}
    assert not any(k.startswith("AUTH_") for k in env)  # API Gateway checks the token


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


# Operations IAM does not authorise by their own name: a transaction needs the
# action of each write it carries (the function's carries Puts only; a
# ConditionCheck entry would need dynamodb:ConditionCheckItem).
IAM_ACTIONS_OF = {"dynamodb:TransactWriteItems": {"dynamodb:PutItem"},
                  "dynamodb:TransactGetItems": {"dynamodb:GetItem"}}


def code_calls() -> set[str]:
    """The IAM actions of every SDK fluent call in src/ (`.put_item()`), in the
    files that use an AWS SDK crate (`url.query()` elsewhere is no DynamoDB Query)."""
    texts = (p.read_text() for p in sorted((ROOT / "src").rglob("*.rs")))
    source = "\n".join(text for text in texts if "aws_sdk_" in text)
    calls = {f"{svc}:{op}" for svc, ops in SDK_OPERATIONS.items() for op in ops
             if re.search(rf"\.{snake(op)}\(\)", source)}
    return set().union(*(IAM_ACTIONS_OF.get(call, {call}) for call in calls))


def test_a_transaction_carries_only_puts():
    """IAM_ACTIONS_OF grants a transaction PutItem only: it must hold no other kind of write."""
    source = (ROOT / "src" / "idempotency" / "dynamodb.rs").read_text()
    assert ".transact_write_items()" in source
    assert not re.search(r"TransactWriteItem::builder\(\)\s*\.(update|delete|condition_check)\(", source)


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


# ---------------------------------------------------------------- each mode through the linters

def rendered_modes(template: dict, directory: Path) -> list[Path]:
    """Each sign-in mode as its own template (Fn::If decided, the mode's values as
    the parameters' defaults), so the linters see exactly what each mode deploys."""
    paths = []
    skips = checkov_skips(TEMPLATE.read_text())
    for mode, overrides in MODES.items():
        t = render.render(template, overrides)
        for name, value in overrides.items():
            t["Parameters"][name]["Default"] = value
        # Every kept resource and output is unconditional in this mode.
        t.pop("Conditions", None)
        for section in ("Resources", "Outputs"):
            for item in t[section].values():
                item.pop("Condition", None)
        # The inline `# checkov:skip=` comments do not survive YAML; carry them as
        # the equivalent resource Metadata.
        for lid, found in skips.items():
            if lid in t["Resources"]:
                t["Resources"][lid].setdefault("Metadata", {})["checkov"] = {
                    "skip": [{"id": check_id, "comment": why} for check_id, why in found]}
        path = directory / f"template-{mode}.yaml"
        path.write_text(yaml.safe_dump(t, sort_keys=False))
        paths.append(path)
    return paths


def checkov_skips(text: str) -> dict[str, list[tuple[str, str]]]:
    """`# checkov:skip=ID:reason` comments, by the resource they sit in."""
    out: dict[str, list[tuple[str, str]]] = {}
    resource = None
    for line in text.splitlines():
        m = re.match(r"  ([A-Za-z0-9]+):\s*$", line)
        if m:
            resource = m.group(1)
        m = re.match(r"\s+# checkov:skip=([A-Z0-9_]+):(.*)", line)
        if m and resource:
            out.setdefault(resource, []).append((m.group(1), m.group(2).strip()))
    return out


def test_cfn_lint_passes_each_mode(template, tmp_path):
    result = run([tool("cfn-lint"), *map(str, rendered_modes(template, tmp_path))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_each_mode(template, tmp_path):
    rendered_modes(template, tmp_path)
    result = run([tool("checkov"), "--directory", str(tmp_path), "--framework", "cloudformation",
                  "--compact", "--quiet", "--skip-download"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


# ---------------------------------------------------------------- operating the stack (issue 21)

def operations_problems(t: dict) -> list[str]:
    """What DESIGN.md's "Deploy and operate" asks of the alarms and outputs, as a list
    of what is missing: a topic always created (e-mail optional) that every alarm
    notifies and that is an output; alarms on Failed, both DLQs, throttles, errors, the
    request queue's oldest message and API 5xx; the reply DLQ on the dashboard; the DLQ
    ARNs and the redrive commands as outputs."""
    resources_ = t["Resources"]
    props = rules.props
    problems: list[str] = []
    topics = [k for k, r in resources_.items() if r["Type"] == "AWS::SNS::Topic" and "Condition" not in r]
    if not topics:
        problems.append("no SNS topic created whatever the parameters")
    output = t["Outputs"].get("AlarmTopicArn") or {}
    if rules.ref_target(output.get("Value")) not in topics or "Condition" in output:
        problems.append("AlarmTopicArn is not always an output naming the stack's topic")
    subscriptions = [r for r in resources_.values() if r["Type"] == "AWS::SNS::Subscription"]
    if not any(rules.ref_target(props(s).get("TopicArn")) in topics and props(s).get("Protocol") == "email"
               and rules.ref_target(props(s).get("Endpoint")) == "AlarmEmail"
               and "AlarmEmail" in json_dump(t["Conditions"].get(s.get("Condition"), "")) for s in subscriptions):
        problems.append("no e-mail subscription to the topic when AlarmEmail is given")

    def notifying(pred) -> list[str]:
        found = [k for k, r in resources_.items() if r["Type"] == "AWS::CloudWatch::Alarm" and pred(props(r))]
        return [k for k in found if any(rules.ref_target(a) in topics for a in props(resources_[k]).get("AlarmActions") or [])]

    def metric(namespace: str, name: str, target: str | None = None):
        def pred(p: dict) -> bool:
            if p.get("Namespace") == namespace and p.get("MetricName") == name:
                return target is None or any(rules.ref_target(d.get("Value")) == target for d in p.get("Dimensions") or [])
            stats = [m.get("MetricStat", {}).get("Metric", {}) for m in p.get("Metrics") or []]
            return target is None and any(s.get("Namespace") == namespace and s.get("MetricName") == name for s in stats)
        return pred

    wanted = {
        "Failed requests": metric("ChimeOnboard", "Failed"),
        "request DLQ depth": metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", "RequestDeadLetterQueue"),
        "reply DLQ depth": metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", "ReplyDeadLetterQueue"),
        "function throttles": metric("AWS/Lambda", "Throttles", "OnboardFunction"),
        "function errors": metric("AWS/Lambda", "Errors", "OnboardFunction"),
        "request queue oldest message": metric("AWS/SQS", "ApproximateAgeOfOldestMessage", "RequestQueue"),
        "API 5xx": metric("AWS/ApiGateway", "5xx", "HttpApi"),
    }
    problems += [f"no alarm on {what} notifying the topic" for what, pred in wanted.items() if not notifying(pred)]
    dashboard = json_dump(props(resources_["OnboardingDashboard"]).get("DashboardBody"))
    problems += [f"{q} is not on the dashboard" for q in ("RequestDeadLetterQueue", "ReplyDeadLetterQueue")
                 if "${%s.QueueName}" % q not in dashboard]
    values = [json_dump(o.get("Value")) for o in t["Outputs"].values()]
    for q, source in (("RequestDeadLetterQueue", "RequestQueue"), ("ReplyDeadLetterQueue", "ReplyQueue")):
        if json_dump({"Fn::GetAtt": [q, "Arn"]}) not in values:
            problems.append(f"no output with {q}'s ARN")
        if not any("start-message-move-task" in v and "${%s.Arn}" % q in v and "${%s.Arn}" % source in v for v in values):
            problems.append(f"no output with the redrive command for {q}")
    return problems


def test_the_stack_can_be_operated_as_issue_21_asks(template):
    assert operations_problems(template) == []
    for mode in MODES:
        rendered = render.render(template, {**MODES[mode], "AlarmEmail": "ops@example.com"})
        assert operations_problems(rendered) == [], mode
    # Without AlarmEmail nothing subscribes, but the topic, its output and the alarms stay.
    assert operations_problems(render.render(template, {})) == [
        "no e-mail subscription to the topic when AlarmEmail is given"]


OPERATIONS_MUTATIONS: list[tuple[str, Callable[[dict], None]]] = [
    ("the topic only with AlarmEmail", lambda t: t["Resources"]["AlarmTopic"].update(Condition="HasAlarmEmail")),
    ("no topic output", lambda t: _drop(t["Outputs"], "AlarmTopicArn")),
    ("no e-mail subscription", lambda t: _drop(t["Resources"], "AlarmEmailSubscription")),
    ("no alarm on the request queue's age", lambda t: _drop(t["Resources"], "RequestQueueAgeAlarm")),
    ("no alarm on API 5xx", lambda t: _drop(t["Resources"], "Api5xxAlarm")),
    ("the Failed alarm notifies nobody", lambda t: _drop(res(t, "FailedRequestsAlarm"), "AlarmActions")),
    ("the reply DLQ alarm notifies nobody", lambda t: _drop(res(t, "ReplyDeadLetterQueueAlarm"), "AlarmActions")),
    ("the reply DLQ is not on the dashboard", lambda t: res(t, "OnboardingDashboard").update(
        DashboardBody={"Fn::Sub": res(t, "OnboardingDashboard")["DashboardBody"]["Fn::Sub"].replace("${ReplyDeadLetterQueue.QueueName}", "")})),
    ("DLQ URLs but no ARNs", lambda t: _drop(t["Outputs"], "RequestDeadLetterQueueArn")),
    ("no redrive command", lambda t: _drop(t["Outputs"], "ReplyRedriveCommand")),
]


@pytest.mark.parametrize("mutation", [m for _, m in OPERATIONS_MUTATIONS], ids=[d for d, _ in OPERATIONS_MUTATIONS])
def test_the_operations_check_catches_what_was_missing(template, mutation):
    bad = copy.deepcopy(template)
    mutation(bad)
    assert operations_problems(bad) != []


def test_releases_watch_only_the_functions_own_health(template):
    """The canary's rollback alarms are the function's own (an alarm about a DLQ or the
    queue's age may already be firing and would stop every release), and the release
    alarm on Failed reacts within the canary's shortest window."""
    preference = fn(template)["DeploymentPreference"]
    alarms = [rules.ref_target(a) for a in preference["Alarms"]]
    assert alarms == ["FunctionErrorsAlarm", "ReleaseFailedRequestsAlarm"]
    assert fn(template)["AutoPublishAlias"] == "live"
    strategies = template["Parameters"]["ReleaseStrategy"]
    assert strategies["Default"].startswith("Canary") and preference["Type"] == {"Ref": "ReleaseStrategy"}
    shortest = min(int(re.search(r"(\d+)Minute", v).group(1)) for v in strategies["AllowedValues"] if v.startswith("Canary"))
    for lid in alarms:
        p = res(template, lid)
        periods = [p.get("Period")] if "Period" in p else [m["MetricStat"]["Period"] for m in p["Metrics"] if "MetricStat" in m]
        assert max(periods) * p["EvaluationPeriods"] <= shortest * 60, lid


def test_log_level_never_trace(template):
    levels = template["Parameters"]["LogLevel"]["AllowedValues"]
    assert "TRACE" not in levels and "DEBUG" in levels
    assert fn(template)["LoggingConfig"]["ApplicationLogLevel"] == {"Ref": "LogLevel"}
