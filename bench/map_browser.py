"""The Map page of a served app in headless Chromium: time to first draw, what crosses the websocket,
the lasso round trip, and the server's memory.

Used by ``bench/scale.py`` (the 1M-row page and the 100k-row lasso), runnable alone on any workspace
that has a cached map:

    .venv/bin/python bench/map_browser.py WORKSPACE DATASET [--lasso]

* first draw: from ``page.goto`` to the chart's canvas being on the page and the script idle;
* payload: the bytes of every websocket frame the browser received for that load (the biggest one
  is the figure);
* lasso: from the mouse button's release at the end of a lasso to the listed rows (the caption under the
  listing, which follows the table), on the browser's clock (``lasso_ms``: pointerup event to the caption
  in the page); ``lasso_driver_ms`` is the same on Playwright's clock, to the "N selected" heading, the
  caption and the script idle, which adds the driver's own round trips;
* server memory: the Streamlit process's resident set (VmRSS) after the load and after the lasso.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LISTED = re.compile(r"Rows [\d,]+–[\d,]+ of [\d,]+")
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_page(browser, timeout_s: float):
    """A 1400x1000 page whose websocket frames are counted: ``(page, bytes received, bytes sent)`` lists."""
    from conftest import count_frames

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(timeout_s * 1000)
    return (page, *count_frames(page))


def measure(workspace: Path, dataset: str, *, lasso: bool = False, log_dir: Path | None = None,
            timeout_s: float = 600.0) -> dict:
    """Serve ``app.py`` on ``workspace`` and load ``/map?dataset=...`` once (optionally lasso once)."""
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, CHROMIUM_FLAGS, ServedApp, wait_for_app

    log_dir = log_dir or workspace
    app = ServedApp(workspace, Path(log_dir) / "bench-streamlit.log")
    out: dict = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
            page, frames, sent = open_page(browser, timeout_s)
            t0 = time.perf_counter()
            page.goto(f"{app.url}/map?dataset={dataset}")
            wait_for_app(page)
            plot = page.locator(".bd-wrap[data-ready='1']").first   # the canvas chart has drawn its points
            plot.wait_for(timeout=timeout_s * 1000)
            wait_for_app(page)
            out["first_draw_s"] = time.perf_counter() - t0
            if page.locator('[data-testid="stException"]').count():
                raise RuntimeError(page.locator('[data-testid="stException"]').first.inner_text()[:2000])
            out["payload_mb"] = sum(frames) / 1e6
            out["biggest_frame_mb"] = max(frames, default=0) / 1e6
            out["server_rss_mb"] = _rss_mb(app.proc.pid)
            if lasso:
                out.update(_lasso(page, plot, frames, sent, timeout_s))
                out["server_rss_after_lasso_mb"] = _rss_mb(app.proc.pid)
            browser.close()
    finally:
        app.stop()
    return out


def _lasso(page, plot, frames: list[int], sent: list[int], timeout_s: float) -> dict:
    """One lasso around the chart's centre; the clock starts at the button's release."""
    from conftest import wait_for_app

    box = plot.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 100, cy - 100)
    page.mouse.down()
    for dx, dy in ((100, -100), (100, 100), (-100, 100), (-100, -100)):
        page.mouse.move(cx + dx, cy + dy, steps=8)
    frames.clear()
    sent.clear()
    page.evaluate(_WATCH)
    t = time.perf_counter()
    page.mouse.up()
    page.wait_for_selector('h3:has-text("selected")', timeout=timeout_s * 1000)
    # the caption under the listing ("Rows 1–50 of N") comes after the table in the same rerun
    page.get_by_text(LISTED).first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)
    seconds = time.perf_counter() - t
    in_page = page.evaluate("() => window.__benchListed - window.__benchUp")
    heading = page.locator('h3:has-text("selected")').first.inner_text()
    return {"lasso_ms": in_page, "lasso_driver_ms": 1000 * seconds,
            "lasso_selected": int(heading.split()[0].replace(",", "")),
            "lasso_reply_mb": sum(frames) / 1e6, "lasso_sent_mb": sum(sent) / 1e6}


# The browser's own clock: from the pointerup event (seen first, at the window, in the capture phase) to
# the moment the listing's caption is in the page (a MutationObserver). Playwright's clock, around it,
# adds the driver's round trips: its mouse.up returns after the event is dispatched, and its waits poll.
_WATCH = """() => {
  window.__benchUp = null; window.__benchListed = null;
  window.addEventListener("pointerup", () => { window.__benchUp = performance.now(); }, {capture: true, once: true});
  // textContent of the captions only: innerText of the whole body, on every mutation, forced a layout
  // of the page each time and so slowed the very rerun it timed
  const caption = () => {
    for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
      const m = el.textContent.match(/Rows [0-9,]+–[0-9,]+ of [0-9,]+/);
      if (m) return m[0];
    }
    return null;
  };
  const before = caption();   // a listing already on the page must change first
  const seen = () => { const now = caption(); return now !== null && now !== before; };
  const obs = new MutationObserver(() => {
    if (window.__benchUp !== null && seen()) { window.__benchListed = performance.now(); obs.disconnect(); }
  });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path)
    ap.add_argument("dataset")
    ap.add_argument("--lasso", action="store_true")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    for k, v in measure(a.workspace, a.dataset, lasso=a.lasso).items():
        print(f"{k} {v:.2f}")


if __name__ == "__main__":
    main()
