"""Real headless Chromium: the Compare page draws 95% error bars and the paired verdict for two
runs whose per-item outcomes were kept (written by the real run-record writers)."""

from __future__ import annotations

import pytest

from test_browser_dashboard import _no_errors, _open, _shot

pytestmark = pytest.mark.browser


def _seed_run(ws, conn, name: str, method: str, correct: dict[str, list[int]]) -> str:
    from baldistill_core.config import RunConfig
    from baldistill_core.evaluation import uncertainty
    from baldistill_core.runs import eval_items
    from baldistill_core.runs import records as runs

    rid = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="math_lt", name=name, method=method, budget=14,
                                                        stages=1))
    items = [dict(id=f"{d}-{k}", domain=d, gold="1", pred="1" if c else "2", correct=bool(c))
             for d, cs in correct.items() for k, c in enumerate(cs)]
    eval_items.write(conn, rid, 0, "test", items)
    per = {d: sum(cs) / len(cs) for d, cs in correct.items()}
    pts = uncertainty.point_scores(items, "accuracy")
    rows = [(d, "accuracy", v) for d, v in per.items()] + [("_macro", "accuracy", pts["macro"]),
                                                             ("_micro", "accuracy", pts["micro"])]
    runs.write_metrics(conn, rid, 0, "test", rows)
    runs.set_status(conn, rid, "finished")
    return rid


def test_compare_draws_error_bars_and_the_verdict(served_app, page, browser_output):
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(served_app.workspace)
    domains = ["Algebra", "Geometry", "Number Theory", "Precalculus"]
    _seed_run(ws, conn, "balanced", "baldistill_a",
              {d: [1] * (12 + 2 * i) + [0] * (8 - 2 * i) for i, d in enumerate(domains)})
    _seed_run(ws, conn, "random", "random_ft_cot",
              {d: [1] * (12 - 3 * i) + [0] * (8 + 3 * i) for i, d in enumerate(domains)})
    _open(page, served_app, "/compare?dataset=math_lt")
    page.wait_for_selector(".st-key-cmp_ci .main-svg")
    _no_errors(page)
    assert page.locator(".st-key-cmp_ci .main-svg path.yerror, .st-key-cmp_ci .main-svg g.errorbar").count() >= 1
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "is ahead of random (Random FT CoT) on macro" in body
    _shot(page, browser_output, "compare-uncertainty.png", height=3200)
