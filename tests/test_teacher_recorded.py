"""The recorded teacher replays the bundled real outputs through the same cache, ledger and budget."""

from __future__ import annotations

import json

import pytest

from baldistill_core import store
from baldistill_core.teacher import ledger
from baldistill_core.config import TeacherConfig
from baldistill_core.data.loading import dataset_spec
from baldistill_core.teacher.client import BudgetExceeded, NoRecording, build_teacher


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    from baldistill_core.workspace import open_workspace

    w, conn = open_workspace(tmp_path_factory.mktemp("rec") / "ws")
    yield conn
    conn.close()


def teacher(conn, name="r52", run_id="rec-1", budget=None, **kw):
    return build_teacher(TeacherConfig(**kw), conn, spec=dataset_spec(conn, name), run_id=run_id,
                         budget_examples=budget)


def test_annotate_replays_by_id_and_says_when_it_has_no_recording(bundled):
    conn = bundled
    t = teacher(conn, run_id="rec-a")
    assert t.name == "recorded" and not t.low_quality
    its = store.examples(conn, "r52", limit=40)
    anns = t.annotate(its)
    missing = [a for a in anns if a.reason == "no recording"]
    assert missing and all(not t.can_annotate({"id": a.id}) for a in missing)
    by_id = {a.id: a for a in anns}
    assert by_id["r52-train-00010"].kept and by_id["r52-train-00010"].predicted == "acq"  # old parser said "tin"
    assert not by_id["r52-train-00009"].kept and by_id["r52-train-00009"].reason == "answer mismatch"
    s = ledger.summary(conn, "rec-a")
    assert s["calls"] == len(its) - len(missing) and s["cost_usd"] == 0 and s["tokens_in"] > 0
    assert s["examples"] == len(its) - len(missing)


def test_synthesis_in_file_order_never_twice_and_clear_when_exhausted(bundled):
    conn = bundled
    rows = [json.loads(x) for x in open(dataset_spec(conn, "r52").recorded_synthetic, encoding="utf-8")]
    ipi = [r for r in rows if r["domain"] == "ipi"]
    t = teacher(conn, run_id="rec-b", verify_synthetic=False)
    first = t.synthesize("ipi", [], 3)
    second = t.synthesize("ipi", [], 4)
    got = [g["input"] for g in first + second]
    assert len(set(got)) == 7
    assert got[:3] == [r["input"] for r in ipi[:3]]
    with pytest.raises(NoRecording, match="domain 'earn'"):
        t.synthesize("earn", [], 2)  # a head topic: nothing was ever synthesized for it


def test_synthesis_exhausting_a_domain(bundled):
    conn = bundled
    t = teacher(conn, run_id="rec-c", verify_synthetic=False)
    rows = [json.loads(x) for x in open(dataset_spec(conn, "r52").recorded_synthetic, encoding="utf-8")]
    n = sum(r["domain"] == "jobs" for r in rows)
    got = t.synthesize("jobs", [], n + 10)
    assert 0 < len(got) <= n
    with pytest.raises(NoRecording, match="all are used"):
        t.synthesize("jobs", [], 1)


def test_math_uses_only_the_cleaned_synthetic_rows(bundled):
    conn = bundled
    t = teacher(conn, "math_lt", run_id="rec-d")
    got = t.synthesize("Geometry", [], 6)
    assert len(got) == 6 and all(g.get("recording_id", "").startswith("math-syn-0") for g in got)
    assert all(g["verified"] is not None for g in got)  # verification replays the recorded rationale
    assert all(g["teacher_answer"] for g in got)


def test_rerun_is_free_and_budget_counts_once(bundled):
    conn = bundled
    its = [e for e in store.examples(conn, "math_lt", limit=30)]
    t = teacher(conn, "math_lt", run_id="rec-e", budget=30)
    first = t.annotate(its)
    spent = ledger.spent_examples(conn, "rec-e")
    again = teacher(conn, "math_lt", run_id="rec-e", budget=30).annotate(its)
    assert [a.kept for a in first] == [a.kept for a in again] and all(a.cached for a in again if a.rationale)
    assert ledger.spent_examples(conn, "rec-e") == spent
    with pytest.raises(BudgetExceeded, match="budget"):
        teacher(conn, "math_lt", run_id="rec-e", budget=spent + 1).annotate(store.examples(conn, "math_lt", limit=5,
                                                                                              offset=100))
