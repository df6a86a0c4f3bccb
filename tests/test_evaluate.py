"""Per-domain evaluation: scores by hand, the stratified subset, and a real tiny student."""

from __future__ import annotations

import pytest

from baldistill_core.evaluation import evaluate
from baldistill_core.task.view import StudentView
from _run_helpers import import_tiny


def test_math_scores_macro_micro_head_tail_by_hand():
    items = [dict(id=str(i), domain=d, answer=a) for i, (d, a) in enumerate(
        [("big", "2"), ("big", "3"), ("big", "4"), ("big", "5"), ("small", "\\frac{1}{2}"), ("small", "7")])]
    outs = ["The answer is: 2", "The answer is: 3", "the answer is 9", "", "so \\boxed{\\dfrac12}",
            "The answer is: 8"]
    r = evaluate.score_predictions(items, outs, "math", sizes={"big": 100, "mid": 50, "small": 3})
    assert r.per_domain["big"]["accuracy"] == 0.5 and r.per_domain["small"]["accuracy"] == 0.5
    assert r.score("_micro") == pytest.approx(3 / 6)
    assert r.score("_macro") == pytest.approx(0.5)
    assert r.overall["_head"]["accuracy"] == 0.5 and r.overall["_tail"]["accuracy"] == 0.5
    assert r.predictions[3]["pred"] is None and r.predictions[4]["correct"]
    rows = r.rows()
    assert ("big", "accuracy", 0.5) in rows and ("_macro", "accuracy", 0.5) in rows


def test_classification_f1_matches_a_hand_computation():
    labels = ["earn", "acq", "tin"]
    items = [dict(id=str(i), domain=g, answer=g) for i, g in enumerate(["earn", "earn", "earn", "acq", "tin"])]
    outs = ["The answer is: earn", "The answer is: earn", "The answer is: acq", "The answer is: acq",
            "reporting on nothing"]
    r = evaluate.score_predictions(items, outs, "classification", labels=labels)
    # earn: tp 2, fp 0, fn 1 -> 0.8; acq: tp 1, fp 1, fn 0 -> 2/3; tin: tp 0, fn 1 -> 0 ("reporting" is not "tin")
    assert r.per_domain["earn"]["f1"] == pytest.approx(0.8)
    assert r.per_domain["acq"]["f1"] == pytest.approx(2 / 3)
    assert r.per_domain["tin"]["f1"] == 0.0
    assert r.score("_macro") == pytest.approx((0.8 + 2 / 3) / 3)
    # micro: tp 3, fp 1, fn 2 -> 6 / 9
    assert r.score("_micro") == pytest.approx(6 / 9)
    assert r.primary == "f1"


def test_head_tail_groups_split_at_the_median():
    assert evaluate.head_tail_groups({"a": 9, "b": 5, "c": 5, "d": 1}) == (["a"], ["b", "c", "d"])
    assert evaluate.head_tail_groups({"a": 9, "b": 6, "c": 4, "d": 1}) == (["a", "b"], ["c", "d"])
    assert evaluate.head_tail_groups({"a": 9, "b": 4, "c": 1}) == (["a"], ["b", "c"])


def test_eval_subset_is_stratified_and_fixed(empty_ws, tmp_path):
    _, conn = empty_ws
    import_tiny(conn, tmp_path / "d")
    one = evaluate.eval_subset(conn, "tinymath", 2, seed=5)
    assert [e["id"] for e in one] == [e["id"] for e in evaluate.eval_subset(conn, "tinymath", 2, seed=5)]
    by = {}
    for e in one:
        by[e["domain"]] = by.get(e["domain"], 0) + 1
    assert by == {"alg": 2, "geo": 2, "num": 2}
    assert len(evaluate.eval_subset(conn, "tinymath", None)) == 9
    with pytest.raises(ValueError, match="no train2 split|no .* split"):
        evaluate.eval_subset(conn, "tinymath", 2, split="train2")


def test_evaluate_model_runs_a_real_tiny_student(empty_ws, tmp_path):
    from baldistill_core.student.model import load_model, resolve_model

    _, conn = empty_ws
    import_tiny(conn, tmp_path / "d")
    items = evaluate.eval_subset(conn, "tinymath", 1)
    model, tok = load_model(resolve_model("tiny-llama-test"))
    r = evaluate.evaluate_model(model, tok, items, StudentView("math", "Add."), max_new_tokens=4,
                                sizes={"alg": 14, "geo": 6, "num": 2})
    assert set(r.per_domain) == {"alg", "geo", "num"}
    assert len(r.predictions) == 3 and all(isinstance(p["output"], str) for p in r.predictions)
    assert 0.0 <= r.score("_macro") <= 1.0
