"""Real headless Chromium against the served app: review decisions survive a reload; a tiny run is
launched, watched, cancelled and resumed; the Plan, Compare and Home pages render. Screenshots of
every page go to the test-output folder."""

from __future__ import annotations

import re
import time

import pytest

from conftest import wait_for_app

pytestmark = pytest.mark.browser

NO_ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def _no_errors(page) -> None:
    assert page.locator(NO_ERRORS).count() == 0, page.locator(NO_ERRORS).all_inner_texts()


IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _settle(page) -> None:
    """Wait until the script finished its run (the conftest helper can pass before a run starts)."""
    wait_for_app(page)
    for _ in range(2):
        page.wait_for_selector(IDLE, timeout=120_000)
        page.wait_for_timeout(400)
    wait_for_app(page)


def _set_text(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    _settle(page)


def _select(page, label: str, option) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    exact = isinstance(option, str)
    page.get_by_role("option", name=option, exact=exact).first.click()
    _settle(page)


def _open(page, app, path: str) -> None:
    """Open ``path`` through the app shell. The first script run of a fresh server decides between
    Streamlit's legacy pages-folder mode and ``st.navigation``: a deep link run first would execute
    the page file alone (no app.py), so the shell is loaded once before any deep link."""
    page.goto(f"{app.url}/")
    _settle(page)
    page.goto(f"{app.url}{path}")
    _settle(page)


def _shot(page, folder, name: str, height: int = 2400) -> None:
    """Streamlit scrolls inside its main block, so a full-page shot only holds the viewport: grow the
    viewport to the content for the picture, then restore it."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(600)
    page.screenshot(path=str(folder / name), full_page=True)
    page.set_viewport_size(size)


def _items(page):
    return page.locator('[class*="st-key-item_"]')


def test_review_decisions_survive_reload(served_app, page, browser_output):
    _open(page, served_app, "/review?dataset=math_lt")
    page.get_by_role("button", name="Load recorded synthetic examples").click()
    _settle(page)
    _set_text(page, "Your name (reviewer)", "Ada")
    page.wait_for_selector('[class*="st-key-item_"]')
    first, second = _items(page).nth(0), _items(page).nth(1)
    id1 = re.search(r"st-key-item_(\S+)", first.get_attribute("class")).group(1)
    id2 = re.search(r"st-key-item_(\S+)", second.get_attribute("class")).group(1)
    page.locator(f".st-key-ap_{id1} button").first.click()
    _settle(page)
    # a reject needs a reason someone chose (there is no default): pick one in that card's box first
    box = page.locator(f".st-key-reason_{id2} input").first
    box.click()
    box.fill("wrong answer")
    page.keyboard.press("Enter")
    _settle(page)
    page.locator(f".st-key-rj_{id2} button").first.click()
    _settle(page)
    _no_errors(page)
    # both left the pending queue
    assert page.locator(f".st-key-item_{id1}").count() == 0 and page.locator(f".st-key-item_{id2}").count() == 0

    page.reload()
    _settle(page)
    _select(page, "Status", "(all)")
    for sid, status in ((id1, "approved"), (id2, "rejected")):
        card = page.locator(f".st-key-item_{sid}")
        card.wait_for()
        assert status in card.inner_text()
        assert "Decided by Ada" in card.inner_text()
    assert "wrong answer" in page.locator(f".st-key-item_{id2}").inner_text()
    _no_errors(page)
    _shot(page, browser_output, "review.png")


def _points(page) -> int:
    return page.locator(".st-key-live_curves .scatterlayer .point").count()


def _badge(page) -> str:
    return page.locator('[data-testid="stMarkdownContainer"]').filter(
        has_text=re.compile(r"B=\d+ · K=")).first.inner_text()


def _wait_badge(page, words: tuple[str, ...], timeout_s: float) -> str:
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        try:
            text = _badge(page)
        except Exception:
            text = ""
        if any(w in text for w in words):
            return text
        page.wait_for_timeout(500)
    raise AssertionError(f"badge never showed {words}; last: {text!r}")


def test_launch_watch_cancel_resume_then_compare(served_app, page, browser_output):
    _open(page, served_app, "/training?dataset=math_lt")
    _set_text(page, "Student model", "tiny-llama-test")
    _select(page, "Student preset", "test-tiny")
    _set_text(page, "Budget B", "14")
    _set_text(page, "Stages K", "2")
    _set_text(page, "IFD cap per domain", "4")
    _set_text(page, "Live eval examples per domain", "2")
    _set_text(page, "Final test examples per domain", "2")
    page.get_by_text("Auto-approve synthetic data").click()
    _settle(page)
    code = page.locator('[data-testid="stCode"]').first.inner_text()
    assert "model: tiny-llama-test" in code and "baldistill run run.yaml" in code
    _shot(page, browser_output, "training-form.png")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(r"run=\d{8}-"), timeout=60_000)
    _wait_badge(page, ("running",), 60)

    # the per-domain chart gains points as stages are evaluated (base student first, then stage 0)
    deadline = time.time() + 150
    first = 0
    while time.time() < deadline and not first:
        first = _points(page)
        page.wait_for_timeout(500)
    assert first > 0, "no live evaluation point appeared"
    while time.time() < deadline and _points(page) <= first:
        page.wait_for_timeout(500)
    assert _points(page) > first, "the per-domain chart did not gain points"
    _shot(page, browser_output, "training-live.png")

    page.locator(".st-key-cancel_run button").first.click()
    text = _wait_badge(page, ("cancelled", "finished", "failed"), 90)
    _shot(page, browser_output, "training-cancelled.png")
    if "cancelled" in text:
        page.locator(".st-key-resume_run button").first.click()
        _wait_badge(page, ("running", "finished", "failed"), 60)
        text = _wait_badge(page, ("finished", "failed"), 180)
    assert "finished" in text, page.locator("pre").last.inner_text()
    _shot(page, browser_output, "training-finished.png")

    page.goto(f"{served_app.url}/compare?dataset=math_lt")
    _settle(page)
    page.wait_for_selector(".st-key-cmp_bars .main-svg")
    _no_errors(page)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    _shot(page, browser_output, "compare.png")

    # the finished run's stage-0 student can now score the Plan page's next stage
    page.goto(f"{served_app.url}/plan?dataset=math_lt")
    _settle(page)
    _no_errors(page)
    _shot(page, browser_output, "plan-stage0.png")
    _select(page, "Student that scores IFD", re.compile(r"stage 0 student"))
    _set_text(page, "IFD cap per domain", "3")
    page.get_by_role("button", name=re.compile(r"^Score \d+ head candidates")).click()
    page.wait_for_selector('h3:has-text("highest IFD first")', timeout=120_000)
    _settle(page)
    _no_errors(page)
    _shot(page, browser_output, "plan-student.png")


def test_home_tour(served_app, page, browser_output):
    page.goto(f"{served_app.url}/?dataset=math_lt")
    _settle(page)
    page.wait_for_selector('text="Demo tour"')
    page.get_by_role("link", name="3 · Plan").click()
    _settle(page)
    page.wait_for_selector('h1:has-text("Plan a stage")')
    _no_errors(page)
    page.goto(f"{served_app.url}/?dataset=math_lt")
    _settle(page)
    _shot(page, browser_output, "home.png")
    for name in ("data",):  # another stop of the tour, for the stakeholder screenshots
        page.goto(f"{served_app.url}/{name}?dataset=math_lt")
        _settle(page)
        page.wait_for_selector("h1", timeout=60_000)
        _no_errors(page)
        _shot(page, browser_output, f"tour-{name}.png")
