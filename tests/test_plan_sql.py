"""The plan path reads ids and rows, not texts: the pool holds no text, only shown picks and IFD candidates
are read by id, and the selection is exactly the one a full-text pool gives. Real SQLite, bundled data."""

from __future__ import annotations

import hashlib
import re

from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.runs import preview
from baldistill_core.runs.context import RunContext
from baldistill_core.runs.stage import StageHistory, plan_stage
from baldistill_core.selection import select as selection
from baldistill_core.selection.policy import allocate_stage


def _cfg(**kw) -> RunConfig:
    base = dict(dataset="r52", method="baldistill_a", budget=400, stages=4, seed=3)
    base.update(kw)
    return RunConfig(**base)


def _scorer(batch):
    # A deterministic stand-in for a student: the score is a function of the exact prompt text, so a
    # selection built from different (or missing) texts would rank differently.
    return {b["key"]: int(hashlib.sha256(b["prompt"].encode()).hexdigest()[:8], 16) / 2**32 for b in batch}


def _traced(conn):
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def _reads_text(sql: str) -> bool:
    return bool(re.search(r"SELECT[^;]*\binput\b[^;]*FROM examples", sql, re.S))


def test_the_pool_holds_ids_and_rows_only(ws):
    _, conn = ws
    pool = selection.candidate_pool(conn, "r52")
    entries = [e for items in pool.values() for e in items]
    assert len(entries) == store.get_dataset(conn, "r52")["n_train"]
    assert {frozenset(e) for e in entries} == {frozenset({"id", "row", "domain"})}
    for items in pool.values():
        assert [e["row"] for e in items] == sorted(e["row"] for e in items)


def test_selection_from_the_id_pool_equals_the_full_text_selection(ws):
    _, conn = ws
    cfg = _cfg()
    ctx = RunContext.build(conn, cfg, tokenizer=None)
    keep = ctx.recorded_filter() or (lambda e: True)   # the demo's recorded teacher covers part of the pool
    full = {d: [] for d in ctx.sizes}
    for e in store.examples(conn, "r52", "train"):      # the old pool: every row with its text
        if keep(e):
            full[e["domain"]].append(e)
    hist = StageHistory()
    for stage in range(3):
        seen = _traced(conn)
        sel = plan_stage(ctx, stage, hist, scorer=_scorer if stage else None)
        conn.set_trace_callback(None)
        text_reads = [q for q in seen if _reads_text(q)]
        # Texts are read by id only, and only for the scored candidates (none at stage 0, random picks).
        assert all(" id IN (" in q for q in text_reads), text_reads
        assert (len(text_reads) > 0) == bool(sel.scored)
        old_pool = selection.remaining(full, hist.taken)
        alloc = allocate_stage(ctx.method.policy, ctx.sizes, {d: len(v) for d, v in old_pool.items()}, cfg.budget,
                               ctx.k, stage, fill=ctx.method.fill)
        old = selection.select_stage(alloc, old_pool, seed=cfg.seed, use_ifd=ctx.method.ifd,
                                     scorer=_scorer if stage else None, prompt_of=ctx.view.prompt,
                                     ifd_cap=cfg.ifd.candidate_cap_per_domain, fill=ctx.method.fill,
                                     synthetic=lambda d: [], earlier_real=hist.earlier_real)
        real = lambda s: [(p.example_id, p.kind, p.ifd) for p in s.picks if p.kind != "synthetic"]  # noqa: E731
        assert real(sel) == real(old), stage
        assert sel.runners_up == old.runners_up
        if stage:
            assert sel.scored and sel.scored == old.scored
        hist.add(sel)


def test_the_preview_reads_the_text_of_shown_rows_only(ws):
    _, conn = ws
    seen = _traced(conn)
    pv = preview.preview_stage(conn, _cfg(), 2)
    conn.set_trace_callback(None)
    text_reads = [q for q in seen if _reads_text(q)]
    assert text_reads and all(" id IN (" in q for q in text_reads)
    n_params = sum(q.count("'") // 2 for q in text_reads)   # ids are bound as quoted literals in the trace
    assert n_params <= len(pv.head_picks) + len(pv.runners_up) + 10
    assert pv.head_picks and all(p["input"] for p in pv.head_picks)
    texts = store.inputs_by_id(conn, "r52", [p["id"] for p in pv.head_picks])
    assert all(texts[p["id"]].split()[0] in p["input"] for p in pv.head_picks)


def test_a_pool_read_before_gives_the_same_preview_without_reading_it_again(ws):
    _, conn = ws
    cfg = _cfg()
    pool = RunContext.build(conn, cfg).pool()
    fresh = preview.preview_stage(conn, cfg, 2)
    seen = _traced(conn)
    reused = preview.preview_stage(conn, cfg, 2, pool=pool)
    conn.set_trace_callback(None)
    assert not [q for q in seen if "examples_pool" in q]          # the page's cached pool is not re-read
    assert [(p.example_id, p.kind) for p in reused.picks] == [(p.example_id, p.kind) for p in fresh.picks]
    assert reused.head_picks == fresh.head_picks
    assert RunContext.build(conn, cfg).pool() == pool               # and it was not changed by the preview
