"""The Home page's demo tour, walked end to end in real headless Chromium on a fresh workspace.

The tour's links carry its settings (R52, BalDistill-N, B=40, K=4): Data shows the tail topic, Plan its
gap at stage 3, Review loads and approves recorded synthetic examples, Training starts from
assets/configs/r52-tour.yaml with the real bundled student, and the run must end with per-domain
accuracy above the base student on several topics and an approved synthetic example trained on.
Minutes on a quiet 2-core CPU (far more when the machine is shared): marked slow.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time

import pytest

from test_browser_dashboard import _no_errors, _settle, _shot, _wait_badge

RUN_TIMEOUT_S = 75 * 60  # ~15 min on a quiet 2-core CPU; a shared one (load 10+) needs about 50
# pytest-timeout's project default (900 s) is far below a whole run: this test sets its own
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_S + 15 * 60),
              # A real 4-stage SmolLM2 run: about 18 min on a free 2-core CPU, which alone would break the
              # suite's 20-minute limit. `make test-tour` (BALDISTILL_TOUR=1) runs it.
              pytest.mark.skipif(not os.environ.get("BALDISTILL_TOUR"),
                                 reason="the end-to-end tour run takes ~18 min: run it with `make test-tour`")]


def _db(app) -> sqlite3.Connection:
    from baldistill_core.workspace import open_workspace

    return open_workspace(app.workspace)[1]


def _tour_link(page, app, label: str) -> None:
    page.goto(f"{app.url}/")
    _settle(page)
    page.get_by_role("link", name=label).click()
    _settle(page)


def test_demo_tour_end_to_end(served_app, page, browser_output):
    page.goto(f"{served_app.url}/")
    _settle(page)
    page.wait_for_selector('text="Demo tour"')
    _shot(page, browser_output, "tour-0-home.png")

    _tour_link(page, served_app, "1 · Data")
    assert "dataset=r52" in page.url and "budget=40" in page.url and "stages=4" in page.url
    page.wait_for_selector("text=/1 tail under this plan/")  # cpu, at stage 3
    _no_errors(page)
    _shot(page, browser_output, "tour-1-data.png")

    _tour_link(page, served_app, "3 · Plan")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Stage").first.click()
    page.get_by_role("option", name="3", exact=True).click()
    _settle(page)
    page.wait_for_selector("text=/cpu: 0 real \\+ gap of 1/", timeout=120_000)
    _no_errors(page)
    _shot(page, browser_output, "tour-3-plan.png")

    _tour_link(page, served_app, "4 · Review")
    page.get_by_role("button", name="Load recorded synthetic examples").click()
    _settle(page)
    page.wait_for_selector('[class*="st-key-item_"]', timeout=180_000)  # the embedder loads on the first visit
    page.locator('[class*="st-key-ap_"] button').first.click()
    _settle(page)
    _no_errors(page)
    _shot(page, browser_output, "tour-4-review.png")

    _tour_link(page, served_app, "5 · Training")
    code = page.locator('[data-testid="stCode"]').first.inner_text()
    assert "method: baldistill_n" in code and "model: smollm2-135m" in code and "learning_rate: 0.002" in code
    assert "stages: 4" in code and "budget: 40" in code
    _shot(page, browser_output, "tour-5-training-form.png")
    t0 = time.time()
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(r"run=\d{8}-"), timeout=120_000)
    run_id = re.search(r"run=([^&]+)", page.url).group(1)
    text = _wait_badge(page, ("finished", "failed"), RUN_TIMEOUT_S)
    minutes = (time.time() - t0) / 60
    _shot(page, browser_output, "tour-5-training-finished.png")
    assert "finished" in text, page.locator("pre").last.inner_text()
    print(f"tour run {run_id} finished in {minutes:.1f} min")

    conn = _db(served_app)
    live = {(r["domain"], r["stage"]): r["value"] for r in conn.execute(
        "SELECT domain, stage, value FROM metrics WHERE run_id = ? AND split = 'live' AND metric = 'accuracy'",
        (run_id,))}
    last = max(s for _, s in live)
    better = sorted(d for (d, s), v in live.items() if s == last and not d.startswith("_") and v > live.get((d, -1), 0))
    assert len(better) >= 3, f"only {better} improved over the base student"
    used = conn.execute(
        "SELECT s.stage, s.domain, y.status FROM selections s JOIN synthetic y ON y.id = s.example_id "
        "WHERE s.run_id = ? AND s.kind = 'synthetic'", (run_id,)).fetchall()
    assert used and all(u[2] in ("approved", "edited") for u in used), used
    print(f"improved over the base student: {better}; synthetic trained on: {used}")

    _tour_link(page, served_app, "6 · Compare")
    page.wait_for_selector(".st-key-cmp_bars .main-svg", timeout=120_000)
    _no_errors(page)
    _shot(page, browser_output, "tour-6-compare.png")
