"""Policy rules for chime-onboard's SAM template (our stand-in for cfn-guard).

Each rule is a function `template -> list[Violation]` over the template as
`check.load` (cfn-lint's decoder) returns it (long-form intrinsics). Every `Fn::If` is expanded to
both branches, so a rule holds for every combination of the template's
parameters (FIFO or not, table or not, Function URL or not).

Rules (ids are what `check.py` prints and what fixtures are named after):

- http-post-authorized: `POST /accounts` exists, requires a scope (not one every
  signed-in user has, such as `openid`), and every HTTP route except the public
  form (`GET /`, `/app.js`, `/app.css`) has a JWT (or AWS_IAM) authorizer, for
  SAM HttpApi events and plain AWS::ApiGatewayV2 routes alike (a JWT authorizer
  declared here, on the same API, with an https issuer and an audience);
  Function URLs use AWS_IAM.
- iam-least-privilege: identity policies grant only allow-listed actions
  (chime:CreateAccount/ListAccounts, the SQS poll and send actions, DynamoDB
  item actions, writing logs), never an action wildcard, `NotAction` or a managed
  policy; `Resource: "*"` only for chime (it has no resource-level permissions);
  SQS receive/delete only on the event-source queue, SendMessage only on the
  reply queue(s) named in the function's environment, DynamoDB only on tables
  declared here.
- queues-have-dlq: every queue that is not itself a DLQ has a redrive policy to a
  DLQ of the same kind (FIFO/standard); the request queue's `maxReceiveCount` is the
  same expression as the function's `MAX_RECEIVE_COUNT`; its visibility timeout is
  at least 6x the function timeout.
- report-batch-item-failures: every SQS event source reports partial batch
  failures (`FunctionResponseTypes: [ReportBatchItemFailures]`) and caps its
  concurrency (`ScalingConfig.MaximumConcurrency`); there is at least one.
- operator-alerts: an alarm on every DLQ's depth (> 0), on the function's Errors
  and Throttles; every log group has a retention; the function logs JSON into a
  log group declared here.
- safe-releases: every SAM function publishes an alias (`AutoPublishAlias`) and
  shifts traffic to a new version through CodeDeploy (`DeploymentPreference`, enabled,
  with at least one alarm of this template as a rollback trigger); API integrations,
  Lambda permissions, Function URLs and event source mappings name the alias
  (`!Ref Fn.Alias`), never the bare function ($LATEST, outside the release).
- retained-data: what holds data nobody can recreate survives the stack: every DLQ
  (failed requests and replies), DynamoDB table (idempotency records) and Cognito user
  pool (people) has `DeletionPolicy` and `UpdateReplacePolicy` `Retain`.
- log-level: no function can log at TRACE (lambda_runtime then logs whole events:
  names, bearer tokens, keys): `ApplicationLogLevel`, `AWS_LAMBDA_LOG_LEVEL` and
  `RUST_LOG` are literals other than trace, or parameters whose `AllowedValues` leave it out.
- sign-in-pool: a Cognito user pool the template creates is admin-create-only with
  the default parameters, has a password policy (>= 12 characters), survives the
  stack (Retain or DeletionProtection) and has a hosted-UI domain; its app client
  is public (no secret), code flow only, calls back to this stack's API over
  https, can obtain the scope POST /accounts requires, hides whether a user
  exists, sends no password in the clear; a JWT authorizer trusting the pool
  accepts only that pool's own client(s) as audience.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

NO_VALUE = {"Ref": "AWS::NoValue"}

# Allowed IAM actions, by service (compared case-insensitively, as IAM does).
ALLOWED_ACTIONS: dict[str, set[str]] = {
    "chime": {"CreateAccount", "ListAccounts"},
    "sqs": {"ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "SendMessage"},
    "dynamodb": {"GetItem", "PutItem", "DeleteItem"},
    "logs": {"CreateLogStream", "PutLogEvents"},
}
SQS_SEND_ACTIONS = {"sendmessage"}
# The one SQS wildcard: the function replies to onboard-bulk's per-run reply queues,
# which the CLI creates under this stack's name prefix (policy/bulk-operator.json).
BULK_RUN_REPLY_QUEUES = {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-bulk-*"}
# The only routes that may go without an authorizer: the web form and its script and stylesheet.
PUBLIC_PAGE_PATHS = {"/", "/app.js", "/app.css"}
# Scopes any signed-in user's token carries: requiring one of them is no restriction.
STANDARD_SCOPES = {"openid", "email", "profile", "phone", "aws.cognito.signin.user.admin"}
# App client auth flows that send the password itself (not SRP) to Cognito.
PASSWORD_FLOWS = {"ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"}
MIN_PASSWORD_LENGTH = 12
# The only SAM policy template allowed: it is scoped to one queue.
ALLOWED_SAM_POLICY_TEMPLATES = {"SQSPollerPolicy"}


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.resource}: {self.message}"


# ---------------------------------------------------------------- helpers

def alternatives(value: Any) -> list[Any]:
    """The concrete values `value` can take: top-level `Fn::If` expanded
    (recursively); `AWS::NoValue` and absent (None) values dropped."""
    if isinstance(value, dict) and len(value) == 1 and "Fn::If" in value:
        args = value["Fn::If"]
        if isinstance(args, list) and len(args) == 3:
            return alternatives(args[1]) + alternatives(args[2])
    if value is None or value == NO_VALUE:
        return []
    return [value]


def as_list(value: Any) -> list[Any]:
    """A scalar-or-list field (Action, Resource) as a flat list of alternatives."""
    out: list[Any] = []
    for alt in alternatives(value):
        if isinstance(alt, list):
            for item in alt:
                out.extend(alternatives(item))
        else:
            out.append(alt)
    return out


def ref_target(expr: Any) -> str | None:
    """Logical id that a `Ref` or `Fn::GetAtt` points at."""
    if isinstance(expr, dict) and len(expr) == 1:
        if "Ref" in expr and isinstance(expr["Ref"], str):
            return expr["Ref"]
        if "Fn::GetAtt" in expr:
            att = expr["Fn::GetAtt"]
            if isinstance(att, list) and att and isinstance(att[0], str):
                return att[0]
            if isinstance(att, str):
                return att.split(".", 1)[0]
    return None


def targets(expr: Any) -> set[str]:
    """Logical ids an expression can point at: the `Ref`/`GetAtt` of each `Fn::If`
    alternative (a pool id that is the stack's pool or a parameter's, say)."""
    return {target for alt in alternatives(expr) for target in [ref_target(alt)] if target}


def covers(t: dict, outer: str | None, inner: str | None) -> bool:
    """Whether a resource under Condition `outer` exists whenever one under `inner`
    does: no condition, the same one, or `inner` is an `Fn::And` naming `outer`."""
    if outer is None or outer == inner:
        return True
    definition = ((t.get("Conditions") or {}).get(inner)) if inner else None
    if isinstance(definition, dict) and "Fn::And" in definition:
        return {"Condition": outer} in definition["Fn::And"]
    return False


def getatt(expr: Any) -> tuple[str, str] | None:
    if isinstance(expr, dict) and len(expr) == 1 and "Fn::GetAtt" in expr:
        att = expr["Fn::GetAtt"]
        if isinstance(att, str):
            att = att.split(".", 1)
        if isinstance(att, list) and len(att) == 2 and all(isinstance(a, str) for a in att):
            return att[0], att[1]
    return None


def strings_in(expr: Any) -> Iterator[str]:
    if isinstance(expr, str):
        yield expr
    elif isinstance(expr, list):
        for item in expr:
            yield from strings_in(item)
    elif isinstance(expr, dict):
        for key, item in expr.items():
            if key in ("Ref", "Fn::GetAtt", "Condition"):
                continue  # names of things, not ARN text
            yield from strings_in(item)


def refs_in(expr: Any) -> Iterator[str]:
    target = ref_target(expr)
    if target:
        yield target
    elif isinstance(expr, list):
        for item in expr:
            yield from refs_in(item)
    elif isinstance(expr, dict):
        for item in expr.values():
            yield from refs_in(item)


def resources(t: dict, *types: str) -> dict[str, dict]:
    return {
        lid: res
        for lid, res in (t.get("Resources") or {}).items()
        if isinstance(res, dict) and res.get("Type") in types
    }


def props(res: dict) -> dict:
    p = res.get("Properties")
    return p if isinstance(p, dict) else {}


def function_props(t: dict, res: dict) -> dict:
    """A SAM function's properties with `Globals.Function` filled in (shallow)."""
    merged = dict(((t.get("Globals") or {}).get("Function")) or {})
    merged.update(props(res))
    return merged


def functions(t: dict) -> dict[str, dict]:
    return resources(t, "AWS::Serverless::Function", "AWS::Lambda::Function")


def sam_events(t: dict, event_type: str) -> Iterator[tuple[str, str, dict]]:
    """(function id, event id, event properties) for SAM events of one type."""
    for fid, fn in resources(t, "AWS::Serverless::Function").items():
        events = props(fn).get("Events") or {}
        for eid, ev in events.items():
            if isinstance(ev, dict) and ev.get("Type") == event_type:
                yield fid, eid, ev.get("Properties") or {}


def sqs_sources(t: dict) -> list[tuple[str, dict]]:
    """(name, mapping properties) for each SQS event source: SAM SQS events and
    AWS::Lambda::EventSourceMapping resources reading from a queue."""
    queues = resources(t, "AWS::SQS::Queue")
    out = [(f"{fid}.Events.{eid}", {**p, "_queue": p.get("Queue")}) for fid, eid, p in sam_events(t, "SQS")]
    for mid, m in resources(t, "AWS::Lambda::EventSourceMapping").items():
        p = props(m)
        arn = p.get("EventSourceArn")
        if ref_target(arn) in queues or any(":sqs:" in s for s in strings_in(arn)):
            out.append((mid, {**p, "_queue": arn}))
    return out


def source_queue_ids(t: dict) -> set[str]:
    queues = resources(t, "AWS::SQS::Queue")
    return {q for _, p in sqs_sources(t) for q in [ref_target(p["_queue"])] if q in queues}


def reply_queue_ids(t: dict) -> set[str]:
    queues = resources(t, "AWS::SQS::Queue")
    out: set[str] = set()
    for _, fn in functions(t).items():
        env = ((function_props(t, fn).get("Environment") or {}).get("Variables")) or {}
        for key in ("REPLY_QUEUE_URL", "ALLOWED_REPLY_QUEUES"):
            out.update(r for r in refs_in(env.get(key)) if r in queues)
    return out


def dead_letter_ids(t: dict) -> set[str]:
    out = set()
    for _, q in resources(t, "AWS::SQS::Queue").items():
        for rp in alternatives(props(q).get("RedrivePolicy")):
            if isinstance(rp, dict):
                target = ref_target(rp.get("deadLetterTargetArn"))
                if target:
                    out.add(target)
    return out


def resolve_number(t: dict, expr: Any) -> list[float] | None:
    """Numeric values an expression can take: a literal, or a parameter's Default
    (and its MinValue/MaxValue bounds, so a rule holds for any allowed value)."""
    values = []
    for alt in alternatives(expr):
        if isinstance(alt, (int, float)) and not isinstance(alt, bool):
            values.append(float(alt))
        elif isinstance(alt, str) and alt.strip().lstrip("-").isdigit():
            values.append(float(alt))
        elif isinstance(alt, dict) and "Ref" in alt and alt["Ref"] in (t.get("Parameters") or {}):
            param = t["Parameters"][alt["Ref"]]
            found = [param[k] for k in ("Default", "MinValue", "MaxValue") if k in param]
            found += list(param.get("AllowedValues") or [])
            if not found:
                return None
            values.extend(float(v) for v in found)
        else:
            return None
    return values or None


# ---------------------------------------------------------------- rules

def http_post_authorized(t: dict) -> list[Violation]:
    rule = "http-post-authorized"
    out: list[Violation] = []
    apis = resources(t, "AWS::Serverless::HttpApi")
    globals_auth = (((t.get("Globals") or {}).get("HttpApi")) or {}).get("Auth") or {}
    has_post_accounts = False

    for fid, eid, p in sam_events(t, "HttpApi"):
        where = f"{fid}.Events.{eid}"
        method = str(p.get("Method", "ANY")).upper()
        path = str(p.get("Path", "$default"))
        api_id = ref_target(p.get("ApiId"))
        api_auth = (props(apis[api_id]).get("Auth") if api_id in apis else globals_auth) or {}
        if method in ("POST", "ANY") and path == "/accounts":
            has_post_accounts = True
        if method == "GET" and path in PUBLIC_PAGE_PATHS:
            continue  # the public onboarding form and its two files
        if method in ("POST", "ANY") and path == "/accounts":
            scopes = [s for s in as_list((p.get("Auth") or {}).get("AuthorizationScopes")) if s]
            if not scopes:
                out.append(Violation(rule, where, "POST /accounts requires no scope: any token of the audience could create accounts"))
        event_auth = (p.get("Auth") or {}).get("Authorizer")
        for effective in alternatives(event_auth) or alternatives(api_auth.get("DefaultAuthorizer")) or [None]:
            if effective in (None, "NONE"):
                out.append(Violation(rule, where, f"{method} {path} has no authorizer"))
            elif effective == "AWS_IAM":
                if not api_auth.get("EnableIamAuthorizer"):
                    out.append(Violation(rule, where, "AWS_IAM authorizer used but EnableIamAuthorizer is off"))
            else:
                authorizer = (api_auth.get("Authorizers") or {}).get(effective)
                jwt = (authorizer or {}).get("JwtConfiguration") or {}
                if not authorizer:
                    out.append(Violation(rule, where, f"authorizer {effective!r} is not defined on the API"))
                elif not (jwt.get("issuer") and jwt.get("audience")):
                    out.append(Violation(rule, where, f"authorizer {effective!r} is not a JWT authorizer with issuer and audience"))

    for fid, eid, p in sam_events(t, "Api"):
        # REST API events: only the public form may go without an authorizer.
        if str(p.get("Method", "ANY")).upper() == "GET" and p.get("Path") in PUBLIC_PAGE_PATHS:
            continue
        if str(p.get("Method", "")).upper() in ("POST", "ANY") and p.get("Path") == "/accounts":
            has_post_accounts = True
        authorizer = (p.get("Auth") or {}).get("Authorizer")
        if authorizer in (None, "NONE"):
            out.append(Violation(rule, f"{fid}.Events.{eid}", "REST route without an authorizer"))

    # Plain HTTP API resources (AWS::ApiGatewayV2): the route's own authorization,
    # its authorizer (declared here, on the same API, JWT with issuer and audience)
    # and, on POST /accounts, the scopes.
    authorizers = resources(t, "AWS::ApiGatewayV2::Authorizer")
    for rid, r in resources(t, "AWS::ApiGatewayV2::Route").items():
        rp = props(r)
        key = str(rp.get("RouteKey", ""))
        method, _, path = key.partition(" ")
        method = method.upper()
        if method in ("POST", "ANY") and path == "/accounts":
            has_post_accounts = True
            scopes = [s for s in as_list(rp.get("AuthorizationScopes")) if s]
            if not scopes:
                out.append(Violation(rule, rid, "POST /accounts requires no scope: any token of the audience could create accounts"))
            for s in scopes:
                if isinstance(s, str) and s in STANDARD_SCOPES:
                    out.append(Violation(rule, rid, f"POST /accounts requires {s!r}, which every signed-in user has"))
        if method == "GET" and path in PUBLIC_PAGE_PATHS:
            continue
        for auth_type in alternatives(rp.get("AuthorizationType", "NONE")) or ["NONE"]:
            if auth_type not in ("JWT", "AWS_IAM", "CUSTOM"):
                out.append(Violation(rule, rid, f"route {key!r} has AuthorizationType {auth_type}"))
                continue
            if auth_type == "AWS_IAM":
                continue
            aid = ref_target(rp.get("AuthorizerId"))
            if aid not in authorizers:
                out.append(Violation(rule, rid, f"route {key!r} names no authorizer declared in this template"))
                continue
            ap = props(authorizers[aid])
            if ref_target(ap.get("ApiId")) != ref_target(rp.get("ApiId")):
                out.append(Violation(rule, rid, f"authorizer {aid} belongs to another API"))
            if auth_type == "JWT":
                jwt = ap.get("JwtConfiguration") or {}
                if ap.get("AuthorizerType") != "JWT" or not alternatives(jwt.get("Issuer")) or not alternatives(jwt.get("Audience")):
                    out.append(Violation(rule, rid, f"authorizer {aid} is not a JWT authorizer with issuer and audience"))
                for issuer in alternatives(jwt.get("Issuer")):
                    if not issuer or (isinstance(issuer, str) and not issuer.startswith("https://")):
                        out.append(Violation(rule, rid, f"authorizer {aid} has issuer {issuer!r}, not an https:// URL"))
                for audience in alternatives(jwt.get("Audience")):
                    if audience in ([], [""], ""):
                        out.append(Violation(rule, rid, f"authorizer {aid} has an empty audience"))

    for fid, fn in resources(t, "AWS::Serverless::Function").items():
        for cfg in alternatives(props(fn).get("FunctionUrlConfig")):
            for auth in alternatives((cfg or {}).get("AuthType")):
                if auth != "AWS_IAM":
                    out.append(Violation(rule, fid, f"FunctionUrlConfig AuthType is {auth!r}, must be AWS_IAM"))
    for uid, u in resources(t, "AWS::Lambda::Url").items():
        for auth in alternatives(props(u).get("AuthType")):
            if auth != "AWS_IAM":
                out.append(Violation(rule, uid, f"Function URL AuthType is {auth!r}, must be AWS_IAM"))
    for pid, perm in resources(t, "AWS::Lambda::Permission").items():
        if props(perm).get("FunctionUrlAuthType") == "NONE":
            out.append(Violation(rule, pid, "permission opens a Function URL with AuthType NONE"))

    if not has_post_accounts:
        out.append(Violation(rule, "template", "no POST /accounts route found"))
    return out


def _policy_statements(t: dict) -> Iterator[tuple[str, Any]]:
    """(where, statement) for every identity-policy statement; violations for
    policy forms that cannot be checked are yielded as (where, Violation)."""
    rule = "iam-least-privilege"

    def from_document(where: str, doc: Any) -> Iterator[tuple[str, Any]]:
        for d in alternatives(doc):
            for stmt in as_list((d or {}).get("Statement")):
                yield where, stmt

    for rid, role in resources(t, "AWS::IAM::Role").items():
        p = props(role)
        if p.get("ManagedPolicyArns"):
            yield rid, Violation(rule, rid, "managed policies are not allowed; write explicit statements")
        for pol in as_list(p.get("Policies")):
            yield from from_document(f"{rid}.{pol.get('PolicyName', 'Policies')}", pol.get("PolicyDocument"))
    for rid, pol in resources(t, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy").items():
        yield from from_document(rid, props(pol).get("PolicyDocument"))
    sources = source_queue_ids(t)
    for fid, fn in resources(t, "AWS::Serverless::Function").items():
        for pol in as_list(props(fn).get("Policies")):
            if isinstance(pol, str):
                yield fid, Violation(rule, fid, f"managed policy {pol!r} is not allowed; write explicit statements")
            elif isinstance(pol, dict) and "Statement" in pol:
                yield from from_document(fid, pol)
            elif isinstance(pol, dict) and len(pol) == 1:
                name, args = next(iter(pol.items()))
                queue = ref_target((args or {}).get("QueueName")) if isinstance(args, dict) else None
                if name not in ALLOWED_SAM_POLICY_TEMPLATES:
                    yield fid, Violation(rule, fid, f"SAM policy template {name} is not allowed; write explicit statements")
                elif queue not in sources:
                    yield fid, Violation(rule, fid, f"{name} must name the function's event-source queue")


def iam_least_privilege(t: dict) -> list[Violation]:
    rule = "iam-least-privilege"
    out: list[Violation] = []
    allowed = {svc: {a.lower() for a in acts} for svc, acts in ALLOWED_ACTIONS.items()}
    queues = resources(t, "AWS::SQS::Queue")
    tables = resources(t, "AWS::DynamoDB::Table")
    sources = source_queue_ids(t)
    replies = reply_queue_ids(t)

    for where, stmt in _policy_statements(t):
        if isinstance(stmt, Violation):
            out.append(stmt)
            continue
        if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
            continue
        sid = f"{where}[{stmt.get('Sid', '?')}]"
        if "NotAction" in stmt or "NotResource" in stmt:
            out.append(Violation(rule, sid, "NotAction/NotResource grant everything else"))
            continue
        actions = as_list(stmt.get("Action"))
        services: set[str] = set()
        names: set[str] = set()
        for action in actions:
            if not isinstance(action, str):
                out.append(Violation(rule, sid, f"action {action!r} is not a literal"))
                continue
            svc, _, name = action.partition(":")
            svc, name = svc.lower(), name.lower()
            if "*" in action or "?" in action:
                out.append(Violation(rule, sid, f"wildcard action {action!r}"))
                services.add(svc)
                continue
            if name not in allowed.get(svc, set()):
                out.append(Violation(rule, sid, f"action {action!r} is not on the allow-list"))
            services.add(svc)
            names.add(name)
        for res in as_list(stmt.get("Resource")):
            if any("*" in s for s in strings_in(res)):
                if res == "*" and services == {"chime"}:
                    continue  # Chime has no resource-level permissions
                if res == BULK_RUN_REPLY_QUEUES and services == {"sqs"} and names <= SQS_SEND_ACTIONS:
                    continue  # replies to onboard-bulk's per-run queues (this stack's name prefix)
                out.append(Violation(rule, sid, f"wildcard resource {res!r} for {sorted(services)}"))
                continue
            att = getatt(res)
            target = att[0] if att and att[1] == "Arn" else None
            if "sqs" in services:
                if target not in queues:
                    out.append(Violation(rule, sid, "SQS actions must target a queue of this template (GetAtt Queue.Arn)"))
                else:
                    if names & SQS_SEND_ACTIONS and target not in replies:
                        out.append(Violation(rule, sid, f"sqs:SendMessage on {target}, which is not a reply queue"))
                    if names - SQS_SEND_ACTIONS and target not in sources:
                        out.append(Violation(rule, sid, f"SQS receive/delete on {target}, which is not the event-source queue"))
            if "dynamodb" in services and target not in tables:
                out.append(Violation(rule, sid, "DynamoDB actions must target a table of this template (GetAtt Table.Arn)"))
    return out


def queues_have_dlq(t: dict) -> list[Violation]:
    rule = "queues-have-dlq"
    out: list[Violation] = []
    queues = resources(t, "AWS::SQS::Queue")
    dlqs = dead_letter_ids(t)

    def fifo(qid: str) -> list[Any]:
        return [v in (True, "true", "True") for v in alternatives(props(queues[qid]).get("FifoQueue"))] or [False]

    for qid, q in queues.items():
        if qid in dlqs:
            continue
        policies = alternatives(props(q).get("RedrivePolicy"))
        if not policies:
            out.append(Violation(rule, qid, "queue has no RedrivePolicy (no DLQ): failed messages would loop or expire silently"))
        for rp in policies:
            if not isinstance(rp, dict):
                out.append(Violation(rule, qid, "RedrivePolicy must be an object"))
                continue
            target = ref_target(rp.get("deadLetterTargetArn"))
            if target not in queues:
                out.append(Violation(rule, qid, "deadLetterTargetArn must be a DLQ declared in this template"))
            elif props(q).get("FifoQueue") != props(queues[target]).get("FifoQueue") and fifo(qid) != fifo(target):
                out.append(Violation(rule, qid, f"DLQ {target} is not the same kind (FIFO/standard) as the queue"))
            if rp.get("maxReceiveCount") is None:
                out.append(Violation(rule, qid, "RedrivePolicy has no maxReceiveCount"))

    for fid, fn in functions(t).items():
        fp = function_props(t, fn)
        env = ((fp.get("Environment") or {}).get("Variables")) or {}
        timeout = resolve_number(t, fp.get("Timeout", 3)) or [3.0]
        for name, src in sqs_sources(t):
            qid = ref_target(src["_queue"])
            if qid not in queues or not name.startswith(f"{fid}.") and ref_target(src.get("FunctionName")) != fid:
                continue
            for rp in alternatives(props(queues[qid]).get("RedrivePolicy")):
                count = (rp or {}).get("maxReceiveCount")
                if count != env.get("MAX_RECEIVE_COUNT"):
                    out.append(Violation(rule, qid, f"redrive maxReceiveCount {count!r} is not the same expression as {fid}'s MAX_RECEIVE_COUNT {env.get('MAX_RECEIVE_COUNT')!r}; feed both from one parameter"))
            visibility = resolve_number(t, props(queues[qid]).get("VisibilityTimeout", 30))
            if visibility is None or min(visibility) < 6 * max(timeout):
                out.append(Violation(rule, qid, f"VisibilityTimeout {visibility} must be >= 6 x function timeout {max(timeout):g} s"))
    return out


def report_batch_item_failures(t: dict) -> list[Violation]:
    rule = "report-batch-item-failures"
    out: list[Violation] = []
    sources = sqs_sources(t)
    if not sources:
        out.append(Violation(rule, "template", "no SQS event source: the request queue is not consumed"))
    for name, p in sources:
        types = as_list(p.get("FunctionResponseTypes"))
        if "ReportBatchItemFailures" not in types:
            out.append(Violation(rule, name, "FunctionResponseTypes lacks ReportBatchItemFailures: one failure would retry the whole batch"))
        scaling = p.get("ScalingConfig") or {}
        if not isinstance(scaling, dict) or scaling.get("MaximumConcurrency") is None:
            out.append(Violation(rule, name, "ScalingConfig.MaximumConcurrency is not set"))
    return out


def operator_alerts(t: dict) -> list[Violation]:
    rule = "operator-alerts"
    out: list[Violation] = []
    alarms = [props(a) for a in resources(t, "AWS::CloudWatch::Alarm").values()]
    log_groups = resources(t, "AWS::Logs::LogGroup")

    def dims(alarm: dict) -> dict[str, Any]:
        return {d.get("Name"): d.get("Value") for d in as_list(alarm.get("Dimensions")) if isinstance(d, dict)}

    def alerts_on_any(alarm: dict) -> bool:
        threshold = resolve_number(t, alarm.get("Threshold"))
        op = alarm.get("ComparisonOperator")
        return threshold is not None and (
            (op == "GreaterThanThreshold" and max(threshold) <= 0)
            or (op == "GreaterThanOrEqualToThreshold" and max(threshold) <= 1)
        )

    for dlq in sorted(dead_letter_ids(t)):
        if not any(
            a.get("Namespace") == "AWS/SQS"
            and a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and ref_target(dims(a).get("QueueName")) == dlq
            and alerts_on_any(a)
            for a in alarms
        ):
            out.append(Violation(rule, dlq, "no alarm on this DLQ's depth (ApproximateNumberOfMessagesVisible > 0)"))

    for fid, fn in functions(t).items():
        for metric in ("Errors", "Throttles"):
            if not any(
                a.get("Namespace") == "AWS/Lambda"
                and a.get("MetricName") == metric
                and ref_target(dims(a).get("FunctionName")) == fid
                and alerts_on_any(a)
                for a in alarms
            ):
                out.append(Violation(rule, fid, f"no alarm on the function's {metric}"))
        logging = function_props(t, fn).get("LoggingConfig") or {}
        if logging.get("LogFormat") != "JSON":
            out.append(Violation(rule, fid, "LoggingConfig.LogFormat must be JSON"))
        if ref_target(logging.get("LogGroup")) not in log_groups:
            out.append(Violation(rule, fid, "LoggingConfig.LogGroup must be a log group of this template (with retention)"))

    for lid, lg in log_groups.items():
        if props(lg).get("RetentionInDays") is None:
            out.append(Violation(rule, lid, "log group has no RetentionInDays (logs kept forever)"))
    return out


def sign_in_pool(t: dict) -> list[Violation]:
    """A Cognito sign-in created by the template is safe by default: admin-created
    users, a sane password policy, hosted sign-in pages, and a public app client
    limited to the code flow back to this stack's API, able to obtain the scope
    POST /accounts requires, whose id is the JWT authorizer's audience."""
    import render  # local: rules.py stays importable on its own

    rule = "sign-in-pool"
    out: list[Violation] = []
    pools = resources(t, "AWS::Cognito::UserPool")
    clients = resources(t, "AWS::Cognito::UserPoolClient")
    domains = resources(t, "AWS::Cognito::UserPoolDomain")
    servers = resources(t, "AWS::Cognito::UserPoolResourceServer")
    apis = resources(t, "AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi")
    defaults = render.Renderer(t)

    def at_defaults(expr: Any) -> Any:
        try:
            return defaults.choose(expr)
        except (KeyError, ValueError, TypeError):
            return None

    for pid, pool in pools.items():
        p = props(pool)
        admin_only = at_defaults((p.get("AdminCreateUserConfig") or {}).get("AllowAdminCreateUserOnly"))
        if admin_only not in (True, "true", "True"):
            out.append(Violation(rule, pid, "anyone can sign up by default (AdminCreateUserConfig.AllowAdminCreateUserOnly is not true with the default parameters)"))
        for length in alternatives(((p.get("Policies") or {}).get("PasswordPolicy") or {}).get("MinimumLength")):
            if not isinstance(length, int) or length < MIN_PASSWORD_LENGTH:
                out.append(Violation(rule, pid, f"PasswordPolicy.MinimumLength {length!r} is below {MIN_PASSWORD_LENGTH}"))
        if not alternatives(((p.get("Policies") or {}).get("PasswordPolicy") or {}).get("MinimumLength")):
            out.append(Violation(rule, pid, f"no PasswordPolicy.MinimumLength (>= {MIN_PASSWORD_LENGTH})"))
        if pool.get("DeletionPolicy") != "Retain" and p.get("DeletionProtection") != "ACTIVE":
            out.append(Violation(rule, pid, "the pool (its users) goes with the stack: DeletionPolicy Retain or DeletionProtection ACTIVE"))
        if not any(pid in targets(props(d).get("UserPoolId")) and covers(t, d.get("Condition"), pool.get("Condition"))
                   for d in domains.values()):
            out.append(Violation(rule, pid, "no UserPoolDomain (under the same Condition): the form's client has no sign-in pages"))

    route_scopes: list[Any] = []
    for r in resources(t, "AWS::ApiGatewayV2::Route").values():
        if str(props(r).get("RouteKey", "")) in ("POST /accounts", "ANY /accounts"):
            route_scopes += [s for s in as_list(props(r).get("AuthorizationScopes")) if s]

    for cid, client in clients.items():
        p = props(client)
        pool_id = next((target for target in targets(p.get("UserPoolId")) if target in pools), None)
        if pool_id is None:
            continue  # a client of a pool made elsewhere is not this template's sign-in
        for secret in alternatives(p.get("GenerateSecret")):
            if secret in (True, "true", "True"):
                out.append(Violation(rule, cid, "the form's client has a secret: a page cannot keep one (public client, PKCE)"))
        for flows in alternatives(p.get("AllowedOAuthFlows")):
            if flows != ["code"]:
                out.append(Violation(rule, cid, f"AllowedOAuthFlows {flows!r}: only [code] (the page adds PKCE; no implicit, no client_credentials)"))
        if not alternatives(p.get("AllowedOAuthFlows")):
            out.append(Violation(rule, cid, "no AllowedOAuthFlows: the form cannot sign in"))
        if p.get("AllowedOAuthFlowsUserPoolClient") not in (True, "true"):
            out.append(Violation(rule, cid, "AllowedOAuthFlowsUserPoolClient is not true: the OAuth flows are off"))
        if p.get("PreventUserExistenceErrors") != "ENABLED":
            out.append(Violation(rule, cid, "PreventUserExistenceErrors is not ENABLED: sign-in errors reveal who has an account"))
        if not as_list(p.get("SupportedIdentityProviders")):
            out.append(Violation(rule, cid, "no SupportedIdentityProviders"))
        for flow in as_list(p.get("ExplicitAuthFlows")):
            if flow in PASSWORD_FLOWS:
                out.append(Violation(rule, cid, f"ExplicitAuthFlows has {flow}, which sends the password itself"))
        for field in ("CallbackURLs", "LogoutURLs"):
            urls = as_list(p.get(field))
            if field == "CallbackURLs" and not urls:
                out.append(Violation(rule, cid, "no CallbackURLs"))
            for url in urls:
                text = url if isinstance(url, str) else (url.get("Fn::Sub") if isinstance(url, dict) else None)
                if isinstance(text, list):
                    text = text[0]
                if not isinstance(text, str) or not text.startswith("https://"):
                    out.append(Violation(rule, cid, f"{field} {url!r} is not an https:// URL"))
                elif field == "CallbackURLs" and not (set(re.findall(r"\$\{([A-Za-z0-9]+)[.}]", text)) & set(apis)):
                    out.append(Violation(rule, cid, f"callback {text!r} is not this stack's API URL"))
        scopes = as_list(p.get("AllowedOAuthScopes"))
        for needed in route_scopes:
            if needed not in scopes:
                out.append(Violation(rule, cid, f"AllowedOAuthScopes lacks {needed!r}, the scope POST /accounts requires"))
        custom = [s for s in scopes if not (isinstance(s, str) and s in STANDARD_SCOPES)]
        if custom and not any(pool_id in targets(props(rs).get("UserPoolId")) for rs in servers.values()):
            out.append(Violation(rule, cid, "the client asks for a custom scope but the pool has no resource server"))

    # The authorizer trusts the created pool only for its own client.
    for aid, a in resources(t, "AWS::ApiGatewayV2::Authorizer").items():
        jwt = props(a).get("JwtConfiguration") or {}
        issuer_expr = jwt.get("Issuer")
        audience_expr = jwt.get("Audience")
        pairs = [(issuer_expr, audience_expr)]
        if isinstance(issuer_expr, dict) and "Fn::If" in issuer_expr and isinstance(audience_expr, dict) and "Fn::If" in audience_expr \
                and issuer_expr["Fn::If"][0] == audience_expr["Fn::If"][0]:
            pairs = [(issuer_expr["Fn::If"][1], audience_expr["Fn::If"][1]), (issuer_expr["Fn::If"][2], audience_expr["Fn::If"][2])]
        for issuer, audience in pairs:
            pool_refs = {r for r in refs_in(issuer) if r in pools} | {
                n for s in strings_in(issuer) for n in re.findall(r"\$\{([A-Za-z0-9]+)\}", s) if n in pools}
            if not pool_refs:
                continue
            if not any("cognito-idp." in s for s in strings_in(issuer)):
                out.append(Violation(rule, aid, "the issuer of a created pool is https://cognito-idp.<region>.amazonaws.com/<pool id>"))
            audiences = {r for r in refs_in(audience)}
            own = {cid for cid, c in clients.items() if targets(props(c).get("UserPoolId")) & pool_refs}
            if not audiences or not audiences <= own:
                out.append(Violation(rule, aid, f"the audience for the created pool must be its own client(s) {sorted(own)}, not {audience!r}"))
    return out


def safe_releases(t: dict) -> list[Violation]:
    rule = "safe-releases"
    out: list[Violation] = []
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    sam_functions = resources(t, "AWS::Serverless::Function")
    for fid, fn in sam_functions.items():
        p = function_props(t, fn)
        if not alternatives(p.get("AutoPublishAlias")):
            out.append(Violation(rule, fid, "no AutoPublishAlias: a deploy replaces the running code at once, with nothing to roll back to"))
        dp = p.get("DeploymentPreference")
        if not isinstance(dp, dict) or not alternatives(dp.get("Type")):
            out.append(Violation(rule, fid, "no DeploymentPreference Type: a new version takes all traffic at once"))
            continue
        if dp.get("Enabled") in (False, "false", "False"):
            out.append(Violation(rule, fid, "DeploymentPreference is disabled"))
        if not any(ref_target(a) in alarms for a in as_list(dp.get("Alarms"))):
            out.append(Violation(rule, fid, "DeploymentPreference has no alarm of this template: a bad release is never rolled back"))

    def through_alias(where: str, expr: Any, what: str) -> None:
        for alt in alternatives(expr):
            target = ref_target(alt)
            named = {target} if target else set()
            named |= {n.split(".")[0] for s in strings_in(alt) for n in re.findall(r"\$\{([A-Za-z0-9.]+)\}", s)
                      if not n.endswith(".Alias")}
            for fid in named & set(sam_functions):
                if target != f"{fid}.Alias":
                    out.append(Violation(rule, where, f"{what} names {fid} itself ($LATEST), not its alias: use !Ref {fid}.Alias"))

    for iid, integration in resources(t, "AWS::ApiGatewayV2::Integration").items():
        through_alias(iid, props(integration).get("IntegrationUri"), "the integration")
    for pid, perm in resources(t, "AWS::Lambda::Permission").items():
        through_alias(pid, props(perm).get("FunctionName"), "the permission")
    for uid, url in resources(t, "AWS::Lambda::Url").items():
        if not props(url).get("Qualifier"):
            through_alias(uid, props(url).get("TargetFunctionArn"), "the Function URL")
    for mid, mapping in resources(t, "AWS::Lambda::EventSourceMapping").items():
        through_alias(mid, props(mapping).get("FunctionName"), "the event source mapping")
    return out


def retained_data(t: dict) -> list[Violation]:
    rule = "retained-data"
    out: list[Violation] = []
    kept = {
        **{q: "DLQ (failed requests or replies)" for q in dead_letter_ids(t)},
        **{d: "table (idempotency records)" for d in resources(t, "AWS::DynamoDB::Table")},
        **{u: "user pool (the people who sign in)" for u in resources(t, "AWS::Cognito::UserPool")},
    }
    for lid, what in sorted(kept.items()):
        res = (t.get("Resources") or {}).get(lid)
        if not isinstance(res, dict):
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if res.get(policy) != "Retain":
                out.append(Violation(rule, lid, f"{policy} is {res.get(policy, 'Delete (the default)')}: the {what} would go with the stack"))
    return out


def log_level(t: dict) -> list[Violation]:
    rule = "log-level"
    out: list[Violation] = []
    params = t.get("Parameters") or {}

    def check(where: str, expr: Any) -> None:
        for alt in alternatives(expr):
            if isinstance(alt, str):
                if "trace" in alt.lower():
                    out.append(Violation(rule, where, f"{alt!r} logs whole events (TRACE)"))
            elif ref_target(alt) in params:
                allowed = params[ref_target(alt)].get("AllowedValues")
                if not allowed:
                    out.append(Violation(rule, where, f"parameter {ref_target(alt)} has no AllowedValues: TRACE could be deployed"))
                elif any("trace" in str(v).lower() for v in allowed):
                    out.append(Violation(rule, where, f"parameter {ref_target(alt)} allows TRACE, which logs whole events"))
            else:
                out.append(Violation(rule, where, f"log level {alt!r} cannot be checked: a literal or a parameter with AllowedValues"))

    for fid, fn in functions(t).items():
        p = function_props(t, fn)
        logging = p.get("LoggingConfig") or {}
        if "ApplicationLogLevel" in logging:
            check(f"{fid}.LoggingConfig.ApplicationLogLevel", logging["ApplicationLogLevel"])
        env = ((p.get("Environment") or {}).get("Variables")) or {}
        for name in ("AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"):
            if name in env:
                check(f"{fid}.Environment.{name}", env[name])
    return out


RULES: dict[str, Callable[[dict], list[Violation]]] = {
    "http-post-authorized": http_post_authorized,
    "iam-least-privilege": iam_least_privilege,
    "queues-have-dlq": queues_have_dlq,
    "report-batch-item-failures": report_batch_item_failures,
    "operator-alerts": operator_alerts,
    "sign-in-pool": sign_in_pool,
    "safe-releases": safe_releases,
    "retained-data": retained_data,
    "log-level": log_level,
}


def check(t: dict, only: Iterable[str] | None = None) -> list[Violation]:
    names = list(only) if only else list(RULES)
    return list(itertools.chain.from_iterable(RULES[n](t) for n in names))
