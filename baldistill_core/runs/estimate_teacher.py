"""The teacher side of the run estimate (``runs.estimate``): calls, tokens and cost per stage.

Input tokens are counted on the exact messages the run would send (``teacher.prompts``), the way
the ledger counts them; reply tokens come from the teacher cache, this dataset's recorded replies,
the ledger's past replies, or a stated default per task type — in that order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from baldistill_core import store
from baldistill_core.selection.select import REAL_KINDS, _capped
from baldistill_core.teacher import ledger
from baldistill_core.teacher import prompts as tp

# Expected reply length (tokens) when nothing of this dataset was recorded or cached.
DEFAULT_OUT_TOKENS = {"classification": 60, "math": 220, "multiple_choice": 120, "qa": 80}


@dataclass
class StepEstimate:
    stage: int                 # -1 = the base student's evaluation; K = the final evaluation
    step: str
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    seconds: float = 0.0
    units: int = 0             # student tokens: training = tokens fed x epochs; generation = items x new tokens
    note: str = ""


def _reply_tokens(ctx, teacher, items: list[dict]) -> tuple[list[int], list[str | None], list[bool], str]:
    """Expected rationale reply tokens per item, the reply texts known, cache hits, and the source."""
    texts: list[str | None] = [None] * len(items)
    cached = [False] * len(items)
    source = None
    try:  # the exact calls the run would make, looked up in the teacher cache
        keys = [teacher._key(teacher._rationale_call(it)) for it in items]
        hits = ledger.cache_get_many(ctx.conn, keys)
        for k, key in enumerate(keys):
            if key in hits and ctx.cfg.teacher.backend != "recorded":
                texts[k], cached[k] = (hits[key]["response"] or {}).get("text"), True
        source = "teacher cache" if any(cached) else None
    except Exception:  # a backend that cannot build offline: no cache lookup
        pass
    recorded = _recorded_rationales(ctx.spec)
    for k, it in enumerate(items):
        if texts[k] is None and it["id"] in recorded:
            texts[k] = recorded[it["id"]]
            source = source or "recorded outputs of this dataset"
    # An item without its own reply: the mean recorded reply of this dataset, else past replies, else a default.
    fallback, what = (sum(map(ledger.estimate_tokens, recorded.values())) / len(recorded),
                      "mean recorded reply of this dataset") if recorded else (
        ledger.mean_tokens_out(ctx.conn, "rationale"), "mean of past replies in the ledger")
    default = DEFAULT_OUT_TOKENS.get(ctx.spec.task_type, 120)
    if any(t is None for t in texts):
        source = (source + " + " if source else "") + (
            what if fallback else f"default {default} tokens for {ctx.spec.task_type}")
    out = [ledger.estimate_tokens(t) if t is not None else int(fallback or default) for t in texts]
    return out, texts, cached, source or "none"


def _recorded_rationales(spec) -> dict[str, str]:
    p = spec.recorded_rationales
    if not p or not Path(p).exists():
        return {}
    rows = [json.loads(line) for line in Path(p).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: r["rationale"] for r in rows}


def full_examples(ctx, items: list[dict]) -> list[dict]:
    """Pool entries carry ids and rows only (the pool is read without text): fetch the examples by id."""
    ids = sorted({e["id"] for e in items if "input" not in e})
    if not ids:
        return items
    rows = {e["id"]: e for e in store.examples(ctx.conn, ctx.cfg.dataset, "train", ids=ids)}
    return [e if "input" in e else rows[e["id"]] for e in items]


def _weighted_picks(ctx, sel, stage: int) -> tuple[list[dict], list[float]]:
    items, weights = _weighted_ids(ctx, sel, stage)
    return full_examples(ctx, items), weights


def _weighted_ids(ctx, sel, stage: int) -> tuple[list[dict], list[float]]:
    """The stage's real picks with weights. Random picks are the run's own (weight 1); where the run
    picks by IFD, the top-k of a candidate set is not known before the student exists, so every
    candidate of that set (the run's exact seeded subsample) counts k / candidates."""
    by_id = {e["id"]: e for v in sel.pool.values() for e in v}
    picks = [p for p in sel.picks if p.kind in REAL_KINDS]
    if not (ctx.method.ifd and stage > 0):
        return [by_id[p.example_id] for p in picks], [1.0] * len(picks)
    items, weights = [], []
    cap, seed = ctx.cfg.ifd.candidate_cap_per_domain, ctx.cfg.seed
    for d in sorted({p.domain for p in picks}):
        pool, k = sel.pool.get(d, []), sel.allocation.real[d]
        if 0 < k < len(pool):
            cands = _capped(pool, max(cap, k), random.Random(f"{seed}:{stage}:{d}:cap"))
            items += cands
            weights += [k / len(cands)] * len(cands)
        else:
            mine = [by_id[p.example_id] for p in picks if p.domain == d]
            items += mine
            weights += [1.0] * len(mine)
    return items, weights


def _annotation(ctx, teacher, items: list[dict], weights: list[float], price, per_call_s: float,
                stage: int) -> tuple[StepEstimate, list]:
    tin = [w * ledger.messages_tokens(tp.rationale_messages(it, ctx.spec.task_type, instruction=ctx.spec.instruction,
                                                             labels=ctx.labels)) for it, w in zip(items, weights)]
    tout, texts, cached, src = _reply_tokens(ctx, teacher, items)
    tout = [w * t for w, t in zip(weights, tout)]
    paid_in = sum(t for t, c in zip(tin, cached) if not c)
    paid_out = sum(t for t, c in zip(tout, cached) if not c)
    n_paid = sum(w for w, c in zip(weights, cached) if not c)
    st = StepEstimate(stage, "annotation", calls=round(sum(weights)), tokens_in=round(sum(tin)),
                      tokens_out=round(sum(tout)),
                      cost_usd=price.cost(paid_in, paid_out) if n_paid else 0.0, seconds=n_paid * per_call_s,
                      note=f"replies: {src}" + (f"; {sum(cached)} cached (free)" if any(cached) else ""))
    return st, texts


def _synthesis(ctx, short: dict[str, int], price, per_call_s: float, stage: int) -> list[StepEstimate]:
    from baldistill_core.teacher.client import SYNTH_BATCH

    cfg, spec = ctx.cfg, ctx.spec
    calls = tin = tout = n_items = v_in = 0
    per_item = DEFAULT_OUT_TOKENS.get(spec.task_type, 120) + 60  # rationale + the item's input and answer
    for d, n in sorted(short.items()):
        shots = store.examples(ctx.conn, cfg.dataset, "train", domain=d, limit=3)
        for s in range(0, n, SYNTH_BATCH):
            size = min(SYNTH_BATCH, n - s)
            msgs = tp.synthesis_messages(d, shots, size, spec.task_type, instruction=spec.instruction,
                                         labels=ctx.labels)
            calls, tin, tout = calls + 1, tin + ledger.messages_tokens(msgs), tout + per_item * size
        n_items += n
        if shots and cfg.teacher.verify_synthetic:
            v_in += n * ledger.messages_tokens(tp.verification_messages(shots[0]["input"], spec.task_type,
                                                                         instruction=spec.instruction,
                                                                         labels=ctx.labels))
    note = f"replies: default {per_item} tokens per item for {spec.task_type}"
    out = [StepEstimate(stage, "synthesis", calls=calls, tokens_in=tin, tokens_out=tout,
                        cost_usd=price.cost(tin, tout) if calls else 0.0, seconds=calls * per_call_s, note=note)]
    if cfg.teacher.verify_synthetic and n_items:
        vout = n_items * DEFAULT_OUT_TOKENS.get(spec.task_type, 120)
        out.append(StepEstimate(stage, "verification", calls=n_items, tokens_in=v_in, tokens_out=vout,
                                cost_usd=price.cost(v_in, vout), seconds=n_items * per_call_s, note=note))
    return out



