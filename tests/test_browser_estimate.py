"""Real headless Chromium: a fresh CPU workspace's Training form shows the R52 CPU demo with its estimate
(screenshot: test-output/training-estimate.png), and the Plan page shows the run estimate."""

from __future__ import annotations

import pytest

from test_browser_dashboard import _no_errors, _open, _shot

pytestmark = pytest.mark.browser


def test_training_form_shows_the_estimate(served_app, page, browser_output):
    _open(page, served_app, "/training")
    page.get_by_text("Estimated time").first.wait_for(timeout=120_000)
    _no_errors(page)
    code = page.locator('[data-testid="stCode"]').first.inner_text()
    assert "dataset: r52" in code  # a fresh CPU workspace starts from the R52 CPU demo
    text = page.locator('[data-testid="stMain"]').inner_text()
    for label in ("Estimated time", "Teacher calls", "Teacher tokens", "Teacher cost"):
        assert label in text
    page.get_by_text("Estimate per step, and where each figure comes from").click()
    page.get_by_text("price: recorded teacher: no paid calls").wait_for(timeout=30_000)
    _shot(page, browser_output, "training-estimate.png", height=1800)
