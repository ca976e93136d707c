"""The IAM policies people are given (policy/iam/*.json), checked against the template.

- deployer.json: what `sam deploy` of template.yaml needs. Every resource type the
  template turns into (after the SAM transform, in every sign-in mode, Function URL on)
  has its create, read, update and delete actions in it, and on resource patterns that
  match the names CloudFormation gives this stack's resources; nothing else is granted.
- function-url-caller.json: a caller of the IAM Function URL may invoke the live alias
  *through the URL* only (`lambda:InvokedViaFunctionUrl`), never directly, where it
  could forge the authorizer claims the function trusts.

Placeholders (`${Partition}`, `${Region}`, `${AccountId}`, `${StackName}`,
`${FunctionName}`) are filled in with `sed` (docs/DEPLOY.md, "Who may deploy, run bulk
jobs and call").
"""
from __future__ import annotations

import copy
import fnmatch
import json
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import check  # noqa: E402
import render  # noqa: E402
from test_policy import MODES, TEMPLATE, sam_transform  # noqa: E402

IAM = HERE / "iam"
PLACEHOLDERS = {"Partition": "aws", "Region": "us-east-1", "AccountId": "123456789012",
                "StackName": "chime-onboard", "FunctionName": "chime-onboard-OnboardFunction-AbCdEf123456"}

# What CloudFormation does to create, read, update and delete each resource type.
TYPE_ACTIONS: dict[str, set[str]] = {
    "AWS::SQS::Queue": {"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes",
                        "sqs:GetQueueUrl", "sqs:TagQueue"},
    "AWS::SQS::QueuePolicy": {"sqs:SetQueueAttributes", "sqs:GetQueueAttributes"},
    "AWS::DynamoDB::Table": {"dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:DescribeTable",
                             "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeTimeToLive",
                             "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeContinuousBackups"},
    "AWS::Logs::LogGroup": {"logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy",
                            "logs:DescribeLogGroups"},
    "AWS::IAM::Role": {"iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:PutRolePolicy",
                       "iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                       "iam:PassRole"},
    "AWS::Lambda::Function": {"lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction",
                              "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration"},
    "AWS::Lambda::Version": {"lambda:PublishVersion", "lambda:ListVersionsByFunction", "lambda:DeleteFunction"},
    "AWS::Lambda::Alias": {"lambda:CreateAlias", "lambda:UpdateAlias", "lambda:DeleteAlias", "lambda:GetAlias"},
    "AWS::Lambda::EventSourceMapping": {"lambda:CreateEventSourceMapping", "lambda:GetEventSourceMapping",
                                        "lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"},
    "AWS::Lambda::Permission": {"lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"},
    "AWS::Lambda::Url": {"lambda:CreateFunctionUrlConfig", "lambda:UpdateFunctionUrlConfig",
                         "lambda:DeleteFunctionUrlConfig", "lambda:GetFunctionUrlConfig"},
    "AWS::ApiGatewayV2::Api": {"apigateway:POST", "apigateway:GET", "apigateway:PATCH", "apigateway:DELETE"},
    "AWS::ApiGatewayV2::Stage": {"apigateway:POST", "apigateway:GET", "apigateway:PATCH", "apigateway:DELETE"},
    "AWS::ApiGatewayV2::Integration": {"apigateway:POST", "apigateway:GET", "apigateway:PATCH", "apigateway:DELETE"},
    "AWS::ApiGatewayV2::Route": {"apigateway:POST", "apigateway:GET", "apigateway:PATCH", "apigateway:DELETE"},
    "AWS::ApiGatewayV2::Authorizer": {"apigateway:POST", "apigateway:GET", "apigateway:PATCH", "apigateway:DELETE"},
    "AWS::Cognito::UserPool": {"cognito-idp:CreateUserPool", "cognito-idp:DescribeUserPool",
                               "cognito-idp:UpdateUserPool", "cognito-idp:DeleteUserPool",
                               "cognito-idp:SetUserPoolMfaConfig", "cognito-idp:GetUserPoolMfaConfig"},
    "AWS::Cognito::UserPoolDomain": {"cognito-idp:CreateUserPoolDomain", "cognito-idp:DescribeUserPoolDomain",
                                     "cognito-idp:UpdateUserPoolDomain", "cognito-idp:DeleteUserPoolDomain"},
    "AWS::Cognito::UserPoolResourceServer": {"cognito-idp:CreateResourceServer", "cognito-idp:DescribeResourceServer",
                                             "cognito-idp:UpdateResourceServer", "cognito-idp:DeleteResourceServer"},
    "AWS::Cognito::UserPoolClient": {"cognito-idp:CreateUserPoolClient", "cognito-idp:DescribeUserPoolClient",
                                     "cognito-idp:UpdateUserPoolClient", "cognito-idp:DeleteUserPoolClient"},
    "AWS::SNS::Topic": {"sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes"},
    "AWS::SNS::Subscription": {"sns:Subscribe", "sns:Unsubscribe", "sns:GetSubscriptionAttributes"},
    "AWS::SNS::TopicPolicy": {"sns:SetTopicAttributes", "sns:GetTopicAttributes"},
    "AWS::CloudWatch::Alarm": {"cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"},
    "AWS::CloudWatch::Dashboard": {"cloudwatch:PutDashboard", "cloudwatch:GetDashboard",
                                   "cloudwatch:DeleteDashboards"},
    "AWS::CodeDeploy::Application": {"codedeploy:CreateApplication", "codedeploy:GetApplication",
                                     "codedeploy:DeleteApplication"},
    "AWS::CodeDeploy::DeploymentGroup": {"codedeploy:CreateDeploymentGroup", "codedeploy:GetDeploymentGroup",
                                         "codedeploy:UpdateDeploymentGroup", "codedeploy:DeleteDeploymentGroup"},
}
# What `sam deploy` itself does besides the resources: change sets through the SAM
# transform, the artifact upload, and (AutoPublishAlias) the CodeDeploy release.
DEPLOY_ACTIONS = {
    "cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet", "cloudformation:ExecuteChangeSet",
    "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:GetTemplateSummary",
    "cloudformation:DeleteStack", "s3:PutObject", "s3:GetObject", "s3:ListBucket",
    "codedeploy:CreateDeployment", "codedeploy:GetDeployment", "codedeploy:GetDeploymentConfig",
    "codedeploy:RegisterApplicationRevision",
}


def load(name: str) -> dict:
    return json.loads((IAM / name).read_text())


def statements(policy: dict) -> list[dict]:
    assert policy["Version"] == "2012-10-17"
    return policy["Statement"]


def listed(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def granted(policy: dict) -> dict[str, list[str]]:
    """action -> the resource patterns it is allowed on, placeholders filled in."""
    out: dict[str, list[str]] = {}
    for stmt in statements(policy):
        assert stmt["Effect"] == "Allow" and "NotAction" not in stmt and "NotResource" not in stmt
        for action in listed(stmt["Action"]):
            out.setdefault(action, []).extend(fill(r) for r in listed(stmt["Resource"]))
    return out


def fill(text: str) -> str:
    names = set(re.findall(r"\$\{(\w+)\}", text))
    assert names <= set(PLACEHOLDERS), f"unknown placeholder in {text}: {names - set(PLACEHOLDERS)}"
    return re.sub(r"\$\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], text)


@pytest.fixture(scope="module")
def template() -> dict:
    return check.load(TEMPLATE)


@pytest.fixture(scope="module")
def deployed_types(template) -> set[str]:
    """Every resource type of the template after the SAM transform, in every mode,
    with the Function URL and an alarm e-mail too."""
    types: set[str] = set()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for overrides in MODES.values():
            overrides = {**overrides, "EnableFunctionUrl": "true", "AlarmEmail": "ops@example.com"}
            out = render.render(sam_transform(template, overrides, monkeypatch), overrides)
            types |= {r["Type"] for r in out["Resources"].values()}
    return types


def test_the_policy_files_parse_and_use_only_known_placeholders():
    for path in (IAM / "deployer.json", IAM / "function-url-caller.json"):
        policy = json.loads(path.read_text())
        assert granted(policy), path.name
        assert not any("*" in a for a in granted(policy)), f"{path.name}: wildcard action"


def test_the_deployer_can_create_update_and_delete_every_resource_the_template_makes(deployed_types):
    assert {"AWS::Lambda::Alias", "AWS::CodeDeploy::DeploymentGroup", "AWS::Lambda::Url",
            "AWS::SNS::Subscription", "AWS::Cognito::UserPool"} <= deployed_types  # the transform ran
    unknown = deployed_types - set(TYPE_ACTIONS)
    assert not unknown, f"the template makes {sorted(unknown)}: add their actions to TYPE_ACTIONS and deployer.json"
    needed = set().union(*(TYPE_ACTIONS[t] for t in deployed_types)) | DEPLOY_ACTIONS
    have = set(granted(load("deployer.json")))
    assert needed - have == set(), "the deployer cannot do these"


def test_the_deployer_gets_nothing_the_template_does_not_need(deployed_types):
    needed = set().union(*(TYPE_ACTIONS[t] for t in deployed_types)) | DEPLOY_ACTIONS
    extra = set(granted(load("deployer.json"))) - needed
    # Reads and tags CloudFormation and the SAM CLI also make, and SAM's one-time
    # bucket stack (resolve_s3): allowed by name, so a new grant is a decision.
    housekeeping = {a for a in extra if re.search(
        r":(Get|Describe|List|Tag|Untag|Validate|DeleteChangeSet|StopDeployment|UpdateAssumeRolePolicy|"
        r"DeleteRetentionPolicy|PutBucket|PutEncryption|PutLifecycle|CreateBucket|PUT$)", a)}
    assert extra - housekeeping == set()


def resource_names(template: dict, overrides: dict) -> dict[str, str]:
    """The physical names this stack's resources get: the explicit ones from the
    template (log groups, FIFO queues), and CloudFormation's `<stack>-<logical id>-<suffix>`
    for the rest."""
    t = render.render(template, overrides)
    stack = PLACEHOLDERS["StackName"]
    explicit = {"AWS::Logs::LogGroup": "LogGroupName", "AWS::SQS::Queue": "QueueName"}
    names = {}
    for lid, r in t["Resources"].items():
        field = explicit.get(r["Type"])
        value = r.get("Properties", {}).get(field) if field else None
        names[lid] = render.resolve(template, value, overrides) if value else f"{stack}-{lid}-AbCdEf123456"
    return names


ARN_OF = {
    "AWS::SQS::Queue": ("sqs:CreateQueue", "arn:aws:sqs:us-east-1:123456789012:{}"),
    "AWS::DynamoDB::Table": ("dynamodb:CreateTable", "arn:aws:dynamodb:us-east-1:123456789012:table/{}"),
    "AWS::Logs::LogGroup": ("logs:CreateLogGroup", "arn:aws:logs:us-east-1:123456789012:log-group:{}"),
    "AWS::IAM::Role": ("iam:CreateRole", "arn:aws:iam::123456789012:role/{}"),
    "AWS::SNS::Topic": ("sns:CreateTopic", "arn:aws:sns:us-east-1:123456789012:{}"),
    "AWS::CloudWatch::Alarm": ("cloudwatch:PutMetricAlarm", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{}"),
    "AWS::Serverless::Function": ("lambda:CreateFunction", "arn:aws:lambda:us-east-1:123456789012:function:{}"),
}


@pytest.mark.parametrize("fifo", ["false", "true"])
def test_the_deployers_resource_patterns_match_the_stacks_names(template, fifo):
    policy = granted(load("deployer.json"))
    overrides = {"UseFifo": fifo}
    names = resource_names(template, overrides)
    checked = 0
    for lid, r in render.render(template, overrides)["Resources"].items():
        if r["Type"] not in ARN_OF:
            continue
        action, arn = ARN_OF[r["Type"]]
        arn = arn.format(names[lid])
        assert any(fnmatch.fnmatchcase(arn, p) for p in policy[action]), f"{action} does not cover {lid}: {arn}"
        checked += 1
    assert checked >= 15


def test_the_deployer_passes_roles_only_to_lambda_and_codedeploy():
    passes = [s for s in statements(load("deployer.json")) if "iam:PassRole" in listed(s["Action"])]
    assert len(passes) == 1
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com",
                                                                              "codedeploy.amazonaws.com"]}}
    attaches = [s for s in statements(load("deployer.json")) if "iam:AttachRolePolicy" in listed(s["Action"])]
    assert [s["Condition"]["ArnEquals"]["iam:PolicyARN"] for s in attaches] == [
        "arn:${Partition}:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"]


def url_caller_problems(policy: dict, template: dict) -> list[str]:
    alias = template["Resources"]["OnboardFunction"]["Properties"]["AutoPublishAlias"]
    live = f"arn:aws:lambda:us-east-1:123456789012:function:{PLACEHOLDERS['FunctionName']}:{alias}"
    problems = []
    actions = granted(policy)
    if set(actions) != {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}:
        problems.append(f"grants {sorted(actions)}, not exactly InvokeFunctionUrl and InvokeFunction")
    for action, resources in actions.items():
        if resources != [live]:
            problems.append(f"{action} on {resources}, not the {alias} alias only")
    for stmt in statements(policy):
        if "lambda:InvokeFunction" in listed(stmt["Action"]) and \
                stmt.get("Condition") != {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}:
            problems.append("lambda:InvokeFunction without lambda:InvokedViaFunctionUrl: a direct invoke could forge claims")
    return problems


def test_a_function_url_caller_may_invoke_only_through_the_url(template):
    assert url_caller_problems(load("function-url-caller.json"), template) == []
    url = template["Resources"]["OnboardFunctionUrl"]["Properties"]
    assert url["AuthType"] == "AWS_IAM" and url["TargetFunctionArn"] == {"Ref": "OnboardFunction.Alias"}
    assert "FunctionName" in template["Outputs"]  # what ${FunctionName} is filled with


@pytest.mark.parametrize("change", ["plain invoke", "any function", "extra action"])
def test_the_url_caller_check_catches_a_grant_that_is_too_wide(template, change):
    policy = copy.deepcopy(load("function-url-caller.json"))
    invoke = policy["Statement"][1]
    if change == "plain invoke":  # what docs/DEPLOY.md granted before issue 21
        del invoke["Condition"]
    elif change == "any function":
        invoke["Resource"] = "arn:${Partition}:lambda:${Region}:${AccountId}:function:*"
    else:
        invoke["Action"] = ["lambda:InvokeFunction", "lambda:UpdateFunctionCode"]
    assert url_caller_problems(policy, template) != []
