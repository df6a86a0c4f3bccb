"""IFD scoring on the tiny random Llama: hand-computed values, reference ranking, padding, cache."""

from __future__ import annotations

import math

import pytest
import torch

from _model_helpers import tiny_model, tiny_prompts
from baldistill_core import store
from baldistill_core.student import ifd
from baldistill_core.student import model as student

MAX_NEW = 8


def _hand_ifd(model, tok, prompt: str, max_new: int) -> tuple[list[int], float, float]:
    """Greedy rationale and both losses by an explicit per-token loop over full forward passes."""
    x = tok(prompt)["input_ids"]
    stops = set(student.stop_token_ids(model, tok))
    y: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            nxt = int(model(input_ids=torch.tensor([x + y])).logits[0, -1].argmax())
            if nxt in stops:
                break
            y.append(nxt)

        def mean_ce(context: list[int]) -> float:
            total = 0.0
            for t in range(len(y)):
                logits = model(input_ids=torch.tensor([context + y[:t]])).logits[0, -1]
                total -= float(torch.log_softmax(logits.double(), -1)[y[t]])
            return total / len(y)

        return y, mean_ce(x), mean_ce([ifd.start_token_id(tok)])


def _reference(model, tok, prompts: list[str], max_new: int) -> list[float]:
    """One example at a time: HF generate, then two forward passes with labels (Cherry-LLM style)."""
    stops = set(student.stop_token_ids(model, tok))
    scores = []
    for p in prompts:
        enc = tok(p, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
        y = []
        for t in out[0, enc["input_ids"].shape[1]:].tolist():
            if t in stops:
                break
            y.append(t)
        x = enc["input_ids"][0].tolist()
        whole, alone = torch.tensor([x + y]), torch.tensor([[ifd.start_token_id(tok)] + y])
        lab_w, lab_a = whole.clone(), alone.clone()
        lab_w[0, : len(x)] = -100
        lab_a[0, 0] = -100
        with torch.no_grad():
            lc = model(input_ids=whole, labels=lab_w).loss.item()
            lu = model(input_ids=alone, labels=lab_a).loss.item()
        scores.append(math.exp(lc - lu))
    return scores


def test_ifd_of_a_hand_built_case_matches_the_logits():
    model, tok = tiny_model()
    prompt = tiny_prompts(1)[0]
    y, lc, lu = _hand_ifd(model, tok, prompt, MAX_NEW)
    assert len(y) > 0
    (res,) = ifd.score(model, tok, [prompt], max_new_tokens=MAX_NEW)
    assert res.rationale == tok.decode(y, skip_special_tokens=True)
    assert res.loss_cond == pytest.approx(lc, abs=1e-4)
    assert res.loss_uncond == pytest.approx(lu, abs=1e-4)
    assert res.score == pytest.approx(math.exp(lc) / math.exp(lu), rel=1e-4)
    (cherry,) = ifd.score(model, tok, [prompt], max_new_tokens=MAX_NEW, variant="cherry")
    expected = lc / lu
    assert cherry.score == (None if expected > 1 else pytest.approx(expected, rel=1e-4))


def test_batched_scorer_ranks_exactly_as_one_at_a_time_reference():
    model, tok = tiny_model()
    prompts = tiny_prompts()
    ours = [r.score for r in ifd.score(model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=4)]
    ref = _reference(model, tok, prompts, MAX_NEW)
    assert ours == pytest.approx(ref, rel=1e-4)
    assert sorted(range(len(ours)), key=lambda i: -ours[i]) == sorted(range(len(ref)), key=lambda i: -ref[i])
    keys = [f"k{i:02d}" for i in range(len(prompts))]
    as_results = lambda scores: {k: ifd.IFDResult(s, 0.0, 0.0, "") for k, s in zip(keys, scores)}  # noqa: E731
    assert ifd.select_top(as_results(ours), 5) == ifd.select_top(as_results(ref), 5)


def test_padding_and_batch_size_do_not_change_scores():
    model, tok = tiny_model()
    prompts = tiny_prompts()
    one = ifd.score(model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=1)
    four = ifd.score(model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=4)
    assert [r.rationale for r in one] == [r.rationale for r in four]
    for a, b in zip(one, four):
        assert a.loss_cond == pytest.approx(b.loss_cond, abs=1e-4)
        assert a.loss_uncond == pytest.approx(b.loss_uncond, abs=1e-4)
        assert a.score == pytest.approx(b.score, rel=1e-4)
    # Scoring a prompt inside a batch of others gives its own score, not a neighbour's.
    shuffled = prompts[::-1]
    rev = ifd.score(model, tok, shuffled, max_new_tokens=MAX_NEW, batch_size=4)
    assert [r.score for r in rev] == pytest.approx([r.score for r in four][::-1], rel=1e-4)


def test_target_losses_fast_head_path_equals_full_logits(monkeypatch):
    model, tok = tiny_model()
    seqs = [tok(p)["input_ids"] for p in tiny_prompts(5)]
    starts = [len(s) // 2 for s in seqs]
    fast = ifd.target_losses(model, seqs, starts, batch_size=3)
    monkeypatch.setattr(ifd, "_lm_head_split", lambda m: None)
    full = ifd.target_losses(model, seqs, starts, batch_size=3)
    assert fast == pytest.approx(full, abs=1e-5)
    with pytest.raises(ValueError, match="start >= 1"):
        ifd.target_losses(model, seqs[:1], [0])


def test_score_cached_scores_only_missing_items(tmp_path, monkeypatch):
    model, tok = tiny_model()
    conn = store.connect(tmp_path / "ws.sqlite")
    prompts = tiny_prompts(4)
    items = [{"key": f"ex{i}", "prompt": p} for i, p in enumerate(prompts)]
    calls: list[int] = []
    real_score = ifd.score

    def counting_score(m, t, ps, **kw):
        calls.append(len(ps))
        return real_score(m, t, ps, **kw)

    monkeypatch.setattr(ifd, "score", counting_score)
    first = ifd.score_cached(conn, "run1/stage0", model, tok, items[:3], max_new_tokens=MAX_NEW)
    again = ifd.score_cached(conn, "run1/stage0", model, tok, items, max_new_tokens=MAX_NEW)
    assert calls == [3, 1]
    assert list(again) == ["ex0", "ex1", "ex2", "ex3"]
    for k in first:
        assert again[k].score == pytest.approx(first[k].score, rel=1e-9)
        assert again[k].rationale == first[k].rationale
    ifd.score_cached(conn, "run1/stage1", model, tok, items[:1], max_new_tokens=MAX_NEW)  # new student: rescored
    assert calls == [3, 1, 1]
    n = store.one(conn, "SELECT COUNT(*) AS n FROM ifd_cache")["n"]
    assert n == 5
    with pytest.raises(ValueError, match="unique"):
        ifd.score_cached(conn, "c", model, tok, [items[0], items[0]], max_new_tokens=MAX_NEW)


def test_select_top_is_deterministic_and_skips_unscored():
    r = lambda s: ifd.IFDResult(s, 1.0, 1.0, "")  # noqa: E731
    scores = {"d": r(0.7), "a": r(0.7), "c": r(None), "b": r(0.9), "e": r(0.1)}
    assert ifd.select_top(scores, 3) == ["b", "a", "d"]
    assert ifd.select_top(scores, 10) == ["b", "a", "d", "e"]
    assert ifd.select_top(scores, 0) == []


def test_variants():
    assert ifd.ifd_from_losses(1.0, 2.0) == pytest.approx(math.exp(-1.0))
    assert ifd.ifd_from_losses(1.0, 2.0, "cherry") == pytest.approx(0.5)
    assert ifd.ifd_from_losses(2.0, 1.0, "cherry") is None
    assert ifd.ifd_from_losses(float("nan"), 1.0) is None
    with pytest.raises(ValueError, match="not one of"):
        ifd.ifd_from_losses(1.0, 1.0, "bogus")
