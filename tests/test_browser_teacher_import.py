"""Real headless Chromium: upload teacher rationales on the Data page, a bad file first, then a good one."""

from __future__ import annotations

import json

import pytest

from conftest import wait_for_app

pytestmark = pytest.mark.browser


def _upload(page, label: str, name: str, rows: list[dict]) -> None:
    box = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
    box.locator('input[type="file"]').set_input_files(
        {"name": name, "mimeType": "application/json", "buffer": "".join(json.dumps(r) + "\n" for r in rows).encode()})
    # The upload is an HTTP request followed by a rerun: wait until the uploader lists the new file, so a
    # click that follows submits the form with this file and not the one before it.
    box.get_by_text(name).wait_for(timeout=60_000)
    wait_for_app(page)


def _submit(page) -> None:
    """Press the teacher-import form's button (the dataset upload form has a button of the same name)."""
    page.locator('[data-testid="stForm"]').filter(has_text="Teacher model").get_by_role(
        "button", name="Validate and import").click()


def test_rationales_upload_reports_problems_then_imports(served_app, page, browser_output):
    page.goto(f"{served_app.url}/data?dataset=r52")
    wait_for_app(page)
    page.get_by_text("Bring your own teacher outputs").click()
    _upload(page, "Rationales file", "bad.jsonl", [{"id": "no-such-id", "rationale": "x. The answer is: acq"}])
    _submit(page)
    wait_for_app(page)
    err = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Not imported")
    err.wait_for()
    assert "line 1: unknown id 'no-such-id'" in err.inner_text()

    _upload(page, "Rationales file", "good.jsonl",
            [{"id": "r52-train-00010", "rationale": "A takeover bid. The answer is: acq", "model": "gpt-4o"}])
    err.wait_for(state="detached", timeout=60_000)  # the rerun after the new upload has drawn the page
    _submit(page)
    wait_for_app(page)
    try:
        page.wait_for_selector('text=Rationales: 1 imported, 0 flagged', timeout=120_000)
    finally:
        page.screenshot(path=str(browser_output / "data-teacher-import.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
