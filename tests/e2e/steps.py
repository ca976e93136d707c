"""What the browser tests do the way a person does (by label and role), shared
by the test modules: sign in, type and submit a name, and check a state (axe-core
finds no serious or critical violation; a full-page screenshot is saved under
$E2E_OUT/screenshots).
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

_axe = Axe()


def check(page: Page, out: Path, state: str) -> None:
    """axe: 0 serious/critical violations; then a full-page screenshot."""
    results = _axe.run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    page.screenshot(path=str(out / "screenshots" / f"{state}.png"), full_page=True)
    assert bad == [], f"axe on {state}: {bad}"


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def sign_in(page: Page, app: str, sub: str = "alice@example.com") -> None:
    page.goto(app + "/")
    page.get_by_role("button", name="Sign in").click()
    authorize(page, sub)
    expect(page.get_by_label("Account name")).to_be_visible()
    expect(page.get_by_role("status").first).to_have_text("You are signed in.")


def authorize(page: Page, sub: str) -> None:
    """The local provider's page: type the user, authorize."""
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


def submit(page: Page, name: str) -> None:
    page.get_by_label("Account name").fill(name)
    page.get_by_role("button", name="Create account").click()


def expect_field_error(page: Page, message: str) -> None:
    field = page.get_by_label("Account name")
    expect(field).to_have_attribute("aria-invalid", "true")
    # The message is beside the field, tied to it, and in the summary.
    expect(page.locator("#name-error")).to_contain_text(message)
    expect(field).to_have_attribute("aria-describedby", re.compile(r"\bname-error\b"))
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link", name=message)).to_be_visible()
