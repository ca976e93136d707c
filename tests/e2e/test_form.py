"""The onboarding form in Chromium, driven the way a person uses it: by label and
role. Each state is checked with axe-core (no serious or critical violation) and
saved as a screenshot under $E2E_OUT/screenshots.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from steps import check, expect_field_error, sign_in, submit, unique


def test_signed_out_page_offers_sign_in_and_no_form(page: Page, app: str, out: Path):
    page.goto(app + "/")
    expect(page.get_by_role("heading", name="Sign in first")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Account name")).to_be_hidden()
    # Strict policy: no inline script or style, nothing from another origin.
    response = page.request.get(app + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    check(page, out, "signed-out")


def test_sign_in_shows_the_empty_form(page: Page, app: str, out: Path):
    sign_in(page, app)
    expect(page.get_by_text("You can enter up to 100 characters").or_(
        page.get_by_text("You have 100 characters remaining"))).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("Signed in as alice@example.com")
    check(page, out, "empty-form")


def test_create_shows_the_account_named_with_its_id_that_exists_in_chime_local(page: Page, app: str, chime,
                                                                              out: Path):
    sign_in(page, app)
    name = unique("Acme")
    submit(page, "  " + name + " ")
    result = page.get_by_role("region", name="Account created")
    expect(result).to_be_visible()
    # The panel names the account as it was created (trimmed), beside its id.
    expect(result.locator("#account-name")).to_have_text(name)
    account_id = page.locator("#account-id").inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", account_id), account_id
    assert any(a["AccountId"] == account_id and a["Name"] == name for a in chime.accounts())
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy account ID").click()
    expect(page.get_by_role("status").first).to_have_text(re.compile("copied|selected"))
    check(page, out, "success")


@pytest.mark.parametrize(
    "state,name,message",
    [
        ("error-empty", "", "Enter an account name"),
        ("error-whitespace", "   \u00a0  ", "Enter an account name"),
        ("error-too-long", "x" * 101, "Account name must be 100 characters or fewer"),
        ("error-control-character", "Acme\u0007Corp", "must not contain tabs, line breaks or other control characters"),
    ],
)
def test_each_bad_name_shows_its_message_beside_the_field(page: Page, app: str, chime, out: Path,
                                                          state: str, name: str, message: str):
    sign_in(page, app)
    before = len(chime.accounts())
    submit(page, name)
    expect_field_error(page, message)
    assert len(chime.accounts()) == before
    check(page, out, state)


def test_the_character_count_counts_what_the_server_counts(page: Page, app: str):
    sign_in(page, app)
    field = page.get_by_label("Account name")
    # Trimmed, and counted in Unicode scalar values: the emoji is one character.
    field.fill("  Acme 🚀  ")
    expect(page.get_by_text("You have 94 characters remaining")).to_be_visible()
    field.fill("x" * 101)
    expect(page.get_by_text("You have 1 character too many")).to_be_visible()


def test_a_throttled_chime_says_when_to_retry(page: Page, app: str, chime, out: Path):
    sign_in(page, app)
    chime.set_faults({"throttle_rate": 1.0})
    submit(page, unique("Busy"))
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Amazon Chime is busy right now. Try again in 1 second.")
    expect(page.get_by_label("Account name")).not_to_have_attribute("aria-invalid", "true")
    check(page, out, "throttled")


def test_a_double_click_creates_one_account(page: Page, app: str, chime):
    sign_in(page, app)
    name = unique("Twice")
    page.get_by_label("Account name").fill(name)
    # Slow Chime down so the second click lands while the first is pending.
    chime.set_faults({"latency_ms": 400})
    page.get_by_role("button", name="Create account").dblclick()
    expect(page.get_by_role("region", name="Account created")).to_be_visible()
    assert [a["Name"] for a in chime.accounts()].count(name) == 1


def test_a_request_without_sign_in_is_refused(page: Page, app: str, chime):
    page.goto(app + "/")
    name = unique("Anon")
    answer = page.evaluate(
        """async (name) => {
            const r = await fetch("accounts", {method: "POST",
                headers: {"Content-Type": "application/json", "Accept": "application/json"},
                body: JSON.stringify({Name: name})});
            return {status: r.status, challenge: r.headers.get("WWW-Authenticate"),
                    type: r.headers.get("Content-Type"), body: await r.json()};
        }""",
        name,
    )
    assert answer["status"] == 401
    assert answer["challenge"] == "Bearer"
    assert answer["type"] == "application/problem+json"
    assert answer["body"]["code"] == "AuthenticationRequired"
    bad = page.evaluate(
        """async () => (await fetch("accounts", {method: "POST",
            headers: {"Content-Type": "application/json", "Authorization": "Bearer not.a.jwt"},
            body: JSON.stringify({Name: "x"})})).status"""
    )
    assert bad == 401
    assert name not in [a["Name"] for a in chime.accounts()]


def test_the_form_works_without_scripts_when_no_sign_in_is_needed(browser, open_app: str, chime, out: Path):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1024, "height": 800})
    try:
        page = context.new_page()
        page.goto(open_app + "/")
        # A bad name: the form again, the message beside the field.
        page.get_by_label("Account name").fill("   ")
        page.get_by_role("button", name="Create account").click()
        expect(page.locator("#name-error")).to_contain_text("Enter an account name")
        expect(page.get_by_label("Account name")).to_have_attribute("aria-invalid", "true")
        page.screenshot(path=str(out / "screenshots" / "no-js-error.png"), full_page=True)
        # A good one: an HTML page with the account id.
        name = unique("NoScript")
        page.get_by_label("Account name").fill(name)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Account created")).to_be_visible()
        expect(page.get_by_text(name, exact=True)).to_be_visible()
        account_id = page.locator("code").inner_text()
        assert any(a["AccountId"] == account_id and a["Name"] == name for a in chime.accounts())
        page.screenshot(path=str(out / "screenshots" / "no-js-success.png"), full_page=True)
        html = page.content()
    finally:
        context.close()
    # axe needs scripts: check the same HTML answer in a scripted page.
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(open_app + "/result", lambda route: route.fulfill(
            status=200, content_type="text/html; charset=utf-8", body=html))
        page.goto(open_app + "/result")
        check(page, out, "no-js-success")
    finally:
        context.close()
    # JSON clients keep JSON.
    answer = page_request_json(browser, open_app)
    assert answer == "application/json"


def page_request_json(browser, url: str) -> str:
    context = browser.new_context()
    try:
        response = context.request.post(url + "/accounts", data={"Name": unique("Json")},
                                        headers={"Accept": "*/*"})
        assert response.status == 201
        return response.headers["content-type"]
    finally:
        context.close()


def test_the_page_fits_a_360_pixel_screen(browser, app: str, out: Path):
    context = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        sign_in(page, app)
        submit(page, "x" * 101)
        expect(page.get_by_role("alert")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow}px of horizontal scrolling at 360px"
        check(page, out, "narrow-360")
    finally:
        context.close()
