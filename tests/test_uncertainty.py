"""Bootstrap intervals and paired differences: hand-computed cases and known distributions."""

from __future__ import annotations

import numpy as np
import pytest

from baldistill_core.evaluation import evaluate, uncertainty


def _items(outcomes: dict[str, list[int]], prefix: str = "") -> list[dict]:
    return [dict(id=f"{prefix}{d}-{k}", domain=d, gold="x", correct=bool(c))
            for d, cs in outcomes.items() for k, c in enumerate(cs)]


def test_point_scores_equal_score_predictions_for_math_and_classification():
    items = [dict(id=str(i), domain=d, answer=a) for i, (d, a) in enumerate(
        [("big", "2"), ("big", "3"), ("big", "4"), ("big", "5"), ("small", "7"), ("mid", "1")])]
    outs = ["The answer is: 2", "The answer is: 3", "no", "", "The answer is: 8", "The answer is: 1"]
    sizes = {"big": 100, "mid": 50, "small": 3}
    r = evaluate.score_predictions(items, outs, "math", sizes=sizes)
    head, tail = evaluate.head_tail_groups(sizes)
    p = uncertainty.point_scores(r.predictions, "accuracy", head=head, tail=tail)
    assert p["macro"] == pytest.approx(r.score("_macro")) == pytest.approx((0.5 + 0 + 1) / 3)
    assert p["micro"] == pytest.approx(r.score("_micro")) == pytest.approx(3 / 6)
    assert p["head"] == pytest.approx(r.overall["_head"]["accuracy"])
    assert p["tail"] == pytest.approx(r.overall["_tail"]["accuracy"])

    labels = ["earn", "acq", "tin"]
    citems = [dict(id=str(i), domain=g, answer=g) for i, g in enumerate(["earn", "earn", "earn", "acq", "tin"])]
    couts = ["The answer is: earn", "The answer is: earn", "The answer is: acq", "The answer is: acq", "nothing"]
    sizes = {"earn": 30, "acq": 20, "tin": 2}
    c = evaluate.score_predictions(citems, couts, "classification", labels=labels, sizes=sizes)
    head, tail = evaluate.head_tail_groups(sizes)
    q = uncertainty.point_scores(c.predictions, "f1", head=head, tail=tail)
    assert q["macro"] == pytest.approx((0.8 + 2 / 3) / 3)      # the hand count of test_evaluate
    assert q["micro"] == pytest.approx(6 / 9)
    assert q["head"] == pytest.approx(c.overall["_head"]["f1"]) == pytest.approx(0.8)
    assert q["tail"] == pytest.approx(c.overall["_tail"]["f1"]) == pytest.approx(1 / 3)


def test_intervals_are_seeded_and_contain_the_estimate():
    items = _items({"a": [1, 0, 1, 1, 0, 1, 0, 1], "b": [0, 0, 1, 0]})
    ci1 = uncertainty.confidence_intervals(items, "accuracy", head=["a"], tail=["b"], n_boot=500, seed=3)
    ci2 = uncertainty.confidence_intervals(items, "accuracy", head=["a"], tail=["b"], n_boot=500, seed=3)
    ci3 = uncertainty.confidence_intervals(items, "accuracy", head=["a"], tail=["b"], n_boot=500, seed=4)
    assert ci1 == ci2 and ci1 != ci3
    assert ci1["macro"].value == pytest.approx((5 / 8 + 1 / 4) / 2)
    for iv in ci1.values():
        assert iv.low <= iv.value <= iv.high
    # Resampling within domains: a domain of all-correct items has no spread at all.
    flat = uncertainty.confidence_intervals(_items({"a": [1] * 5, "b": [0] * 3}), "accuracy", n_boot=200)
    assert (flat["macro"].low, flat["macro"].high) == (0.5, 0.5)


def test_a_single_domain_interval_matches_the_binomial_standard_error():
    # 100 items, 40 correct: the bootstrap sd of the mean is sqrt(p(1-p)/n) = 0.049; 95% ≈ ±0.096.
    items = _items({"a": [1] * 40 + [0] * 60})
    iv = uncertainty.confidence_intervals(items, "accuracy", n_boot=4000, seed=0)["macro"]
    assert iv.half_width == pytest.approx(1.96 * np.sqrt(0.4 * 0.6 / 100), rel=0.1)


def test_coverage_of_a_bernoulli_macro_mean_is_about_95_percent():
    p = {"a": 0.8, "b": 0.5, "c": 0.3, "d": 0.6}
    truth = sum(p.values()) / len(p)
    rng = np.random.default_rng(123)
    hits, n_sim = 0, 300
    for sim in range(n_sim):
        items = _items({d: list((rng.random(40) < q).astype(int)) for d, q in p.items()})
        iv = uncertainty.confidence_intervals(items, "accuracy", n_boot=400, seed=sim)["macro"]
        hits += iv.low <= truth <= iv.high
    # Binomial sd of the coverage at 300 draws is ~1.3 points; percentile intervals run a bit narrow.
    assert 0.90 <= hits / n_sim <= 0.985, hits / n_sim


def test_paired_difference_of_a_run_with_itself_is_exactly_zero():
    items = _items({"a": [1, 0, 1, 1], "b": [0, 1], "c": [1]})
    p = uncertainty.paired_difference(items, items, "accuracy", head=["a"], tail=["b", "c"], n_boot=300)
    assert p.shared == 7 and p.only_a == p.only_b == 0
    for iv in p.diffs.values():
        assert (iv.value, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert all(r["diff"] == 0.0 and not r["one_item"] for r in p.per_domain)
    assert "within noise" in uncertainty.verdict("A", "A", "tail", p.diffs["tail"])


def test_paired_difference_by_hand_and_one_item_flags():
    a = _items({"big": [1] * 20, "tiny": [1, 1]})
    b = _items({"big": [0] * 20, "tiny": [1, 0]})
    b.append(dict(id="extra", domain="big", gold="x", correct=True))      # not shared: left out
    p = uncertainty.paired_difference(a, b, "accuracy", head=["big"], tail=["tiny"], n_boot=500, seed=1)
    assert p.shared == 22 and p.only_b == 1
    assert p.diffs["head"].value == pytest.approx(1.0)
    assert (p.diffs["head"].low, p.diffs["head"].high) == (1.0, 1.0)   # every item flips the same way
    assert p.diffs["tail"].value == pytest.approx(0.5)
    assert p.diffs["macro"].value == pytest.approx(0.75)
    rows = {r["domain"]: r for r in p.per_domain}
    assert rows["tiny"]["one_item"] and not rows["big"]["one_item"]
    assert rows["tiny"]["diff"] == pytest.approx(0.5) and rows["tiny"]["n"] == 2
    assert uncertainty.verdict("A", "B", "head", p.diffs["head"]).startswith("A is ahead of B on large-domain macro by +100.0")


def test_paired_interval_is_narrower_than_unpaired_when_runs_agree_on_hard_items():
    rng = np.random.default_rng(0)
    hard = rng.random(200) < 0.5
    a = _items({"d": list((~hard).astype(int))})
    flip = rng.random(200) < 0.1
    b = _items({"d": list(((~hard) & ~flip).astype(int))})
    p = uncertainty.paired_difference(a, b, "accuracy", n_boot=1000)
    ca = uncertainty.confidence_intervals(a, "accuracy", n_boot=1000)["macro"]
    # Unpaired, the difference of two such runs would spread ~sqrt(2) times one run's interval.
    assert p.diffs["macro"].half_width < 0.6 * ca.half_width
    assert p.diffs["macro"].value == pytest.approx(flip[~hard].sum() / 200)
    assert p.diffs["macro"].low > 0


def test_no_shared_items_is_a_clear_error():
    with pytest.raises(ValueError, match="share no evaluated test item"):
        uncertainty.paired_difference(_items({"a": [1]}, "x"), _items({"a": [1]}, "y"), "accuracy")
    with pytest.raises(ValueError, match="no evaluated items"):
        uncertainty.confidence_intervals([], "accuracy")


def test_group_interval_of_one_run_and_of_identical_seeds():
    items = _items({"a": [1, 0, 1, 1, 0], "b": [1, 0]})
    one = uncertainty.group_intervals([items], "accuracy", n_boot=300, seed=0)
    assert one["macro"].value == pytest.approx((3 / 5 + 1 / 2) / 2)
    assert one["macro"].low < one["macro"].value < one["macro"].high
    three = uncertainty.group_intervals([items, items, items], "accuracy", n_boot=300, seed=0)
    assert three["macro"].value == pytest.approx(one["macro"].value)
    # seeds that disagree widen the interval beyond what one run's items say
    spread = uncertainty.group_intervals([_items({"a": [1] * 10}), _items({"a": [0] * 10})], "accuracy", n_boot=400)
    assert spread["macro"].value == 0.5 and spread["macro"].low == 0.0 and spread["macro"].high == 1.0


def test_group_paired_of_identical_pairs_is_zero_and_of_a_clear_gain_is_positive():
    a, b = _items({"d": [1] * 15 + [0] * 5}), _items({"d": [1] * 5 + [0] * 15})
    zero = uncertainty.group_paired([(a, a), (b, b)], "accuracy", n_boot=200)
    assert (zero["macro"].value, zero["macro"].low, zero["macro"].high) == (0.0, 0.0, 0.0)
    gain = uncertainty.group_paired([(a, b), (a, b), (a, b)], "accuracy", n_boot=500)
    assert gain["macro"].value == pytest.approx(0.5) and gain["macro"].low > 0.2


def test_domain_intervals_by_hand():
    ci = uncertainty.domain_intervals(_items({"a": [1, 1, 1], "b": [1, 0, 1, 0], "c": [0]}), "accuracy", n_boot=500)
    assert (ci["a"].value, ci["a"].low, ci["a"].high) == (1.0, 1.0, 1.0)
    assert (ci["c"].low, ci["c"].high) == (0.0, 0.0)          # one item: no spread from resampling
    assert ci["b"].value == 0.5 and ci["b"].low < 0.5 < ci["b"].high
