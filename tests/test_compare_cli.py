"""`baldistill runs compare A B`: intervals, the paired verdict, one-item flags, JSON; old runs without
per-item outcomes say how to get them."""

from __future__ import annotations

import json

from baldistill_core.cli import main
from baldistill_core.config import RunConfig
from baldistill_core.runs import eval_items
from baldistill_core.runs import records as runs


def _run(ws, conn, name, method, outcomes: dict[str, list[int]] | None) -> str:
    rid = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="math_lt", name=name, method=method, budget=14))
    runs.write_metrics(conn, rid, 0, "test", [("_macro", "accuracy", 0.5)])
    if outcomes:
        eval_items.write(conn, rid, 0, "test", [dict(id=f"{d}-{k}", domain=d, gold="1", pred="1", correct=bool(c))
                                                for d, cs in outcomes.items() for k, c in enumerate(cs)])
    runs.set_status(conn, rid, "finished")
    return rid


def test_runs_compare_prints_intervals_verdict_and_flags(ws, capsys):
    w, conn = ws
    root = str(w.root)
    a = _run(w, conn, "bal", "baldistill_a", {"Algebra": [1] * 18 + [0] * 2, "Geometry": [1, 0]})
    b = _run(w, conn, "rnd", "random_ft_cot", {"Algebra": [0] * 18 + [1] * 2, "Geometry": [0, 0]})
    old = _run(w, conn, "old", "random_ft_cot", None)
    assert main(["runs", "compare", a, b, old, "-w", root, "--boot", "300"]) == 0
    out = capsys.readouterr().out
    assert "bal (BalDistill-A) is ahead of rnd (Random FT CoT) on micro by +77.3 points" in out
    assert "Geometry" in out and "+50.0 *" in out          # 1 of 2 vs 0 of 2: one item decides it
    assert f"re-run `baldistill evaluate {old}`" in out
    assert main(["runs", "compare", a, b, "-w", root, "--json", "--boot", "300", "--seed", "7"]) == 0
    data = json.loads(capsys.readouterr().out)
    pair = data["pairs"][0]
    assert pair["shared"] == 22 and pair["diffs"]["micro"]["low"] > 0
    assert data["runs"][0]["ci"]["macro"]["low"] <= data["runs"][0]["ci"]["macro"]["value"]
