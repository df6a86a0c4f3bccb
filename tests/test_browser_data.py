"""Real headless Chromium against the served app: the Data view, the dataset switch, no error element."""

from __future__ import annotations

import pytest

from conftest import wait_for_app

pytestmark = pytest.mark.browser


def test_data_page_shows_distribution_and_switches_dataset(served_app, page, browser_output):
    page.goto(f"{served_app.url}/data?dataset=math_lt")
    wait_for_app(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=120_000)
    # the bar chart carries one x tick per MATH subject
    for subject in ["Algebra", "Precalculus", "Counting & Probability"]:
        page.wait_for_selector(f'[data-testid="stPlotlyChart"] text:has-text("{subject}")')
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    page.screenshot(path=str(browser_output / "data-math_lt.png"), full_page=True)

    # switch dataset in the sidebar selectbox
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="r52").click()
    wait_for_app(page)
    page.wait_for_selector('text="52"')  # the Domains metric
    page.wait_for_selector('[data-testid="stPlotlyChart"] text:has-text("earn")')
    assert "dataset=r52" in page.url
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(browser_output / "data-r52.png"), full_page=True)
