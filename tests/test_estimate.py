"""The run estimate: counts on the real prompts, prices (known, unknown, overridden), the bounded probe,
the hard cap (UI, CLI, worker), the stored estimate across a restart, and estimate vs actual."""

from __future__ import annotations

import json
import time

import pytest

from baldistill_core.runs import actuals, estimate, jobs, throughput
from baldistill_core.runs import records as runs
from baldistill_core.teacher import ledger
from baldistill_core.teacher import prompts as tp
from baldistill_core.workspace import open_workspace
from _run_helpers import import_tiny, tiny_config

SEEDED = {"load_s": 0.5, "gen_tok_s": 100.0, "ifd_tok_s": 80.0, "train_tok_s": 200.0, "train_overhead_s": 2.0}


@pytest.fixture(autouse=True)
def own_store(tmp_path, monkeypatch):
    """Throughputs go to a per-test file (seeded, so no probe runs unless a test asks for one)."""
    path = tmp_path / "throughputs.json"
    monkeypatch.setattr(throughput, "store_path", lambda: path)
    throughput.record("tiny-llama-test", SEEDED, "seeded by the test")
    return path


@pytest.fixture
def tiny(tmp_path):
    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    spec = import_tiny(conn, tmp_path / "data")
    yield ws, conn, spec
    conn.close()


def _recorded(spec) -> dict[str, str]:
    rows = [json.loads(line) for line in open(spec.recorded_rationales, encoding="utf-8") if line.strip()]
    return {r["id"]: r["rationale"] for r in rows}


def _openai(**teacher):
    return tiny_config(teacher=dict(backend="openai", base_url="http://127.0.0.1:9/v1", verify_synthetic=False,
                                    **teacher))


def test_counts_match_the_hand_computed_plan(tiny):
    ws, conn, spec = tiny
    est = estimate.estimate_run(conn, tiny_config(), ws_root=ws.root)
    ann = {s.stage: s for s in est.steps if s.step == "annotation"}
    # B=15, K=3, adaptive: quotas alg/geo/num 3/1/1, 3/1/1, 2/2/1; num has only 2 real problems, so
    # stage 2 annotates 4 real picks and synthesizes the missing num problem in one call.
    assert {i: s.calls for i, s in ann.items()} == {0: 5, 1: 5, 2: 4}
    synth = [s for s in est.steps if s.step == "synthesis"]
    assert [(s.stage, s.calls) for s in synth] == [(2, 1)]
    assert not [s for s in est.steps if s.step == "verification"]  # verify_synthetic is off in tiny_config
    # IFD scoring at stages 1 and 2 (BalDistill-A); one training and one live evaluation per stage.
    assert [s.stage for s in est.steps if s.step == "ifd scoring"] == [1, 2]
    assert [s.stage for s in est.steps if s.step == "training"] == [0, 1, 2]
    # Output tokens: the recorded rationales of exactly the picked problems, counted like the ledger.
    rec = _recorded(spec)
    assert all(s.tokens_out % 1 == 0 for s in ann.values())
    picks_out = sum(s.tokens_out for s in ann.values())
    assert min(ledger.estimate_tokens(t) for t in rec.values()) * 14 <= picks_out
    assert picks_out <= max(ledger.estimate_tokens(t) for t in rec.values()) * 14
    # Input tokens: every call is the system message + the rationale prompt of a "[d] What is a + b?" problem.
    one = ledger.messages_tokens(tp.rationale_messages({"input": "[alg] What is 3 + 2?", "answer": "5"}, "math",
                                                       instruction="Add the numbers."))
    assert abs(ann[0].tokens_in - 5 * one) <= 5 * 2  # problems differ by a digit or two
    assert est.cost_usd == 0.0 and "recorded teacher" in est.price["source"]


def test_estimate_equals_the_ledger_of_a_real_run(tiny):
    """Random FT CoT picks the same problems in the estimate and the run: calls and tokens agree exactly."""
    ws, conn, _ = tiny
    cfg = tiny_config(method="random_ft_cot", budget=8, stages=1)
    run_id = jobs.create_checked(ws, conn, cfg)
    assert jobs.run_worker(ws, conn, run_id) == 0
    est = estimate.load(runs.get_run(conn, run_id)["folder"])
    total = ledger.summary(conn, run_id)
    assert (est.calls, *est.tokens) == (total["calls"], total["tokens_in"], total["tokens_out"])
    rows = actuals.load(runs.get_run(conn, run_id)["folder"])
    steps = {r["step"] for r in rows}
    assert {"startup", "selection", "annotation", "training", "evaluation"} <= steps
    trained = sum(r["units"] for r in rows if r["step"] == "training")
    est_train = sum(s.units for s in est.steps if s.step == "training")
    assert abs(est_train - trained) / trained <= 0.1
    cmp = {r["step"]: r for r in actuals.compare(est, rows)}
    assert cmp["annotation"]["est_tokens"] == cmp["annotation"]["actual_tokens"] == total["tokens_in"] + total["tokens_out"]
    # the run's measurements replace the seeded figures for the next estimate
    assert throughput.stored("tiny-llama-test")["train_tok_s"]["source"] == f"measured by run {run_id}"


def test_prices_known_unknown_and_overridden(tiny):
    ws, conn, _ = tiny
    known = estimate.estimate_run(conn, _openai(model="gpt-4o-mini"), ws_root=ws.root)
    tin, tout = known.tokens
    assert known.cost_usd == pytest.approx(tin * 0.15e-6 + tout * 0.60e-6, rel=2e-3)  # tokens are rounded per step
    assert "price table of 2025-06-01" in known.price["source"]
    unknown = estimate.estimate_run(conn, _openai(model="mystery-model-7b"), ws_root=ws.root)
    assert unknown.cost_usd is None and unknown.calls == known.calls
    assert "unknown" in unknown.price["source"] and any("mystery-model-7b" in w for w in unknown.warnings)
    assert "unknown" in "\n".join(estimate.summary_lines(unknown))
    own = estimate.estimate_run(conn, _openai(model="mystery-model-7b", price_in_per_mtok=1.0, price_out_per_mtok=2.0),
                                ws_root=ws.root)
    assert own.cost_usd == pytest.approx(tin * 1e-6 + tout * 2e-6, rel=2e-3)  # tokens are rounded per step
    # the workspace's copy of the table is the one users edit
    table = ws.root / "prices.yaml"
    table.write_text(table.read_text().replace("models:\n", "models:\n  mystery-model-7b: {in: 3.0, out: 4.0}\n"))
    edited = estimate.estimate_run(conn, _openai(model="mystery-model-7b"), ws_root=ws.root)
    assert edited.cost_usd == pytest.approx(tin * 3e-6 + tout * 4e-6, rel=2e-3)  # tokens are rounded per step


def test_probe_is_bounded_in_time(tiny, own_store):
    own_store.unlink()
    cfg = tiny_config()
    t0 = time.perf_counter()
    res = throughput.probe("tiny-llama-test", cfg.student, ["Add the numbers. 1 + 2?"] * 4, budget_s=20)
    assert time.perf_counter() - t0 <= 22
    assert "load_s" in res["figures"]
    # on a quiet machine all three are measured; a loaded one may run out of budget, and says so
    assert set(res["figures"]) | {"gen_tok_s": "generation", "train_tok_s": "training"}.keys() >= set(throughput.PROBED)
    for fig, phase in (("gen_tok_s", "generation"), ("train_tok_s", "training")):
        assert (fig in res["figures"]) != (phase in res["skipped"])
    own_store.unlink()
    t0 = time.perf_counter()
    res = throughput.probe("tiny-llama-test", cfg.student, ["x"], budget_s=0.01)  # only the model load fits
    assert set(res["skipped"]) == {"generation", "training"} and time.perf_counter() - t0 < 15
    # an estimate with no stored figures probes once and says so
    own_store.unlink()
    ws, conn, _ = tiny
    est = estimate.estimate_run(conn, cfg, ws_root=ws.root, probe_budget_s=5)
    assert est.probe is not None and est.sources["gen_tok_s"].startswith("probe")
    trained = "training" not in est.probe["skipped"]   # one real trainer step also gives the stage overhead
    assert est.sources["train_overhead_s"].startswith("probe" if trained else "default")
    assert est.sources["startup_s"].startswith("default")


def test_hard_cap_refuses_cli_and_worker(tiny, tmp_path, capsys):
    from baldistill_core.cli import main

    ws, conn, _ = tiny
    cfg = _openai(model="gpt-4o-mini", hard_cost_cap_usd=1e-6)
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml())
    assert main(["estimate", str(path), "-w", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "15 teacher calls" in out.splitlines()[0]  # 14 rationales + 1 synthesis call and "launch would be refused" in out
    assert main(["run", str(path), "-w", str(ws.root)]) == 2
    assert "hard cap" in capsys.readouterr().err and runs.list_runs(conn) == []
    with pytest.raises(estimate.CostRefused, match="hard cap"):
        jobs.submit(ws, conn, cfg)
    assert runs.list_runs(conn) == []
    # a run created around the guard (an old client, a hand-made row) is refused by its worker
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    assert jobs.run_worker(ws, conn, run_id) == jobs.EXIT_FAILED
    run = runs.get_run(conn, run_id)
    assert run["status"] == "failed" and "hard cap" in run["error"]
    assert ledger.summary(conn, run_id)["calls"] == 0


def test_confirmation_threshold(tiny):
    ws, conn, _ = tiny
    cfg = tiny_config(confirm_above_minutes=0.01)
    est = estimate.estimate_run(conn, cfg, ws_root=ws.root)
    with pytest.raises(estimate.NeedsConfirmation, match="--yes"):
        jobs.create_checked(ws, conn, cfg, confirmed=False, estimate=est)
    assert runs.list_runs(conn) == []
    assert estimate.guard(est, cfg, confirmed=True)  # the reason is still reported
    capped = _openai(model="gpt-4o-mini", cost_cap_usd=1e-7)
    with pytest.raises(estimate.NeedsConfirmation, match="cost cap"):
        estimate.guard(estimate.estimate_run(conn, capped, ws_root=ws.root), capped)


def test_stored_estimate_survives_a_restart(tmp_path, capsys):
    from baldistill_core.cli import main

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    run_id = jobs.create_checked(ws, conn, _openai(model="gpt-4o-mini"))
    folder = runs.get_run(conn, run_id)["folder"]
    before = estimate.load(folder).to_json()
    conn.close()
    ws2, conn2 = open_workspace(tmp_path / "ws", bundled=False)  # a new process, as after a restart
    assert estimate.load(runs.get_run(conn2, run_id)["folder"]).to_json() == before
    assert (ws2.runs_dir / run_id / "prices.yaml").read_text().startswith("# Teacher prices")
    assert runs.run_config(conn2, run_id).teacher.price_in_per_mtok == 0.15  # resolved from the table
    assert main(["runs", "show", run_id, "-w", str(ws2.root), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["estimate_vs_actual"]
    ann = next(r for r in shown if r["step"] == "annotation")
    assert ann["est_calls"] == sum(s["calls"] for s in before["steps"] if s["step"] == "annotation") == 14
    assert ann["actual_calls"] is None  # nothing ran yet
    conn2.close()


def test_known_zero_pair_is_said_before_launch():
    cfg = tiny_config(dataset="math_lt", student=dict(model="smollm2-135m", preset="cpu-demo"))
    assert "known to score 0" in (estimate.known_zero(cfg) or "")
    assert estimate.known_zero(tiny_config(dataset="r52")) is None


def test_sweep_estimate_covers_every_run_and_its_guard_refuses(tiny, tmp_path, capsys):
    """A seed sweep is estimated as N runs: the hard cap and the confirmation apply to the total."""
    from baldistill_core.cli import main
    from baldistill_core.runs import sweeps

    ws, conn, _ = tiny
    one = estimate.estimate_run(conn, _openai(model="gpt-4o-mini"), ws_root=ws.root)
    three = one.repeated(3)
    assert one.cost_usd > 0 and three.calls == 3 * one.calls and three.tokens == (3 * one.tokens[0], 3 * one.tokens[1])
    assert three.seconds == pytest.approx(3 * one.seconds) and three.cost_usd == pytest.approx(3 * one.cost_usd)
    assert one.repeated(1) is one and any("3 runs" in w for w in three.warnings)
    unknown = estimate.estimate_run(conn, _openai(model="no-such-model"), ws_root=ws.root)
    assert unknown.cost_usd is None and unknown.repeated(2).cost_usd is None  # unknown stays unknown

    cfg = _openai(model="gpt-4o-mini", hard_cost_cap_usd=2 * one.cost_usd)  # one run fits, three do not
    assert estimate.guard(one, cfg, confirmed=True) == []
    with pytest.raises(estimate.CostRefused, match="hard cap"):
        sweeps.start(ws, conn, cfg, [0, 1, 2])
    path = tmp_path / "sweep.yaml"
    path.write_text(cfg.to_yaml())
    assert main(["sweep", str(path), "--seeds", "0,1,2", "-w", str(ws.root)]) == 2
    assert "hard cap" in capsys.readouterr().err
    assert sweeps.list_sweeps(conn) == [] and runs.list_runs(conn) == []  # nothing created

    base = estimate.estimate_run(conn, tiny_config(), ws_root=ws.root)
    slow = tiny_config(confirm_above_minutes=2 * base.seconds / 60)     # one run is under it, three are over
    assert estimate.guard(estimate.estimate_run(conn, slow, ws_root=ws.root), slow) == []
    path.write_text(slow.to_yaml())
    assert main(["sweep", str(path), "--seeds", "0,1,2", "-w", str(ws.root)]) == 2
    assert "--yes" in capsys.readouterr().err and sweeps.list_sweeps(conn) == []


def test_unknown_price_reaches_the_run_as_unknown_and_old_ledgers_gain_the_column(tmp_path):
    """An unknown model is launched with no price (the ledger then counts its calls unpriced), not at the
    config's default rates; a workspace made before the ``priced`` column gains it on open."""
    import sqlite3

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    cfg = _openai(model="mystery-model-7b")
    assert cfg.teacher.price_in_per_mtok == 0.15                     # the config default, a guess
    run_id = jobs.create_checked(ws, conn, cfg)
    stored = runs.run_config(conn, run_id).teacher
    assert stored.price_in_per_mtok is None and stored.price_out_per_mtok is None
    again = estimate.estimate_run(conn, runs.run_config(conn, run_id), ws_root=ws.root, probe=False)
    assert again.cost_usd is None and "unknown" in again.price["source"]  # the worker's re-estimate agrees
    conn.close()

    old = tmp_path / "old.db"
    raw = sqlite3.connect(old)
    raw.execute("CREATE TABLE ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, key TEXT NOT NULL,"
                " purpose TEXT NOT NULL, cached INTEGER NOT NULL, ok INTEGER NOT NULL DEFAULT 1, tokens_in INTEGER"
                " NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0, latency_s REAL NOT NULL DEFAULT 0,"
                " cost_usd REAL NOT NULL DEFAULT 0, examples INTEGER NOT NULL DEFAULT 0, error TEXT, at REAL NOT NULL)")
    raw.execute("INSERT INTO ledger(run_id, key, purpose, cached, cost_usd, at) VALUES ('r', 'k', 'rationale', 0, 0.5, 1)")
    raw.commit()
    raw.close()
    from baldistill_core import store

    c = store.connect(old)
    s = ledger.summary(c, "r")
    assert s["unpriced_calls"] == 0 and s["cost_usd"] == 0.5        # old rows count as priced
    c.close()


def test_a_busy_probe_is_flagged_and_probed_again_once_the_machine_is_free(tiny, own_store, monkeypatch):
    """A probe taken while other jobs held every core undercounts the machine (one read 3 h for a 7-minute
    run): the estimate says so, and the probe's figures (not a run's) are measured again once it is free."""
    from baldistill_core.student import threads

    ws, conn, _ = tiny
    monkeypatch.setattr(throughput.os, "cpu_count", lambda: 2)
    throughput.record("tiny-llama-test", {"gen_tok_s": 5.0, "train_tok_s": 9.0, "probe_attempted": 3.0,
                                          "probe_busy": 3.0}, "probe (3.0 s, load avg 4.9, 3 other jobs runnable)")
    monkeypatch.setattr(threads, "runnable_others", lambda: 3.0)          # still busy: nothing to gain now
    assert throughput.missing("tiny-llama-test") == [] and throughput.probed_busy("tiny-llama-test") == 3.0
    est = estimate.estimate_run(conn, tiny_config(), ws_root=ws.root)
    assert est.probe is None and any("kept every core busy" in w for w in est.warnings)
    monkeypatch.setattr(threads, "runnable_others", lambda: 0.0)          # free now
    assert throughput.missing("tiny-llama-test") == ["gen_tok_s", "train_tok_s"]   # load_s was seeded, not probed
    res = throughput.probe("tiny-llama-test", tiny_config().student, ["Add 1 + 2."] * 2, budget_s=20)
    assert "probe_busy" not in res["figures"] and throughput.probed_busy("tiny-llama-test") is None
    assert throughput.missing("tiny-llama-test") == []
    assert throughput.stored("tiny-llama-test")["gen_tok_s"]["value"] != 5.0


def test_a_first_run_pays_building_the_model_once_and_the_next_startup_does_not(tiny, tmp_path, monkeypatch):
    import psutil

    from baldistill_core.runs.context import tokenizer_loader
    from baldistill_core.student import model

    ws, conn, _ = tiny
    cfg = tiny_config()
    tok = tokenizer_loader(cfg.student.model)()  # built in this machine's cache

    def startup(e):
        return next(s for s in e.steps if s.step == "startup")

    built = estimate.estimate_run(conn, cfg, ws_root=ws.root, probe=False, tokenizer=tok)
    monkeypatch.setenv("BALDISTILL_CACHE", str(tmp_path / "new-machine"))  # a machine that never built it
    assert model.build_pending(cfg.student.model) == model.BUILD_SECONDS[cfg.student.model] > 0
    first = estimate.estimate_run(conn, cfg, ws_root=ws.root, probe=False, tokenizer=tok)
    assert startup(first).seconds - startup(built).seconds == pytest.approx(model.BUILD_SECONDS[cfg.student.model])
    assert "building the model once" in startup(first).note and "building" not in startup(built).note
    # without a tokenizer the estimate loads one, which builds the model: the run has nothing left to build
    again = estimate.estimate_run(conn, cfg, ws_root=ws.root, probe=False)
    assert model.build_pending(cfg.student.model) == 0
    assert startup(again).seconds == pytest.approx(startup(built).seconds)
    # a run's startup row keeps the build it paid; what it teaches the next estimate leaves it out
    since_start = time.time() - psutil.Process().create_time()
    monkeypatch.setattr(actuals, "_recorders_in_process", 0)   # this process's first run
    rec = actuals.Recorder(conn, "r-build", tmp_path / "run", cfg)
    rec.startup(build_s=since_start - 4.0)
    row = actuals.load(tmp_path / "run")[0]
    assert row["step"] == "startup" and row["seconds"] >= since_start
    assert 4.0 <= throughput.stored(cfg.student.model)["startup_s"]["value"] < 4.0 + (row["seconds"] - since_start) + 1


def test_the_next_run_of_a_sweep_in_the_same_process_counts_its_startup_from_its_own_start(tiny, tmp_path, monkeypatch):
    import psutil

    ws, conn, _ = tiny
    cfg = tiny_config()
    monkeypatch.setattr(actuals, "_recorders_in_process", 0)
    first = actuals.Recorder(conn, "r-1", tmp_path / "r1", cfg)
    first.startup()
    age = time.time() - psutil.Process().create_time()
    assert actuals.load(tmp_path / "r1")[0]["seconds"] == pytest.approx(age, abs=1.0)   # the process's start
    time.sleep(1.5)                                                                   # the first run's work
    second = actuals.Recorder(conn, "r-2", tmp_path / "r2", cfg)
    time.sleep(0.2)                                                                   # loading its model
    second.startup()
    took = actuals.load(tmp_path / "r2")[0]["seconds"]
    assert 0.2 <= took < 1.0          # not the process's age, which holds the first run (>= age + 1.5)
    assert throughput.stored(cfg.student.model)["startup_s"]["value"] < age
