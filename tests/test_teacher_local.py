"""The local backend: a transformers causal LM through the same cache and ledger (tiny random model)."""

from __future__ import annotations

import pytest
from _teacher_helpers import small_dataset

from baldistill_core.teacher import ledger
from baldistill_core.task.answers import extract_answer, is_correct
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
    # Whatever the random model writes, the outcome follows the run's own rule on that very text.
    if ann.reason == "teacher returned an empty reply":
        assert not ann.rationale.strip() and not ann.kept
    else:
        assert ann.rationale.strip()
        pred = extract_answer(ann.rationale, "classification", t.labels)
        assert ann.predicted == pred
        assert ann.kept == bool(pred is not None and is_correct(pred, "acq", "classification"))
        assert ann.reason == (None if ann.kept else
                              "no final answer in the rationale" if pred is None else "answer mismatch")
    s = ledger.summary(conn, "loc")
    assert s["calls"] == 1 and s["cost_usd"] == 0 and s["tokens_out"] > 0
    (again,) = build_teacher(cfg, conn, spec=spec, run_id="loc").annotate(items)
    assert again.rationale == ann.rationale  # greedy decoding is deterministic
    if ann.reason == "teacher returned an empty reply":  # the random model writes only whitespace
        assert not again.cached and ledger.summary(conn, "loc")["failed_calls"] == 2
    else:
        assert again.cached
