"""Stage allocation, per-stage picks, pool bookkeeping and the stage preview (no model needed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baldistill_core.selection import policy
from baldistill_core.runs import preview
from baldistill_core.selection import select as selection
from _run_helpers import SIZES, import_tiny, tiny_config


def _pool(sizes: dict[str, int]) -> dict[str, list[dict]]:
    return {d: [dict(id=f"{d}-{k}", row=k, domain=d, input=f"{d} {k}", answer="1") for k in range(n)]
            for d, n in sizes.items()}


@settings(max_examples=60, deadline=None)
@given(sizes=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 300), min_size=1, max_size=8),
       k=st.integers(1, 6), per_stage=st.integers(1, 40),
       pol=st.sampled_from(["random", "naive", "adaptive", "duplicate"]))
def test_quotas_sum_exactly_per_stage_and_pool_shrinks(sizes, k, per_stage, pol):
    budget = k * per_stage + (per_stage // 3)
    fill = policy.POLICIES[pol].fill
    if fill == "redistribute" and budget > sum(sizes.values()):
        fill = "synthesize"  # redistribute needs a big enough pool (checked below separately)
    pool = _pool(sizes)
    stage_budgets = policy.stage_budgets(budget, k)
    for i in range(k):
        a = policy.allocate_stage(pol, sizes, {d: len(v) for d, v in pool.items()}, budget, k, i, fill=fill)
        assert sum(a.quota.values()) == stage_budgets[i]
        assert sum(a.real.values()) + sum(a.fill.values()) == stage_budgets[i]
        sel = selection.select_stage(a, pool, seed=1, use_ifd=False, scorer=None, prompt_of=lambda e: e["input"],
                                     ifd_cap=8, fill=fill, synthetic=lambda d: [])
        real = [p for p in sel.picks if p.kind in selection.REAL_KINDS]
        assert len(real) == sum(a.real.values())
        assert len({p.example_id for p in real}) == len(real)
        pool = selection.remaining(pool, {p.example_id for p in real})


def test_domain_short_of_its_quota_becomes_tail():
    a = policy.allocate_stage("naive", {"big": 100, "small": 2}, {"big": 100, "small": 2}, 20, 2, 0, fill="synthesize")
    assert a.quota == {"big": 5, "small": 5}
    assert a.tail == ["small"] and a.head == ["big"]
    assert a.real == {"big": 5, "small": 2} and a.fill == {"big": 0, "small": 3}
    # Later, a head domain whose pool ran dry turns tail too.
    b = policy.allocate_stage("adaptive", SIZES, {"alg": 10, "geo": 4, "num": 0}, 15, 3, 2, fill="synthesize")
    assert "num" in b.tail and b.fill["num"] == b.quota["num"] == 1


def test_redistribute_keeps_the_stage_budget_and_errors_when_the_pool_is_too_small():
    a = policy.allocate_stage("naive", {"big": 100, "small": 2}, {"big": 100, "small": 2}, 20, 2, 0, fill="redistribute")
    assert a.real == {"big": 8, "small": 2} and sum(a.fill.values()) == 0
    with pytest.raises(ValueError, match="cannot synthesize"):
        policy.allocate_stage("random", {"a": 5, "b": 5}, {"a": 1, "b": 1}, 10, 2, 1, fill="redistribute")
    cfg = tiny_config(method="random_ft_cot", budget=50)
    with pytest.raises(ValueError, match=r"budget B=50 is larger than the pool of 21 .*lower the budget"):
        selection.check_budget(cfg, 21)
    selection.check_budget(tiny_config(method="baldistill_a", budget=50), 21)  # synthesis covers it


def test_picks_are_seeded_and_ifd_takes_the_highest_scores():
    pool = _pool({"a": 20, "b": 3})
    a = policy.allocate_stage("naive", {"a": 20, "b": 3}, {"a": 20, "b": 3}, 8, 1, 0, fill="synthesize")
    kw = dict(prompt_of=lambda e: e["input"], ifd_cap=6, fill="synthesize", synthetic=lambda d: [])
    one = selection.select_stage(a, pool, seed=3, use_ifd=True, scorer=None, **kw)
    two = selection.select_stage(a, pool, seed=3, use_ifd=True, scorer=None, **kw)
    other = selection.select_stage(a, pool, seed=4, use_ifd=True, scorer=None, **kw)
    ids = [p.example_id for p in one.picks]
    assert ids == [p.example_id for p in two.picks] and ids != [p.example_id for p in other.picks]
    assert one.synth_short == {"b": 1}

    seen = []

    def scorer(items):  # the student's IFD stands in as a known function of the id
        seen.extend(items)
        return {it["key"]: float(int(it["key"].split("-")[1])) for it in items}

    a1 = policy.allocate_stage("naive", {"a": 20, "b": 3}, {"a": 20, "b": 3}, 16, 2, 1, fill="synthesize")
    sel = selection.select_stage(a1, pool, seed=3, use_ifd=True, scorer=scorer, **kw)
    scored = [it["key"] for it in seen]
    assert len(scored) == 6 and all(k.startswith("a-") for k in scored)  # capped, head domain only
    head = [p for p in sel.picks if p.kind == "head"]
    best = sorted(scored, key=lambda k: -int(k.split("-")[1]))[:4]
    assert [p.example_id for p in sorted(head, key=lambda p: -p.ifd)] == best
    assert [x for x, _ in sel.runners_up["a"]] == sorted(set(scored) - set(best), key=lambda k: -int(k[2:]))[:3]


def test_duplicate_fill_repeats_real_tail_items():
    pool = _pool({"a": 10, "b": 1})
    a = policy.allocate_stage("duplicate", {"a": 10, "b": 1}, {"a": 10, "b": 1}, 8, 1, 0, fill="duplicate")
    sel = selection.select_stage(a, pool, seed=0, use_ifd=False, scorer=None, prompt_of=lambda e: e["input"],
                                 ifd_cap=4, fill="duplicate")
    dups = [p for p in sel.picks if p.kind == "duplicate"]
    assert len(dups) == 3 and {selection.duplicate_source(p.example_id) for p in dups} == {"b-0"}
    assert len({p.example_id for p in dups}) == 3


def test_preview_stage_zero_and_simulated_later_stage(empty_ws, tmp_path):
    _, conn = empty_ws
    import_tiny(conn, tmp_path / "data")
    cfg = tiny_config()
    pv = preview.preview_stage(conn, cfg, 0)
    rows = {r["domain"]: r for r in pv.rows()}
    assert sum(r["quota"] for r in rows.values()) == 5
    assert rows["alg"]["pool"] == 13  # alg-13 has no recorded rationale
    assert any("random" in n for n in pv.notes) and not pv.by_ifd
    assert len(pv.head_picks) == 5
    pv2 = preview.preview_stage(conn, cfg, 2)
    assert {g["domain"] for g in pv2.tail_gaps} == {"num"}
    assert pv2.tail_gaps[0]["short"] == 1  # nothing approved yet: the run would synthesize
    text = preview.format_preview(pv2)
    assert "tail gaps" in text and "num" in text
    with pytest.raises(ValueError, match="outside"):
        preview.preview_stage(conn, cfg, 3)


def test_messages_name_methods_by_their_label():
    with pytest.raises(ValueError) as e:
        policy.allocate_stage("random", {"a": 5, "b": 5}, {"a": 1, "b": 1}, 10, 2, 1, fill="redistribute")
    msg = str(e.value)
    assert "BalDistill-N = method baldistill_n" in msg and "BalDistill-A = method baldistill_a" in msg
    assert "naive" not in msg and "adaptive" not in msg
    with pytest.raises(ValueError, match=r"Random FT CoT \(method random_ft_cot\) cannot synthesize"):
        selection.check_budget(tiny_config(method="random_ft_cot", budget=50), 21)


def test_a_domain_with_quota_zero_is_neither_head_nor_tail():
    sizes = {f"d{i}": 10 for i in range(10)}
    p = policy.allocate_stage("naive", sizes, sizes, 4, 1, 0)
    roles = {d: r["role"] for d, r in p.as_dict().items()}
    assert sorted(roles.values()).count("head") == 4 and sorted(roles.values()).count("none") == 6
    assert all(roles[d] == "none" for d, q in p.quota.items() if q == 0)
