"""Real headless Chromium: /home is Home (not "Page not found"); an upload whose train and test files share a
file name imports both, and the whole page, sidebar included, switches to the new dataset; the Training page
then refuses the recorded teacher (no recordings for this dataset) before anything starts."""

from __future__ import annotations

import json

import pytest

from conftest import wait_for_app

pytestmark = pytest.mark.browser

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
NOT_FOUND = "Page not found"


def _settle(page) -> None:
    wait_for_app(page)
    for _ in range(2):
        page.wait_for_selector(IDLE, timeout=120_000)
        page.wait_for_timeout(400)
    wait_for_app(page)


def _shot(page, folder, name: str, height: int = 2000) -> None:
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(600)
    page.screenshot(path=str(folder / name), full_page=True)
    page.set_viewport_size(size)


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _rows(n, prefix):
    return [dict(id=f"{prefix}{i}", domain="abc"[i % 3], input=f"{prefix} question {i}?", answer="AB"[i % 2])
            for i in range(n)]


def test_home_url_upload_and_teacher_check(served_app, page, browser_output):
    page.goto(f"{served_app.url}/")
    _settle(page)
    assert page.url.split("?")[0].endswith("/home")  # "/" forwards to Home's own URL
    page.goto(f"{served_app.url}/home?dataset=math_lt")
    _settle(page)
    assert NOT_FOUND not in page.locator("body").inner_text()
    page.get_by_role("heading", name="BalDistill Studio").wait_for()

    page.goto(f"{served_app.url}/data?dataset=math_lt")
    _settle(page)
    page.get_by_text("Upload a dataset").first.click()
    page.locator(".st-key-upload_train input[type=file]").set_input_files(
        dict(name="data.jsonl", mimeType="application/json", buffer=_jsonl(_rows(30, "u"))))
    _settle(page)
    page.locator(".st-key-upload_test input[type=file]").set_input_files(
        dict(name="data.jsonl", mimeType="application/json", buffer=_jsonl(_rows(6, "t"))))
    _settle(page)
    name = page.get_by_label("Dataset name", exact=True)
    name.fill("mc_browser")
    page.get_by_role("button", name="Validate and import").click()
    _settle(page)
    body = page.locator("body").inner_text()
    assert "Imported mc_browser: 30 training and 6 test examples." in body
    _shot(page, browser_output, "first-hour-data-after-upload.png")
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.inner_html()
    assert "mc_browser" in picker and "math_lt" not in picker  # the closed picker shows its value only
    assert "?dataset=mc_browser" in page.url

    page.goto(f"{served_app.url}/training?dataset=mc_browser")
    _settle(page)
    page.get_by_text("no recorded rationales for dataset 'mc_browser'").first.wait_for()
    assert page.locator(".st-key-launch button").is_disabled()
    _shot(page, browser_output, "first-hour-training-teacher-check.png")
