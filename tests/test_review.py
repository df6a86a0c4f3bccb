"""Review decisions: audit trail, edits keep the original, undo, bulk, optimistic concurrency."""

from __future__ import annotations

import pytest
from _teacher_helpers import small_dataset

from baldistill_core import store
from baldistill_core.synthetic import review
from baldistill_core.synthetic.synthesis import store_synthetic


@pytest.fixture
def queue3(empty_ws, tmp_path):
    w, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    ids = store_synthetic(conn, spec.name, [
        {"domain": "tin", "input": f"Synthetic tin story {k} about mines in region {k}.", "answer": "tin",
         "rationale": "The answer is: tin"} for k in range(3)
    ] + [{"domain": "acq", "input": "Company A buys company B for cash.", "answer": "acq", "rationale": "r"}],
        run_id="run-x", stage=1)
    return w, conn, spec.name, ids


def test_approve_reject_edit_and_audit_trail(queue3):
    _, conn, ds, (a, b, c, d) = queue3
    assert review.approve(conn, a, "ann")["status"] == "approved"
    with pytest.raises(review.ReviewError, match="say why"):
        review.reject(conn, b, "ann", "  ")
    review.reject(conn, b, "ann", "wrong answer")
    row = review.edit(conn, c, "bob", input="Edited tin story.", answer="tin")
    assert row["status"] == "edited" and row["version"] == 1
    row = review.edit(conn, c, "bob", rationale="better. The answer is: tin")
    got = review.get(conn, c)
    assert got["input"] == "Edited tin story." and got["rationale"].startswith("better")
    assert got["original"]["input"].startswith("Synthetic tin story 2"), "the first original is kept"
    assert got["reviewer"] == "bob" and got["decided_at"] > 0 and got["version"] == 2
    h = review.history(conn, c)
    assert [x["action"] for x in h] == ["edit", "edit"] and h[0]["before"]["status"] == "pending"
    assert review.get(conn, b)["reason"] == "wrong answer"
    n_reviews = conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0]
    assert n_reviews == 4
    p = review.progress(conn, ds)
    assert p["tin"] == {"pending": 0, "approved": 1, "edited": 1, "rejected": 1} and p["acq"]["pending"] == 1
    assert review.progress(conn, ds, run_id="other") == {}
    with pytest.raises(review.ReviewError, match="reviewer name"):
        review.approve(conn, d, "")
    with pytest.raises(review.ReviewError, match="does not exist"):
        review.approve(conn, "syn-nope", "ann")


def test_undo_walks_back_through_the_trail(queue3):
    _, conn, _, (a, *_rest) = queue3
    review.approve(conn, a, "ann")
    review.edit(conn, a, "bob", answer="acq")
    review.undo(conn, a, "bob")
    row = review.get(conn, a)
    assert row["status"] == "approved" and row["answer"] == "tin" and row["original"] is None
    assert row["reviewer"] == "ann"
    review.undo(conn, a, "bob")
    assert review.get(conn, a)["status"] == "pending"
    with pytest.raises(review.ReviewError, match="no decision to undo"):
        review.undo(conn, a, "bob")
    assert [x["action"] for x in review.history(conn, a)] == ["approve", "edit", "undo", "undo"]


def test_stale_decision_is_refused(queue3):
    _, conn, _, (a, *_rest) = queue3
    seen = review.get(conn, a)["version"]
    review.approve(conn, a, "ann", expected_version=seen)
    with pytest.raises(review.StaleDecision, match="reload"):
        review.reject(conn, a, "bob", "dup", expected_version=seen)
    assert review.get(conn, a)["status"] == "approved"


def test_bulk_on_a_filtered_selection(queue3):
    _, conn, ds, ids = queue3
    tin = review.queue_ids(conn, ds, status="pending", domain="tin")
    assert len(tin) == 3
    review.approve(conn, tin[0], "ann")
    assert review.bulk(conn, tin, "approve", "ann") == 2  # the one already approved is unchanged
    assert review.bulk(conn, [ids[3]], "reject", "ann", reason="off-topic") == 1
    with pytest.raises(review.ReviewError):
        review.bulk(conn, tin, "reject", "ann")
    with pytest.raises(review.ReviewError, match="not supported"):
        review.bulk(conn, tin, "delete", "ann")
    assert review.queue_count(conn, ds, status=["approved", "edited"]) == 3
    assert [r["id"] for r in review.queue(conn, ds, status="rejected")] == [ids[3]]
    assert review.queue(conn, ds, limit=2, offset=3)[0]["id"] == ids[3]


def test_two_connections_see_each_others_decisions(queue3):
    w, conn, ds, (a, b, *_rest) = queue3
    other = store.connect(w.db_path)
    try:
        review.approve(conn, a, "ann")
        review.reject(other, b, "bob", "duplicate")
        for c in (conn, other):
            assert review.get(c, a)["status"] == "approved" and review.get(c, b)["status"] == "rejected"
        v = review.get(other, a)["version"]
        review.edit(conn, a, "ann", answer="acq")
        with pytest.raises(review.StaleDecision):
            review.approve(other, a, "bob", expected_version=v)
    finally:
        other.close()
