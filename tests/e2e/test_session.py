"""The form as a person uses it day to day (issue 22): who is signed in, a
sign-out that ends the session at the issuer, a sign-in that expires while a
name is typed, API Gateway's own answers (no problem `code`), and a browser
without scripts where sign-in is required. Each state is checked with axe-core
and saved as a screenshot.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from steps import authorize, check, sign_in, submit, unique


def form_is_back_signed_in(page: Page) -> None:
    expect(page.get_by_label("Account name")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def expect_plain_words(page: Page, words: str) -> None:
    """The summary says `words`, never a bare status; the field is not blamed."""
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text(words)
    expect(summary).not_to_contain_text(re.compile(r"HTTP|\(\d{3}\)|Something went wrong \("))
    expect(page.get_by_label("Account name")).not_to_have_attribute("aria-invalid", "true")


def created(chime, name: str) -> int:
    return [a["Name"] for a in chime.accounts()].count(name)


# ------------------------------------------------------------ who is signed in

@pytest.mark.parametrize(
    "state,sub,claims,shown",
    [
        ("signed-in-as", "alice.sub", {"name": "Alice Example", "email": "alice@example.com"}, "Alice Example"),
        ("signed-in-as-email", "bob.sub", {"email": "bob@example.com"}, "bob@example.com"),
    ],
)
def test_the_header_says_who_is_signed_in(page: Page, app: str, issuer, out: Path,
                                          state: str, sub: str, claims: dict, shown: str):
    issuer.set_user(sub, claims)
    sign_in(page, app, sub)
    header = page.get_by_role("banner")
    expect(header).to_contain_text(f"Signed in as {shown}")
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    check(page, out, state)


# ------------------------------------------------------------ sign-out at the issuer

def test_sign_out_ends_the_session_at_the_issuer(page: Page, app: str, out: Path):
    sign_in(page, app, "carol@example.com")
    # The issuer remembers her: a new tab's "Sign in" goes straight through.
    other = page.context.new_page()
    other.goto(app + "/")
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("banner")).to_contain_text("Signed in as carol@example.com")
    other.close()

    page.get_by_role("button", name="Sign out").click()
    # The issuer's end_session_endpoint, with the ID token as a hint and the
    # page to come back to.
    page.wait_for_url(re.compile(r"/oauth2/end_session\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["client_id"] == ["chime-onboard-web"]
    assert query["post_logout_redirect_uri"] == [app + "/"]
    assert query["id_token_hint"][0].count(".") == 2
    page.get_by_role("button", name="End session").click()

    expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()
    expect(page.get_by_role("banner")).not_to_contain_text("Signed in", use_inner_text=True)
    expect(page.get_by_label("Account name")).to_be_hidden()
    check(page, out, "signed-out-after-sign-out")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in first")).to_be_visible()
    # The next "Sign in" asks who is there instead of going through as Carol.
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_placeholder("sub")).to_be_visible()
    authorize(page, "dave@example.com")
    expect(page.get_by_role("banner")).to_contain_text("Signed in as dave@example.com")


def test_sign_out_at_a_cognito_style_issuer(page: Page, cognito_app: str):
    sign_in(page, cognito_app, "erin@example.com")
    with page.expect_request(re.compile(r"/logout\?")) as logout:
        page.get_by_role("button", name="Sign out").click()
    # Cognito's /logout takes client_id and logout_uri, and sends straight back.
    query = parse_qs(urlsplit(logout.value.url).query)
    assert query == {"client_id": ["chime-onboard-web"], "logout_uri": [cognito_app + "/"]}
    expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_placeholder("sub")).to_be_visible()


# ------------------------------------------------------------ expiry

def test_an_expired_sign_in_keeps_the_name_and_sends_it_once_with_the_same_key(
        page: Page, app: str, chime, gateway, out: Path):
    sign_in(page, app)
    name = unique("Expired")
    # API Gateway's JWT authorizer refuses the token: 401, no `code`.
    gateway.answer(401, {"message": "Unauthorized"},
                   {"www-authenticate": 'Bearer error="invalid_token" error_description="the token has expired"'})
    submit(page, name)
    expect(page.get_by_role("heading", name="Your sign-in has expired")).to_be_visible()
    expect(page.get_by_role("status").first).to_have_text("Your sign-in has expired — sign in again.")
    expect(page.get_by_text("The account name you typed will still be here.")).to_be_visible()
    expect(page.get_by_label("Account name")).to_be_hidden()
    check(page, out, "expired")

    # Signing in again (the issuer still knows her: straight back) brings the name back.
    page.get_by_role("button", name="Sign in").click()
    form_is_back_signed_in(page)
    expect(page.get_by_label("Account name")).to_have_value(name)
    expect(page.get_by_role("status").first).to_contain_text("The account name you typed is still here")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("region", name="Account created")).to_be_visible()

    sent = gateway.requests()
    assert [r["faked"] for r in sent] == [True, False]
    assert sent[0]["idempotencyKey"] and sent[0]["idempotencyKey"] == sent[1]["idempotencyKey"]
    assert created(chime, name) == 1


def test_a_sign_in_that_ran_out_in_the_tab_says_so_and_keeps_the_name(page: Page, app: str, chime, gateway):
    sign_in(page, app)
    name = unique("Later")
    page.get_by_label("Account name").fill(name)
    # The token's lifetime passes while the page is open.
    page.evaluate("""() => {
        const key = "chime-onboard.token";
        const token = JSON.parse(sessionStorage.getItem(key));
        token.expires = Date.now() - 1;
        sessionStorage.setItem(key, JSON.stringify(token));
    }""")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your sign-in has expired")).to_be_visible()
    assert gateway.requests() == [], "nothing is sent with a token known to have expired"
    page.reload()
    expect(page.get_by_role("heading", name="Sign in first")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    form_is_back_signed_in(page)
    expect(page.get_by_label("Account name")).to_have_value(name)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("region", name="Account created")).to_be_visible()
    assert created(chime, name) == 1


# ------------------------------------------------------------ API Gateway's own answers

def test_a_missing_scope_says_to_ask_an_administrator(page: Page, app: str, chime, gateway, out: Path):
    sign_in(page, app)
    name = unique("Forbidden")
    gateway.answer(403, {"message": "Forbidden"})
    submit(page, name)
    expect_plain_words(page, "you do not have permission to create accounts. "
                             "Ask an administrator of this service to give you access")
    assert created(chime, name) == 0
    check(page, out, "forbidden")


def test_the_gateway_throttling_says_when_to_retry_and_the_retry_is_the_same_submission(
        page: Page, app: str, chime, gateway, out: Path):
    sign_in(page, app)
    name = unique("Busy")
    gateway.answer(429, {"message": "Too Many Requests"}, {"retry-after": "7"})
    submit(page, name)
    expect_plain_words(page, "The service is busy right now. Try again in 7 seconds.")
    check(page, out, "gateway-throttled")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("region", name="Account created")).to_be_visible()
    keys = {r["idempotencyKey"] for r in gateway.requests()}
    assert len(keys) == 1 and created(chime, name) == 1


@pytest.mark.parametrize(
    "status,body,headers,words",
    [
        (500, {"message": "Internal Server Error"}, {},
         "Something went wrong in the service, so the account may not have been created. Try again in a minute."),
        (502, {"message": "Internal Server Error"}, {},
         "Something went wrong in the service, so the account may not have been created. Try again in a minute."),
        (503, {"message": "Service Unavailable"}, {"retry-after": "30"},
         "The service is unavailable right now. Try again in 30 seconds."),
        (504, {"message": "Endpoint request timed out"}, {},
         "The service did not answer in time, so the account may not have been created. Try again in a minute."),
    ],
)
def test_a_gateway_failure_is_said_in_plain_words_and_a_retry_reuses_the_key(
        page: Page, app: str, chime, gateway, out: Path, status: int, body: dict, headers: dict, words: str):
    sign_in(page, app)
    name = unique(f"Failed{status}")
    gateway.answer(status, body, headers)
    submit(page, name)
    expect_plain_words(page, words)
    check(page, out, f"gateway-{status}")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("region", name="Account created")).to_be_visible()
    keys = {r["idempotencyKey"] for r in gateway.requests()}
    assert len(keys) == 1 and created(chime, name) == 1


# ------------------------------------------------------------ no scripts, sign-in required

def test_without_scripts_where_sign_in_is_required_the_page_says_so_and_offers_no_form(
        browser: Browser, app: str, out: Path):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1024, "height": 800})
    try:
        page = context.new_page()
        page.goto(app + "/")
        expect(page.get_by_role("heading", name="Turn on JavaScript to sign in")).to_be_visible()
        # (Playwright's text engine skips <noscript>: read the block itself.)
        expect(page.locator("#noscript")).to_contain_text(
            "Turn on JavaScript in your browser's settings, then reload this page.")
        expect(page.get_by_label("Account name")).to_be_hidden()
        expect(page.get_by_role("button")).to_have_count(0)
        page.screenshot(path=str(out / "screenshots" / "no-js-sign-in-required.png"), full_page=True)
        html = page.content()
    finally:
        context.close()
    # axe needs scripts: check the same markup, the <noscript> part shown and
    # the page's own script left out, in a scripted page.
    html = re.sub(r"<script[^>]*></script>", "", html)
    html = html.replace("<noscript>", "<div>").replace("</noscript>", "</div>")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(app + "/no-script", lambda route: route.fulfill(
            status=200, content_type="text/html; charset=utf-8", body=html))
        page.goto(app + "/no-script")
        expect(page.get_by_role("heading", name="Turn on JavaScript to sign in")).to_be_visible()
        check(page, out, "no-js-sign-in-required-axe")
    finally:
        context.close()
