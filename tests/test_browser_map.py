"""Real headless Chromium against the served app: the Map ships coordinates, not text, and a lasso lists
the selected rows with their texts read by id."""

from __future__ import annotations

import re
import time

import pytest

from conftest import count_frames, wait_for_app

LISTED = re.compile(r"Rows 1–[\d,]+ of [\d,]+")

pytestmark = pytest.mark.browser


def test_map_payload_has_no_text_and_a_lasso_lists_the_rows(served_app, page, browser_output):
    frames, sent = count_frames(page)
    t0 = time.perf_counter()
    page.goto(f"{served_app.url}/map?dataset=r52")
    wait_for_app(page)
    plot = page.locator(".bd-wrap[data-ready='1']").first   # the canvas chart has drawn its points
    plot.wait_for(timeout=120_000)
    first_draw = time.perf_counter() - t0
    assert page.locator('[data-testid="stException"]').count() == 0
    # 6,532 points as Arrow columns (x, y float32, group uint16): about 65 KB; the plotly figure was
    # about 140 KB, and with each point's 200-character hover text about 1.4 MB.
    biggest = max(frames)
    assert biggest < 200_000, biggest
    assert page.locator(".bd-legend .bd-item").count() == 52   # one legend entry per R52 topic

    page.locator(".bd-wrap canvas.bd-overlay").hover()
    box = plot.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 120, cy - 120)
    page.mouse.down()
    for dx, dy in ((120, -120), (120, 120), (-120, 120), (-120, -120)):   # a lasso around the centre
        page.mouse.move(cx + dx, cy + dy, steps=8)
    page.mouse.move(cx - 120, cy - 120, steps=8)
    frames.clear()
    sent.clear()
    t1 = time.perf_counter()
    page.mouse.up()
    page.wait_for_selector('h3:has-text("selected")', timeout=60_000)
    # the listing reruns as a fragment: its heading, its table and the caption after the table arrive
    # as separate updates (the tables are on the page, empty, before any selection)
    page.get_by_text(LISTED).first.wait_for(timeout=60_000)
    wait_for_app(page)
    lasso_s = time.perf_counter() - t1
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    heading = page.locator('h3:has-text("selected")').first.inner_text()
    n_selected = int(heading.split()[0].replace(",", ""))
    assert n_selected > 0
    # The reply lists one page of at most 50 rows (text read by id), not every selected text, and
    # the selection went up as one bit per point (6,532 bits: about 1.1 KB in base64), not as points.
    assert max(frames) < 400_000, max(frames)
    assert sum(sent) < 20_000, sum(sent)
    assert f"{n_selected:,} selected" in page.locator(".bd-info").first.inner_text()
    page.screenshot(path=str(browser_output / "map-r52-lasso.png"), full_page=True)
    # a click on the chart clears the selection, and the listing goes with it
    page.mouse.click(box["x"] + 5, box["y"] + 5)
    page.wait_for_selector("text=Nothing selected yet.", timeout=60_000)
    page.screenshot(path=str(browser_output / "map-r52-cleared.png"), full_page=True)
    print(f"map first draw {first_draw:.2f} s, chart frame {biggest / 1e3:.0f} KB, lasso {n_selected} points "
          f"listed in {lasso_s:.2f} s")
