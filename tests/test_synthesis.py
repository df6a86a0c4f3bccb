"""Storing synthetic tail examples: dedup, verification, the recorded review queue, filling a gap."""

from __future__ import annotations

import random

import pytest
from _openai_server import FakeOpenAI
from _teacher_helpers import small_dataset

from baldistill_core import store
from baldistill_core.teacher import ledger
from baldistill_core.synthetic import review
from baldistill_core.config import TeacherConfig
from baldistill_core.data.loading import dataset_spec
from baldistill_core.synthetic.synthesis import NearDupIndex, approved_synthetic, import_recorded_synthetic, jaccard, shingles, store_synthetic, store_synthetic_report, synthesize_for_gap
from baldistill_core.teacher.client import build_teacher


def _item(text, answer="tin", **kw):
    return {"domain": "tin", "input": text, "answer": answer, "rationale": f"The answer is: {answer}", **kw}


LONG = ("Tin prices on the London Metal Exchange rose sharply on Tuesday after the International Tin Council "
        "said its buffer stock manager had resumed purchases to support the market, traders said, adding that "
        "stocks in warehouses fell by two thousand tonnes over the week")


def test_exact_and_near_duplicates(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    real = store.examples(conn, spec.name, limit=1)[0]
    rep = store_synthetic_report(conn, spec.name, [
        _item(real["input"].upper()),                      # exact duplicate of a real input (case/space-insensitive)
        _item(LONG),
        _item(LONG + " ."),                                # exact duplicate of the previous item
        _item(LONG.replace("Tuesday", "Wednesday")),       # near duplicate of the previous item
        _item("A completely different story about tin mining strikes in Bolivia and their effect on output."),
    ], run_id="r1", stage=0)
    assert len(rep["pending"]) == 3 and len(rep["skipped"]) == 2
    assert "real example" in rep["skipped"][0][1] and "synthetic example" in rep["skipped"][1][1]
    rows = {r["input"]: r for r in review.queue(conn, spec.name)}
    near = rows[LONG.replace("Tuesday", "Wednesday")]
    assert near["duplicate_of"] == rows[LONG]["id"] and rows[LONG]["duplicate_of"] is None
    assert all(r["status"] == "pending" and r["run_id"] == "r1" and r["stage"] == 0 for r in rows.values())
    # Near-duplicates of real inputs are flagged with the real id; the same text in another run is allowed.
    ids = store_synthetic(conn, spec.name, [_item(real["input"] + " today")], run_id="r2")
    assert review.get(conn, ids[0])["duplicate_of"] == real["id"]
    assert len(store_synthetic(conn, spec.name, [_item(LONG)], run_id="r2")) == 1
    assert store_synthetic(conn, spec.name, [_item(LONG)], run_id="r1") == []  # idempotent within a run


def test_verification_disagreement_is_stored_rejected(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    rep = store_synthetic_report(conn, spec.name, [_item(LONG, verified=False, verify_answer="acq"),
                                                    _item("Another tin story about smelters.", verified=True)])
    assert len(rep["pending"]) == 1 and len(rep["auto_rejected"]) == 1
    row = review.get(conn, rep["auto_rejected"][0])
    assert row["status"] == "rejected" and "'acq'" in row["reason"] and row["verified"] == 0


def test_near_dup_index_matches_brute_force():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 25))) for _ in range(150)]
    texts += [t + " w1" for t in texts[:30]] + [t.rsplit(" ", 1)[0] for t in texts[30:60]]
    idx = NearDupIndex.from_texts([(str(i), t) for i, t in enumerate(texts[:100])], threshold=0.8)
    for t in texts[100:]:
        sh = shingles(t)
        brute = [(str(i), jaccard(sh, shingles(texts[i]))) for i in range(100)]
        best = max(brute, key=lambda b: b[1])
        got = idx.nearest(sh)
        if best[1] >= 0.8:
            assert got is not None and got[1] == pytest.approx(best[1])
        else:
            assert got is None


def test_import_recorded_fills_the_queue_once(ws):
    _, conn = ws
    spec = dataset_spec(conn, "math_lt")
    n = import_recorded_synthetic(conn, spec, per_domain=3)
    assert n == 12  # 4 tail subjects x 3
    assert import_recorded_synthetic(conn, spec, per_domain=3) == 0
    q = review.queue(conn, "math_lt", limit=100)
    assert len(q) == 12 and all(r["source"] == "recorded" and r["run_id"] is None for r in q)
    assert all(r["verified"] == 1 and r["teacher_answer"] for r in q)
    assert set(review.progress(conn, "math_lt")) == {"Counting & Probability", "Geometry", "Number Theory",
                                                      "Precalculus"}


def test_approved_synthetic_uses_edits(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    a, b, c = store_synthetic(conn, spec.name, [_item(LONG), _item("Tin story two about smelting."),
                                                _item("Tin story three about exports to Asia.")])
    review.approve(conn, a, "ann")
    review.edit(conn, b, "bob", answer="acq", rationale="fixed. The answer is: acq")
    review.reject(conn, c, "ann", "off-topic")
    got = approved_synthetic(conn, spec.name, "tin")
    assert [g["id"] for g in got] == [a, b]
    assert got[1]["answer"] == "acq" and got[1]["original"]["answer"] == "tin"
    assert [g["id"] for g in approved_synthetic(conn, spec.name, "tin", exclude_ids=[a])] == [b]


def test_synthesize_for_gap_recorded_is_idempotent(ws):
    _, conn = ws
    spec = dataset_spec(conn, "r52")
    t = build_teacher(TeacherConfig(), conn, spec=spec, run_id="g1")
    ids = synthesize_for_gap(t, conn, spec, "ipi", 5, run_id="g1", stage=2, shots=[], max_rounds=3)
    assert len(ids) == 5 and len(set(ids)) == 5
    calls = ledger.summary(conn, "g1")["calls"]
    t2 = build_teacher(TeacherConfig(), conn, spec=spec, run_id="g1")  # a resumed run
    assert synthesize_for_gap(t2, conn, spec, "ipi", 5, run_id="g1", stage=2, shots=[], max_rounds=3) == ids
    assert ledger.summary(conn, "g1")["calls"] == calls
    more = synthesize_for_gap(t2, conn, spec, "ipi", 7, run_id="g1", stage=2, shots=[], max_rounds=3)
    assert more[:5] == ids and len(more) == 7
    assert all(r["source"] == "recorded" for r in review.queue(conn, "r52", run_id="g1"))


def test_synthesize_for_gap_openai(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    shots = store.examples(conn, spec.name, domain="nat-gas")
    with FakeOpenAI() as server:
        cfg = TeacherConfig(backend="openai", base_url=server.base_url, model="fake", retry_backoff_s=0.01)
        t = build_teacher(cfg, conn, spec=spec, run_id="g2", api_key="k", budget_examples=20)
        ids = synthesize_for_gap(t, conn, spec, "nat-gas", 6, run_id="g2", stage=1, shots=shots)
    assert len(ids) == 6
    q = review.queue(conn, spec.name, run_id="g2", stage=1)
    assert {r["answer"] for r in q} == {"nat-gas"} and all(r["verified"] == 1 for r in q)
    assert all(r["source"] == "teacher" for r in q)
    assert ledger.spent_examples(conn, "g2") == 6


def test_synthesize_for_gap_spends_at_most_the_gap(ws):
    _, conn = ws
    spec = dataset_spec(conn, "r52")
    t = build_teacher(TeacherConfig(), conn, spec=spec, run_id="g3", budget_examples=6)
    ids = synthesize_for_gap(t, conn, spec, "carcass", 6, run_id="g3", stage=0, shots=[])
    assert len(ids) <= 6 and ledger.spent_examples(conn, "g3") == 6
    rejected = review.queue(conn, "r52", run_id="g3", status="rejected")
    assert len(ids) + len(rejected) == 6  # verification failures stay visible in the queue


def test_parse_items_never_crashes_on_garbage():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from baldistill_core.teacher.parsing import parse_items, validate_items

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.text(max_size=300), st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(
            ["items", "input", "answer", "rationale", "x"]), kids, max_size=4), max_leaves=12).map(
        lambda o: __import__("json").dumps(o))))
    def check(text):
        got = parse_items(text)
        assert isinstance(got, list) and all(isinstance(x, dict) for x in got)
        good, _ = validate_items(got, "tin", "classification", ["tin", "acq"], set())
        assert all(g["answer"] in ("tin", "acq") and len(g["input"]) >= 3 for g in good)

    check()
