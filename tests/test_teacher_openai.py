"""The openai backend against a real local HTTP server, through the real openai SDK."""

from __future__ import annotations

import time

import pytest
from _openai_server import FakeOpenAI
from _teacher_helpers import items, small_dataset

from baldistill_core import store
from baldistill_core.teacher import ledger
from baldistill_core.config import TeacherConfig
from baldistill_core.teacher.client import BudgetExceeded, TeacherCallError, build_teacher

KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def env(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    with FakeOpenAI() as server:
        yield conn, spec, server


def make(conn, spec, server, *, run_id="run-1", budget=None, **cfg):
    base = dict(backend="openai", model="fake-gpt", base_url=server.base_url, max_retries=2,
                retry_backoff_s=0.01, timeout_s=5, concurrency=8, verify_synthetic=False)
    base.update(cfg)
    return build_teacher(TeacherConfig(**base), conn, spec=spec, run_id=run_id, api_key=KEY, budget_examples=budget)


def ledger_rows(conn, run_id="run-1"):
    return store.rows(conn, "SELECT * FROM ledger WHERE run_id IS ? ORDER BY seq", (run_id,))


def test_success_then_cached_rerun_costs_nothing(env):
    conn, spec, server = env
    its = items(conn, spec.name, limit=6)
    anns = make(conn, spec, server).annotate(its)
    assert [a.kept for a in anns] == [True] * 6
    assert [a.predicted for a in anns] == [it["answer"] for it in its]
    assert server.count(200) == 6 and server.count() == 6
    assert all(h["auth"] == f"Bearer {KEY}" for h in server.hits)
    s1 = ledger.summary(conn, "run-1")
    assert s1["calls"] == 6 and s1["cached_calls"] == 0 and s1["examples"] == 6 and s1["cost_usd"] > 0
    assert s1["tokens_in"] > 0 and s1["tokens_out"] > 0

    again = make(conn, spec, server).annotate(its)  # a resumed run: same settings, same run id
    assert all(a.cached and a.kept for a in again)
    assert server.count() == 6, "a cached re-run must not reach the server"
    s2 = ledger.summary(conn, "run-1")
    assert s2["calls"] == 12 and s2["cached_calls"] == 6
    assert s2["cost_usd"] == pytest.approx(s1["cost_usd"]) and s2["examples"] == 6, "never double counted"

    other = make(conn, spec, server, run_id="run-2").annotate(its)  # a second run: free, but its own budget
    assert all(a.cached for a in other) and server.count() == 6
    assert ledger.spent_examples(conn, "run-2") == 6 and ledger.summary(conn, "run-2")["cost_usd"] == 0


def test_429_then_success_respects_retry_after(env):
    conn, spec, server = env
    its = items(conn, spec.name, marker={0: "[[429]]"}, limit=3)
    t0 = time.time()
    anns = make(conn, spec, server, retry_backoff_s=5.0).annotate(its)  # Retry-After: 0 must win over 5 s
    assert time.time() - t0 < 3
    assert all(a.kept for a in anns)
    assert server.count(429) == 1 and server.count(200) == 3
    rows = ledger_rows(conn)
    assert len(rows) == 3 and all(r["ok"] == 1 for r in rows)


def test_500_until_give_up_is_a_clear_item_error_not_cached(env):
    conn, spec, server = env
    its = items(conn, spec.name, marker={1: "[[500]]"}, limit=3)
    anns = make(conn, spec, server, max_retries=2).annotate(its)
    assert anns[0].kept and anns[2].kept
    assert not anns[1].kept and anns[1].reason.startswith("teacher error: HTTP 500 after 3 attempt(s)")
    assert server.count(500) == 3
    rows = ledger_rows(conn)
    assert len(rows) == 3 and sum(r["ok"] == 0 for r in rows) == 1
    failed = [r for r in rows if not r["ok"]][0]
    assert failed["examples"] == 0 and failed["cost_usd"] == 0 and "HTTP 500" in failed["error"]
    make(conn, spec, server, max_retries=0).annotate(its)  # failures are not cached: asked again
    assert server.count(500) == 4 and server.count(200) == 2


def test_timeout_fails_only_that_item(env):
    conn, spec, server = env
    its = items(conn, spec.name, marker={0: "[[slow:2]]"}, limit=3)
    t0 = time.time()
    anns = make(conn, spec, server, timeout_s=0.4, max_retries=1).annotate(its)
    assert time.time() - t0 < 4
    assert not anns[0].kept and "attempt(s)" in anns[0].reason and "time" in anns[0].reason.lower()
    assert anns[1].kept and anns[2].kept
    assert len(ledger_rows(conn)) == 3


def test_refusal_is_a_clear_reason(env):
    conn, spec, server = env
    its = items(conn, spec.name, marker={0: "[[refuse]]"}, limit=2)
    anns = make(conn, spec, server).annotate(its)
    assert not anns[0].kept and anns[0].reason.startswith("teacher refused")
    assert anns[1].kept
    refused = [r for r in ledger_rows(conn) if not r["ok"]]
    assert len(refused) == 1 and refused[0]["cost_usd"] > 0  # a refusal was paid for, but not cached
    assert ledger.cache_get(conn, refused[0]["key"]) is None


def test_synthesis_structured_fenced_and_malformed(env):
    conn, spec, server = env
    shots = items(conn, spec.name, limit=2)
    t = make(conn, spec, server, verify_synthetic=True)
    got = t.synthesize("tin", shots, 7)
    assert len(got) == 7 and all(g["answer"] == "tin" and g["domain"] == "tin" for g in got)
    assert all(g["teacher_answer"] == "tin" for g in got)
    assert all(g["verified"] is True for g in got), "the blind solve of the fake server agrees"
    synth = [r for r in ledger_rows(conn) if r["purpose"] == "synthesis"]
    assert len(synth) == 2 and sum(r["examples"] for r in synth) == 7  # batches of 5 + 2
    assert sum(r["purpose"] == "verification" for r in ledger_rows(conn)) == 7

    fenced = make(conn, spec, server).synthesize("acq", [{"input": "x [[fence]]", "answer": "acq"}], 3)
    assert len(fenced) == 3

    with pytest.raises(TeacherCallError, match="malformed synthesis reply"):
        make(conn, spec, server).synthesize("acq", [{"input": "x [[garbage]]", "answer": "acq"}], 2)
    bad = [r for r in ledger_rows(conn) if r["purpose"] == "synthesis" and not r["ok"]]
    assert len(bad) == 1 and bad[0]["examples"] == 0


def test_synthesis_falls_back_when_server_rejects_json_schema(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path)
    with FakeOpenAI(reject_json_schema=True) as server:
        got = make(conn, spec, server).synthesize("earn", items(conn, spec.name, limit=1), 3)
        assert len(got) == 3
        assert server.count(400) == 1 and server.count(200) == 1


def test_slow_responses_under_concurrency_nothing_lost_or_double_counted(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = small_dataset(conn, tmp_path, n_per_label=8)
    its = items(conn, spec.name)  # 40 items, some rate limited, some failing
    marks = {k: "[[429]]" for k in range(0, 40, 5)} | {k: "[[500]]" for k in range(3, 40, 10)}
    its = items(conn, spec.name, marker=marks)
    with FakeOpenAI(latency_s=0.15) as server:
        t0 = time.time()
        anns = make(conn, spec, server, concurrency=8, max_retries=1).annotate(its)
        elapsed = time.time() - t0
        assert 4 <= server.max_inflight <= 8
        assert elapsed < 40 * 0.15 / 3, f"8 in flight should be much faster than serial, took {elapsed:.2f}s"
        rows = ledger_rows(conn)
        assert len(rows) == len(its), "one ledger row per logical call"
        assert len({r["key"] for r in rows}) == len(its)
        assert sum(r["ok"] for r in rows) == server.count(200) == 36
        assert sum(not a.kept for a in anns) == 4
        assert server.count(500) == 4 * 2 and server.count(429) == 8
        assert ledger.spent_examples(conn, "run-1") == 36


def test_budget_is_checked_before_spending_and_run_resumes(env):
    conn, spec, server = env
    its = items(conn, spec.name, limit=5)
    with pytest.raises(BudgetExceeded, match="3 examples|budget"):
        make(conn, spec, server, budget=3).annotate(its)
    assert server.count() == 0 and ledger_rows(conn) == []
    make(conn, spec, server, budget=3).annotate(its[:3])
    with pytest.raises(BudgetExceeded):
        make(conn, spec, server, budget=3).annotate(its[3:4])
    assert make(conn, spec, server, budget=3).annotate(its[:3])[0].cached  # already paid: fits the budget


def test_cost_cap_stops_cleanly_then_resumes_from_cache(env):
    conn, spec, server = env
    its = items(conn, spec.name, limit=8)
    pricey = dict(price_in_per_mtok=1000.0, price_out_per_mtok=1000.0, concurrency=1)
    one = make(conn, spec, server, **pricey).annotate(its[:1])
    per_call = ledger.summary(conn, "run-1")["cost_usd"]
    assert one[0].kept and per_call > 0
    cap = per_call * 3.5
    with pytest.raises(BudgetExceeded, match="cost cap"):
        make(conn, spec, server, cost_cap_usd=cap, **pricey).annotate(its)
    spent = ledger.summary(conn, "run-1")["cost_usd"]
    assert spent <= cap and server.count() >= 3
    hits = server.count()
    done = make(conn, spec, server, cost_cap_usd=per_call * 20, **pricey).annotate(its)
    assert all(a.kept for a in done)
    assert server.count() - hits == 8 - hits, "calls made before the stop are not paid again"


def test_api_key_never_stored(env, tmp_path):
    conn, spec, server = env
    its = items(conn, spec.name, marker={1: "[[500]]"}, limit=3)
    make(conn, spec, server, max_retries=0).annotate(its)
    conn.execute("PRAGMA wal_checkpoint(FULL)")
    db = conn.execute("PRAGMA database_list").fetchone()[2]
    from pathlib import Path

    for f in Path(db).parent.glob("studio.db*"):
        assert KEY.encode() not in f.read_bytes()


def test_missing_key_says_how_to_fix(env, monkeypatch):
    conn, spec, _ = env
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from baldistill_core.teacher.client import TeacherConfigError

    with pytest.raises(TeacherConfigError, match="OPENAI_API_KEY"):
        build_teacher(TeacherConfig(backend="openai"), conn, spec=spec)


def test_bad_key_stops_the_batch_with_a_fix(env):
    conn, spec, server = env
    from baldistill_core.teacher.client import TeacherConfigError

    its = items(conn, spec.name, marker={0: "[[401]]"}, limit=1)
    with pytest.raises(TeacherConfigError, match="refused the API key") as exc:
        make(conn, spec, server).annotate(its)
    assert KEY not in str(exc.value) and server.count(401) == 1  # not retried


def test_unknown_price_is_counted_but_not_costed(env):
    """A paid model with no known price: the ledger counts its calls as unpriced, never at default rates."""
    conn, spec, server = env
    its = items(conn, spec.name, limit=4)
    make(conn, spec, server, price_in_per_mtok=None, price_out_per_mtok=None).annotate(its)
    s = ledger.summary(conn, "run-1")
    assert s["calls"] == 4 and s["unpriced_calls"] == 4 and s["cost_usd"] == 0 and s["tokens_in"] > 0
    assert ledger.cost_text(s) == "$0.0000 + 4 calls at an unknown price"
    assert {r["priced"] for r in ledger_rows(conn)} == {0}
    make(conn, spec, server, price_in_per_mtok=None, price_out_per_mtok=None).annotate(its)  # cached: no price needed
    assert ledger.summary(conn, "run-1")["unpriced_calls"] == 4
    make(conn, spec, server, run_id="run-2").annotate(items(conn, spec.name, limit=6)[4:])  # a known price
    s2 = ledger.summary(conn, "run-2")
    assert s2["unpriced_calls"] == 0 and s2["cost_usd"] > 0 and ledger.cost_text(s2).startswith("$")
