"""chime-local as boto3's chime client sees it.

Starts the chime-local binary (``CHIME_LOCAL_BIN``, default ``target/debug/chime-local``,
built with cargo when missing) on a free loopback port, then drives every account operation
and validation edge through ``boto3.client("chime")`` and asserts the ``ClientError`` codes.
"""

import json
import os
import selectors
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
NO_RETRY = {"total_max_attempts": 1}


def _binary() -> Path:
    binary = Path(os.environ.get("CHIME_LOCAL_BIN", ROOT / "target" / "debug" / "chime-local"))
    if not binary.is_absolute():
        binary = ROOT / binary
    if not binary.exists():
        subprocess.run(
            ["cargo", "build", "-p", "chime-local", "--bin", "chime-local"], cwd=ROOT, check=True
        )
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChimeLocal:
    """A chime-local process; ``url`` once it printed its listening line."""

    def __init__(self, *extra: str):
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [str(_binary()), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = self._wait_for_url(timeout=30)

    def _wait_for_url(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.stop()
            raise RuntimeError("chime-local printed no URL")
        line = self.proc.stdout.readline().strip()
        if "http://" not in line:
            self.stop()
            raise RuntimeError(f"unexpected first line: {line!r}")
        url = line[line.index("http://"):]
        assert url.endswith(f":{self.port}"), url
        return url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def control(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req) as res:
            text = res.read().decode()
            return json.loads(text) if text else None

    def faults(self, **faults):
        return self.control("POST", "/_chime-local/faults", faults)

    def reset(self) -> None:
        self.control("DELETE", "/_chime-local/faults")
        self.control("DELETE", "/_chime-local/accounts")
        self.control("DELETE", "/_chime-local/stats")

    def client(self, key="test", secret="test", **config):
        return boto3.client(
            "chime",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries=NO_RETRY, **config),
        )


@pytest.fixture(scope="module")
def server():
    srv = ChimeLocal()
    yield srv
    srv.stop()


@pytest.fixture
def chime(server):
    server.reset()
    return server.client()


@pytest.fixture
def unvalidated(server):
    """A client that sends what botocore would refuse to (parameter_validation off)."""
    server.reset()
    return server.client(parameter_validation=False)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


# ---- every operation ----


def test_create_get_update_delete(chime, server):
    created = chime.create_account(Name="example")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["ResponseMetadata"]["RequestId"]
    account = created["Account"]
    assert account["Name"] == "example"
    assert account["AccountType"] == "Team"
    assert account["AccountStatus"] == "Active"
    assert account["AwsAccountId"] == "111122223333"
    assert account["DefaultLicense"] == "Pro"
    assert account["SupportedLicenses"] == ["Basic", "Pro"]
    assert account["SigninDelegateGroups"] == []
    assert account["CreatedTimestamp"].year >= 2024  # parsed as an ISO 8601 timestamp
    account_id = account["AccountId"]

    assert chime.get_account(AccountId=account_id)["Account"] == account

    updated = chime.update_account(AccountId=account_id, Name="renamed", DefaultLicense="Basic")
    assert updated["Account"]["Name"] == "renamed"
    assert updated["Account"]["DefaultLicense"] == "Basic"

    deleted = chime.delete_account(AccountId=account_id)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(chime.exceptions.NotFoundException) as e:
        chime.get_account(AccountId=account_id)
    assert status(e) == 404
    assert e.value.response["Error"]["Message"]


def test_unknown_account_is_not_found(chime):
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (
        lambda: chime.get_account(AccountId=missing),
        lambda: chime.update_account(AccountId=missing, Name="x"),
        lambda: chime.delete_account(AccountId=missing),
    ):
        with pytest.raises(chime.exceptions.NotFoundException):
            call()


def test_list_paginates_across_three_pages(chime):
    ids = [chime.create_account(Name=f"team-{i}")["Account"]["AccountId"] for i in range(5)]
    pages, seen, token = [], [], None
    while True:
        kwargs = {"MaxResults": 2, **({"NextToken": token} if token else {})}
        page = chime.list_accounts(**kwargs)
        pages.append(len(page["Accounts"]))
        seen += [a["AccountId"] for a in page["Accounts"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [2, 2, 1]
    assert seen == ids
    # botocore's paginator agrees.
    paginated = chime.get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": 2})
    assert [a["AccountId"] for p in paginated for a in p["Accounts"]] == ids


def test_list_filters(chime):
    for name in ("alpha one", "alpha two", "beta"):
        chime.create_account(Name=name)
    assert len(chime.list_accounts(Name="alpha")["Accounts"]) == 2
    assert chime.list_accounts(UserEmail="someone@example.com")["Accounts"] == []
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.list_accounts(NextToken="garbage")
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.list_accounts(UserEmail="not-an-email")


@pytest.mark.parametrize("max_results", [0, 201])
def test_list_max_results_out_of_range(unvalidated, max_results):
    with pytest.raises(unvalidated.exceptions.BadRequestException) as e:
        unvalidated.list_accounts(MaxResults=max_results)
    assert status(e) == 400


# ---- validation edges ----


@pytest.mark.parametrize("unit", ["a", "é", "€", "😀"])
def test_name_length_counts_unicode_scalar_values(chime, unit):
    assert chime.create_account(Name=unit * 100)["Account"]["Name"] == unit * 100
    with pytest.raises(chime.exceptions.BadRequestException) as e:
        chime.create_account(Name=unit * 101)
    assert error_code(e) == "BadRequestException"
    assert status(e) == 400


@pytest.mark.parametrize(
    "name",
    [" ", "   ", "\t", " \t\x0b\x0c ", "a\nb", "a\rb", "a\u0085b", "a\u2028b", "a\u2029b", "\u2028"],
)
def test_blank_or_multiline_names_are_rejected(chime, name):
    with pytest.raises(chime.exceptions.BadRequestException) as e:
        chime.create_account(Name=name)
    assert ".*\\S.*" in e.value.response["Error"]["Message"]


@pytest.mark.parametrize("name", ["\u00a0", "\u3000", " padded\t", "x"])
def test_java_whitespace_is_ascii_only(chime, name):
    # Java's \S is [^ \t\n\x0B\f\r]: NBSP alone is a valid Chime account name.
    assert chime.create_account(Name=name)["Account"]["Name"] == name


def test_empty_name(unvalidated):
    with pytest.raises(unvalidated.exceptions.BadRequestException):
        unvalidated.create_account(Name="")


def test_missing_name(unvalidated, server):
    with pytest.raises(unvalidated.exceptions.BadRequestException) as e:
        unvalidated.create_account()
    assert "null" in e.value.response["Error"]["Message"]
    assert server.control("GET", "/_chime-local/accounts")["Accounts"] == []


@pytest.mark.parametrize("name", [123, True, ["a"], {"a": 1}])
def test_name_of_wrong_type(unvalidated, name):
    with pytest.raises(unvalidated.exceptions.BadRequestException):
        unvalidated.create_account(Name=name)


def _raw(server, method, path, body: bytes, headers=None):
    req = urllib.request.Request(server.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_malformed_json_is_bad_request(server):
    auth = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/chime/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00",
        "X-Amz-Date": "20260101T000000Z",
    }
    code, headers, body = _raw(server, "POST", "/accounts", b'{"Name": "a"', auth)
    assert code == 400
    assert headers["x-amzn-errortype"] == "BadRequestException"
    assert json.loads(body)["Code"] == "BadRequest"
    assert headers["x-amzn-requestid"]


def test_unsigned_request_is_refused(server):
    code, headers, body = _raw(server, "POST", "/accounts", b'{"Name": "a"}')
    assert code == 403
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_console_path_creates(server):
    server.reset()
    code, _, body = _raw(
        server,
        "POST",
        "/console/accounts",
        b'{"Name": "example"}',
        {
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/chime/aws4_request, "
            "SignedHeaders=host, Signature=00"
        },
    )
    assert code == 201
    assert json.loads(body)["Account"]["Name"] == "example"


# ---- faults ----


@pytest.mark.parametrize(
    "fault,error,http",
    [
        ("throttle_rate", "ThrottledClientException", 429),
        ("unavailable_rate", "ServiceUnavailableException", 503),
        ("failure_rate", "ServiceFailureException", 500),
    ],
)
def test_rate_faults(chime, server, fault, error, http):
    server.faults(**{fault: 1.0})
    with pytest.raises(getattr(chime.exceptions, error)) as e:
        chime.create_account(Name="x")
    assert status(e) == http
    server.faults()
    chime.create_account(Name="x")
    stats = server.control("GET", "/_chime-local/stats")
    assert stats["by_operation"]["CreateAccount"] == {error: 1, "Success": 1}


def test_fail_next_in_order(chime, server):
    server.faults(fail_next=["ThrottledClientException", "ServiceUnavailableException", "ConnectionReset"])
    with pytest.raises(chime.exceptions.ThrottledClientException):
        chime.list_accounts()
    with pytest.raises(chime.exceptions.ServiceUnavailableException):
        chime.create_account(Name="x")
    with pytest.raises(botocore.exceptions.BotoCoreError):
        chime.list_accounts()
    chime.create_account(Name="x")
    assert len(server.control("GET", "/_chime-local/accounts")["Accounts"]) == 1


def test_seed_reproduces_faults(chime, server):
    def run(seed):
        server.faults(throttle_rate=0.3, unavailable_rate=0.3, seed=seed)
        out = []
        for _ in range(30):
            try:
                chime.list_accounts()
                out.append("ok")
            except botocore.exceptions.ClientError as err:
                out.append(err.response["Error"]["Code"])
        return out

    assert run(11) == run(11)
    assert len(set(run(11))) == 3


def test_signature_verified_with_credentials():
    srv = ChimeLocal("--access-key", "AKIDCHIMELOCAL", "--secret-key", "s3cr3t")
    try:
        good = srv.client("AKIDCHIMELOCAL", "s3cr3t")
        account_id = good.create_account(Name="signed")["Account"]["AccountId"]
        good.get_account(AccountId=account_id)
        good.list_accounts(Name="signed name?&=+/", MaxResults=5)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            srv.client("AKIDCHIMELOCAL", "wrong").create_account(Name="x")
        assert error_code(e) == "InvalidSignatureException"
        assert status(e) == 403
        with pytest.raises(botocore.exceptions.ClientError) as e:
            srv.client("AKIDOTHER", "s3cr3t").create_account(Name="x")
        assert error_code(e) == "UnrecognizedClientException"
    finally:
        srv.stop()


# ---- after-commit faults: the account is kept, the answer is lost ----


@pytest.mark.parametrize(
    "fault,raised,counted",
    [
        ("after_commit_failure_rate", "ServiceFailureException", "ServiceFailureException"),
        ("after_commit_unavailable_rate", "ServiceUnavailableException", "ServiceUnavailableException"),
        ("after_commit_reset_rate", botocore.exceptions.ConnectionClosedError, "ConnectionReset"),
        ("after_commit_withhold_rate", botocore.exceptions.ReadTimeoutError, "Withheld"),
    ],
)
def test_after_commit_faults_keep_the_account(server, fault, raised, counted):
    server.reset()
    # Retries off; the read times out long before a withheld answer would come.
    chime = server.client(read_timeout=0.5)
    server.faults(**{fault: 1.0, "withhold_ms": 5000})
    if isinstance(raised, str):
        with pytest.raises(getattr(chime.exceptions, raised)):
            chime.create_account(Name="kept")
    else:
        with pytest.raises(raised):
            chime.create_account(Name="kept")
    # Reads are never faulted after the commit: exactly one account, listed by name.
    assert [a["Name"] for a in chime.list_accounts(Name="kept")["Accounts"]] == ["kept"]
    stats = server.control("GET", "/_chime-local/stats")
    assert stats["after_commit"][counted] == 1
    assert sum(stats["after_commit"].values()) == 1
    assert stats["by_operation"]["CreateAccount"] == {counted: 1}


def test_committed_fail_next_waits_for_a_mutation(chime, server):
    server.faults(fail_next=["CommittedServiceUnavailable"])
    for _ in range(3):
        chime.list_accounts()
    pending = server.control("GET", "/_chime-local/faults")["fail_next"]
    assert pending == ["CommittedServiceUnavailable"]
    with pytest.raises(chime.exceptions.ServiceUnavailableException):
        chime.create_account(Name="once")
    assert len(chime.list_accounts(Name="once")["Accounts"]) == 1


def test_after_commit_flags():
    srv = ChimeLocal(
        "--after-commit-reset-rate", "0.25", "--after-commit-withhold-rate", "0.5", "--withhold-ms", "750"
    )
    try:
        faults = srv.control("GET", "/_chime-local/faults")
        assert faults["after_commit_reset_rate"] == 0.25
        assert faults["after_commit_withhold_rate"] == 0.5
        assert faults["withhold_ms"] == 750
        assert faults["after_commit_failure_rate"] == 0
    finally:
        srv.stop()
    bad = subprocess.run(
        [str(_binary()), "--after-commit-failure-rate", "0.7", "--after-commit-reset-rate", "0.7"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0
    assert "must not exceed 1" in bad.stderr
