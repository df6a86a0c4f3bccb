"""Stage quotas (docs/method.md formulas) against hand-computed values, and invariants over random inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baldistill_core.selection.policy import POLICIES, largest_remainder, plan, quotas, stage_budgets
from baldistill_core.data.stats import domain_stats, gini, zipf_exponent

SIZES = {"a": 600, "b": 300, "c": 100}  # N = 1000


def test_naive_is_equal_per_domain():
    # B=300, K=3: 100 per stage, 100/3 per domain -> 34/33/33, the extra rotating over stages.
    got = [quotas("naive", SIZES, 300, 3, i) for i in range(3)]
    assert got[0] == {"a": 34, "b": 33, "c": 33}
    assert got[1] == {"a": 33, "b": 34, "c": 33}
    assert got[2] == {"a": 33, "b": 33, "c": 34}


def test_adaptive_hand_computed():
    # quota_d(i) = (n_d/N)(B/K)(K-i)/K + (B/(K l)) i/K with B=300, K=3, l=3
    assert quotas("adaptive", SIZES, 300, 3, 0) == {"a": 60, "b": 30, "c": 10}
    # i=1: a = .6*100*2/3 + 100/3/3 = 40 + 11.11 = 51.11 ; b = 20 + 11.11 ; c = 6.67 + 11.11 = 17.78
    assert quotas("adaptive", SIZES, 300, 3, 1) == {"a": 51, "b": 31, "c": 18}
    # i=2: a = 20 + 22.22 = 42.22 ; b = 10 + 22.22 = 32.22 ; c = 3.33 + 22.22 = 25.56
    assert quotas("adaptive", SIZES, 300, 3, 2) == {"a": 42, "b": 32, "c": 26}


def test_random_follows_natural_shares():
    assert quotas("random", SIZES, 500, 5, 3) == {"a": 60, "b": 30, "c": 10}


def test_stage_budgets_spread_the_remainder():
    assert stage_budgets(10, 3) == [4, 3, 3]
    assert sum(stage_budgets(2101, 5)) == 2101
    with pytest.raises(ValueError, match="smaller than the number of stages"):
        stage_budgets(2, 3)


def test_domain_short_of_its_quota_becomes_tail_and_is_filled():
    sizes = {"head": 1000, "tail": 5}
    plans = plan("naive", sizes, 100, 2)
    assert plans[0].tail == ["tail"] and plans[0].real["tail"] == 5 and plans[0].fill["tail"] == 20
    assert plans[1].pool_before["tail"] == 0 and plans[1].fill["tail"] == 25
    assert all(p.budget == 50 for p in plans)


def test_pool_shrinks_and_head_turns_tail():
    sizes = {"a": 100, "b": 30}
    plans = plan("naive", sizes, 80, 2)  # 20 per domain per stage
    assert plans[0].head == ["a", "b"]
    assert plans[1].pool_before == {"a": 80, "b": 10}
    assert plans[1].tail == ["b"] and plans[1].fill["b"] == 10


def test_duplicate_policy_fills_by_repetition():
    plans = plan("duplicate", {"a": 100, "b": 3}, 40, 1)
    assert plans[0].fill["b"] == 17 and plans[0].real["b"] == 3


def test_random_without_synthesis_redistributes_or_explains():
    plans = plan("naive", {"a": 100, "b": 3}, 40, 1, fill="redistribute")
    assert plans[0].real == {"a": 37, "b": 3} and plans[0].budget == 40
    with pytest.raises(ValueError, match="lower the budget to at most 103"):
        plan("random", {"a": 100, "b": 3}, 200, 2)


def test_unknown_policy_names_the_choices():
    with pytest.raises(ValueError, match="choose one of: random, naive, adaptive, duplicate"):
        quotas("fancy", SIZES, 10, 1, 0)


sizes_st = st.dictionaries(st.text("abcdefghij", min_size=1, max_size=4), st.integers(1, 5000), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(sizes=sizes_st, budget=st.integers(1, 20000), k=st.integers(1, 8), pol=st.sampled_from(list(POLICIES)))
def test_quotas_sum_exactly_to_the_stage_budget(sizes, budget, k, pol):
    if budget < k:
        return
    sb = stage_budgets(budget, k)
    for i in range(k):
        q = quotas(pol, sizes, budget, k, i)
        assert sum(q.values()) == sb[i]
        assert all(v >= 0 for v in q.values())
    assert sum(sb) == budget


@settings(max_examples=100, deadline=None)
@given(sizes=sizes_st, k=st.integers(2, 8))
def test_adaptive_starts_natural_and_moves_toward_equal(sizes, k):
    budget = 100 * k * len(sizes)
    n = sum(sizes.values())
    q0 = quotas("adaptive", sizes, budget, k, 0)
    sb = budget // k
    for d in sizes:
        assert abs(q0[d] - sizes[d] / n * sb) <= 1  # natural shares, up to rounding
    equal = sb / len(sizes)
    dist = [sum(abs(quotas("adaptive", sizes, budget, k, i)[d] - equal) for d in sizes) for i in range(k)]
    assert all(b <= a + len(sizes) for a, b in zip(dist, dist[1:]))  # monotone up to rounding
    assert dist[-1] <= dist[0]


def test_largest_remainder_is_exact():
    assert sum(largest_remainder({"a": 1, "b": 1, "c": 1}, 10).values()) == 10


def test_stats_hand_values():
    s = domain_stats({"x": 90, "y": 9, "z": 1})
    assert s.imbalance_ratio == 90
    assert list(s.counts) == ["x", "y", "z"]
    # Gini of (1, 9, 90): 2*(1*1+2*9+3*90)/(3*100) - 4/3 = 578/300 - 4/3
    assert s.gini == pytest.approx(578 / 300 - 4 / 3)
    assert gini([3, 3, 3]) == 0
    assert zipf_exponent([100, 50]) == pytest.approx(1.0)
    assert zipf_exponent([5]) is None
