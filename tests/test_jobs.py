"""Background workers as real processes: kill -9 and resume, cancel, and the one-worker lease."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from baldistill_core import store
from baldistill_core.runs import jobs
from baldistill_core.runs import records as runs
from baldistill_core.workspace import open_workspace
from _run_helpers import import_tiny, tiny_config, training_content


def _small():
    # Two stages are enough to kill one mid-way; the 3-stage loop is covered by test_pipeline.
    return tiny_config(budget=10, stages=2, eval=dict(live_per_domain=1, final_per_domain=1))


def _workspace(tmp_path, name):
    ws, conn = open_workspace(tmp_path / name / "ws", bundled=False)
    import_tiny(conn, tmp_path / name / "data")
    return ws, conn


def _wait(pred, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _paid_calls(conn, run_id):
    return store.rows(conn, "SELECT key, COUNT(*) AS n FROM ledger WHERE run_id = ? AND cached = 0 GROUP BY key",
                      (run_id,))


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_kill_9_mid_stage_then_resume_repeats_no_teacher_call_and_equals_an_uninterrupted_run(tmp_path):
    ws, conn = _workspace(tmp_path, "killed")
    cfg = _small()
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    proc = jobs.start_worker(ws, run_id)
    try:
        _wait(lambda: runs.stage_status(conn, run_id, 1) == "training", 180, "stage 1 to reach training")
    finally:
        _kill_group(proc)
    run = runs.get_run(conn, run_id)
    assert run["status"] == "running" and run["state"] == "interrupted" and not run["worker_alive"]
    adapter0 = runs.stage_rows(conn, run_id)[0]["adapter_dir"]
    stage0_hash = hashlib.sha256(open(os.path.join(adapter0, "adapter_model.safetensors"), "rb").read()).hexdigest()
    paid_before = _paid_calls(conn, run_id)
    assert paid_before  # stages 0 and 1 were annotated before the kill

    proc2 = jobs.resume(ws, conn, run_id)
    assert proc2.wait(timeout=240) == 0, (ws.runs_dir / run_id / "worker.log").read_text()[-3000:]
    assert runs.get_run(conn, run_id)["status"] == "finished"
    paid_after = _paid_calls(conn, run_id)
    assert all(r["n"] == 1 for r in paid_after)  # no teacher call paid twice
    assert {r["key"] for r in paid_before} <= {r["key"] for r in paid_after}
    # Stage 0 finished before the kill: its adapter was not retrained.
    assert hashlib.sha256(open(os.path.join(adapter0, "adapter_model.safetensors"), "rb").read()).hexdigest() \
        == stage0_hash

    ws2, conn2 = _workspace(tmp_path, "reference")
    ref = runs.create_run(conn2, ws2.runs_dir, cfg)
    assert jobs.run_worker(ws2, conn2, ref) == 0
    assert training_content(conn, run_id) == training_content(conn2, ref)
    assert len(training_content(conn, run_id)) >= 8


def test_second_worker_is_refused_and_cancel_stops_the_first(tmp_path):
    ws, conn = _workspace(tmp_path, "lease")
    run_id = runs.create_run(conn, ws.runs_dir, _small())
    procs = [jobs.start_worker(ws, run_id), jobs.start_worker(ws, run_id)]
    try:
        loser = _wait(lambda: next((p for p in procs if p.poll() is not None), None), 180, "one worker to exit")
        assert loser.returncode == jobs.EXIT_LOCKED
        winner = next(p for p in procs if p is not loser)
        assert winner.poll() is None
        assert runs.get_run(conn, run_id)["pid"] == winner.pid
        assert jobs.cancel(conn, run_id, wait_s=120) == "cancelled"
        assert winner.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                _kill_group(p)
    run = runs.get_run(conn, run_id)
    assert run["status"] == "cancelled" and run["pid"] is None
    assert any("cancel" in line["message"] for line in runs.log_tail(conn, run_id))
    # A cancelled run can be resumed later; a finished one cannot be cancelled into another state.
    assert jobs.cancel(conn, run_id) == "cancelled"


def test_claim_respects_a_live_holder_and_takes_over_from_a_dead_one(empty_ws):
    ws, conn = empty_ws
    from baldistill_core.config import RunConfig

    run_id = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="d"))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert jobs.claim(conn, run_id, holder.pid) == (True, holder.pid)
        ok, who = jobs.claim(conn, run_id)
        assert not ok and who == holder.pid
        # A stale heartbeat means the holder is gone even if its pid is still alive (pid reuse).
        conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time() - 3600, run_id))
        assert jobs.claim(conn, run_id)[0]
        jobs.release(conn, run_id)
        assert runs.get_run(conn, run_id)["pid"] is None
        assert jobs.claim(conn, run_id, holder.pid)[0]
    finally:
        holder.kill()
        holder.wait()
    assert jobs.claim(conn, run_id)[0]  # the holder is dead (and reaped)


def test_stored_run_config_holds_no_secret(empty_ws, monkeypatch):
    from pathlib import Path

    from baldistill_core.config import RunConfig

    ws, conn = empty_ws
    monkeypatch.setenv("MY_TEACHER_API_KEY", "sk-test-secret-123")
    cfg = RunConfig(dataset="d", teacher=dict(backend="openai", api_key_env="MY_TEACHER_API_KEY"))
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    run = runs.get_run(conn, run_id)
    stored = store.one(conn, "SELECT config FROM runs WHERE id = ?", (run_id,))["config"]
    assert "sk-test-secret" not in stored
    assert "sk-test-secret" not in (Path(run["folder"]) / "config.yaml").read_text()
    assert run["config"]["teacher"]["api_key_env"] == "MY_TEACHER_API_KEY"
