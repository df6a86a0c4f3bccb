"""AppTest of the Compare page's uncertainty: intervals, error bars, the paired verdict, one-item
flags per domain, and a seed sweep as mean ± CI."""

from __future__ import annotations

import pytest

from test_pages_dashboard import _conn, _fake_run, _ok, _run


def _fake_items(conn, rid, correct: dict[str, list[int]]) -> None:
    """Per-item outcomes of the fake run's last live evaluation (stage 1), written by the real writer."""
    from baldistill_core.runs import eval_items

    eval_items.write(conn, rid, 1, "live", [dict(id=f"{d}-{k}", domain=d, gold="1", pred="1" if c else "2", correct=c)
                                             for d, cs in correct.items() for k, c in enumerate(cs)])


def test_compare_shows_intervals_verdict_and_flagged_domains(page_env):
    ws, conn = _conn(page_env)
    a = _fake_run(ws, conn, name="balanced", method="baldistill_a", scores={"Algebra": 0.8, "Geometry": 0.9})
    b = _fake_run(ws, conn, name="random", method="random_ft_cot", scores={"Algebra": 0.8, "Geometry": 0.1})
    _fake_items(conn, a, {"Algebra": [1] * 16 + [0] * 4, "Geometry": [1] * 18 + [0] * 2, "Precalculus": [1, 0]})
    _fake_items(conn, b, {"Algebra": [1] * 16 + [0] * 4, "Geometry": [1] * 2 + [0] * 18, "Precalculus": [0, 0]})
    at = _run("pages/compare.py", dataset="math_lt")
    _ok(at)
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["balanced", "items"] == 42
    assert table.loc["random", "macro 95% CI"].startswith("[")
    texts = [t.value for t in at.text]
    # Geometry: +80 points on 20 items is real; the reference defaults to the Random FT CoT run.
    assert any(t.startswith("balanced (BalDistill-A) is ahead of random (Random FT CoT) on macro by +") for t in texts), texts
    charts = at.get("plotly_chart")
    assert len(charts) == 5   # headline with error bars, the difference, per-domain, scatter, spend
    import json as _json
    ci_fig = _json.loads(charts[0].proto.spec)
    assert ci_fig["data"][0]["error_y"]["arrayminus"]
    per_domain = _json.loads(next(c for c in charts if c.proto.id.endswith("cmp_bars") or "per domain" in c.proto.spec).proto.spec)
    assert per_domain["data"][0]["error_y"]["array"]           # the per-domain bars carry intervals too
    dom = at.dataframe[1].value.set_index("domain")
    assert bool(dom.loc["Precalculus", "one_item_decides"]) is True    # 1 of 2 vs 0 of 2: one item
    assert bool(dom.loc["Geometry", "one_item_decides"]) is False
    assert dom.loc["Geometry", "difference_points"] == pytest.approx(80.0)
    assert dom.loc["Algebra", "difference_points"] == 0.0


def test_compare_aggregates_a_sweep_as_mean_and_interval(page_env):
    from baldistill_core.config import RunConfig
    from baldistill_core.runs import eval_items, sweeps
    from baldistill_core.runs import records as runs

    ws, conn = _conn(page_env)
    sid = sweeps.create(conn, RunConfig(dataset="math_lt", name="sw", budget=14, stages=1), [0, 1],
                        ["baldistill_a", "random_ft_cot"])
    for method, good in (("baldistill_a", 16), ("random_ft_cot", 6)):
        for seed in (0, 1):
            rid = sweeps.ensure_run(conn, ws.runs_dir, sid, method, seed)
            items = [dict(id=f"{d}-{k}", domain=d, gold="1", pred="1", correct=k < good + seed)
                     for d in ("Algebra", "Geometry") for k in range(20)]
            eval_items.write(conn, rid, 0, "test", items)
            runs.write_metrics(conn, rid, 0, "test", [("_macro", "accuracy", (good + seed) / 20)])
            runs.set_status(conn, rid, "finished")
    at = _run("pages/compare.py", dataset="math_lt")
    _ok(at)
    sweep = next(d.value for d in at.dataframe if "seeds" in d.value.columns).set_index("method")
    assert sweep.loc["baldistill_a", "macro"] == pytest.approx(0.825)     # (16/20 + 17/20) / 2
    assert sweep.loc["random_ft_cot", "seeds"] == "0,1"
    texts = [t.value for t in at.text]
    assert any(t.startswith("baldistill_a is ahead of random_ft_cot on macro by +50.0 points") for t in texts), texts


def test_training_form_repeat_over_seeds_launches_a_sweep(page_env):
    import time

    from baldistill_core.runs import jobs, sweeps
    from baldistill_core.runs import records as runs

    at = _run("pages/training.py", dataset="math_lt")
    at.text_input(key="train_smodel").input("tiny-llama-test").run()
    at.selectbox(key="train_preset").select("test-tiny").run()
    at.number_input(key="train_seed").set_value(5).run()
    at.number_input(key="train_repeat").set_value(2).run()
    at.button(key="launch").click().run()
    _ok(at)
    ws, conn = _conn(page_env)
    (sw,) = sweeps.list_sweeps(conn, "math_lt")
    cells = sweeps.members(conn, sw["id"])
    assert sw["seeds"] == [5, 6] and [c["seed"] for c in cells] == [5, 6]
    assert at.query_params["run"] == [cells[0]["run_id"]] or at.query_params["run"] == cells[0]["run_id"]
    # Stop the background sweep the clean way: cancel both runs; its process then has nothing left to do.
    deadline = time.time() + 180
    while time.time() < deadline:
        for c in cells:
            if runs.get_run(conn, c["run_id"])["status"] not in ("cancelled", "finished"):
                jobs.cancel(conn, c["run_id"])
        states = [runs.get_run(conn, c["run_id"]) for c in cells]
        if all(s["status"] in ("cancelled", "finished") and not s["worker_alive"] for s in states):
            break
        time.sleep(1)
    assert all(runs.get_run(conn, c["run_id"])["status"] in ("cancelled", "finished") for c in cells)
