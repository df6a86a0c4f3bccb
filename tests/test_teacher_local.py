"""The local backend: a transformers causal LM through the same cache and ledger (tiny random model)."""

from __future__ import annotations

import pytest
from _teacher_helpers import small_dataset

from baldistill_core.teacher import ledger
from baldistill_core.config import TeacherConfig
from baldistill_core.teacher.client import build_teacher


@pytest.mark.slow
def test_local_teacher_is_low_quality_free_and_cached(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    cfg = TeacherConfig(backend="local", model="tiny-llama-test", max_tokens=16, verify_synthetic=False)
    t = build_teacher(cfg, conn, spec=spec, run_id="loc")
    assert t.name == "local" and t.low_quality
    items = [{"id": "mini-001", "domain": "acq", "input": "Company A buys company B.", "answer": "acq"}]
    (ann,) = t.annotate(items)
    assert ann.rationale or ann.reason  # a random model writes something, or fails clearly
    s = ledger.summary(conn, "loc")
    assert s["calls"] == 1 and s["cost_usd"] == 0 and s["tokens_out"] > 0
    (again,) = build_teacher(cfg, conn, spec=spec, run_id="loc").annotate(items)
    assert again.rationale == ann.rationale  # greedy decoding is deterministic
    if ann.reason == "teacher returned an empty reply":  # the random model writes only whitespace
        assert not again.cached and ledger.summary(conn, "loc")["failed_calls"] == 2
    else:
        assert again.cached
