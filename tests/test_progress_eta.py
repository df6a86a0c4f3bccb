"""The Training page's ETA (runs.records.progress): it used to run low, pacing the remaining stages by
the mean (stage 0 scores no IFD and is the fastest) and leaving out the final test evaluation."""

from __future__ import annotations

import time

import pytest

from baldistill_core.config import RunConfig
from baldistill_core.runs import records as runs


def test_eta_paces_by_the_slowest_stage_and_counts_the_final_evaluation(ws):
    w, conn = ws
    cfg = RunConfig(dataset="math_lt", budget=40, stages=4, eval=dict(live_per_domain=1, final_per_domain=2))
    rid = runs.create_run(conn, w.runs_dir, cfg)
    for s in (0, 1, 2):
        runs.set_stage(conn, rid, s, "running")
    runs.set_stage(conn, rid, 0, "done")
    runs.set_stage(conn, rid, 1, "done")
    runs.set_status(conn, rid, "running")
    now = time.time()
    # created 50 s before stage 0 (loading + the base student's live evaluation); stage 0 took 100 s, stage 1 300 s
    conn.execute("UPDATE runs SET created_at = ? WHERE id = ?", (now - 450, rid))
    for s, (start, end) in {0: (now - 400, now - 300), 1: (now - 300, now), 2: (now, None)}.items():
        conn.execute("UPDATE stages SET started_at = ?, finished_at = ? WHERE run_id = ? AND stage = ?",
                     (start, end, rid, s))
    conn.commit()
    eta = runs.progress(conn, rid)["eta_s"]
    # 2 stages left at 300 s + final evaluation of 2 per domain = 2 x the 50 s base evaluation of 1 per domain
    assert eta == pytest.approx(2 * 300 + 2 * 50, abs=5)
    # the old estimate (mean 200 s per stage, no final evaluation) said 400 s
