"""Fault catalogue (docs/reliability.md): a worker killed at every step, the teacher going down and coming
back, a full disk while saving a checkpoint, a database held by long reads and writes, and no secret in
anything a run writes. Each case checks that nothing is lost and no teacher call is paid twice."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest

from _openai_server import FakeOpenAI
from _run_helpers import import_tiny, tiny_config, training_content
from baldistill_core import store
from baldistill_core.runs import jobs
from baldistill_core.synthetic import review
from baldistill_core.runs import records as runs
from baldistill_core.workspace import open_workspace

PLANTED_KEY = "sk-PLANTED-7f3a9c1e5b2d4f60"


def _workspace(tmp_path, name):
    ws, conn = open_workspace(tmp_path / name / "ws", bundled=False)
    import_tiny(conn, tmp_path / name / "data")
    return ws, conn


def _small(**over):
    return tiny_config(budget=10, stages=2, eval=dict(live_per_domain=1, final_per_domain=1), **over)


def _paid(conn, run_id):
    return store.rows(conn, "SELECT key, COUNT(*) AS n FROM ledger WHERE run_id = ? AND cached = 0 AND ok = 1 GROUP BY key",
                      (run_id,))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: what every interrupted-and-resumed run must end up equal to."""
    tmp = tmp_path_factory.mktemp("reference")
    ws, conn = _workspace(tmp, "ref")
    run_id = runs.create_run(conn, ws.runs_dir, _small())
    assert jobs.run_worker(ws, conn, run_id) == 0
    return training_content(conn, run_id), {r["key"] for r in _paid(conn, run_id)}


# Every step a stage goes through, and the final evaluation.
STEPS = ["0:selecting", "0:annotating", "0:training", "0:evaluating", "1:ifd scoring", "1:annotating",
         "1:training 1/", "1:evaluating", "1:final evaluation"]


@pytest.mark.parametrize("step", STEPS)
def test_worker_killed_at_each_step_resumes_to_the_same_data(tmp_path, reference, step):
    ws, conn = _workspace(tmp_path, "killed")
    run_id = runs.create_run(conn, ws.runs_dir, _small())
    proc = jobs.start_worker(ws, run_id, env={"BALDISTILL_FAULT_KILL_AT": step})
    assert proc.wait(timeout=300) == -9, f"the worker should die by SIGKILL at {step}"
    run = runs.get_run(conn, run_id)
    assert run["state"] == "interrupted" and not run["worker_alive"]
    assert f"{run['current_stage']}:{run['current_step']}".startswith(step)

    env = {k: v for k, v in os.environ.items() if k != "BALDISTILL_FAULT_KILL_AT"}
    proc2 = jobs.resume(ws, conn, run_id)
    assert proc2.wait(timeout=300) == 0, (ws.runs_dir / run_id / "worker.log").read_text()[-3000:]
    assert env.get("BALDISTILL_FAULT_KILL_AT") is None
    assert runs.get_run(conn, run_id)["status"] == "finished"
    data, paid_keys = reference
    assert training_content(conn, run_id) == data              # no example lost or added
    assert all(r["n"] == 1 for r in _paid(conn, run_id))       # no teacher call paid twice
    assert {r["key"] for r in _paid(conn, run_id)} == paid_keys
    # every stage was evaluated exactly once per domain, whatever the interruption
    live = [m for m in runs.metrics(conn, run_id, "live") if not m["domain"].startswith("_")]
    per_point = {}
    for m in live:
        per_point.setdefault((m["stage"], m["domain"], m["metric"]), 0)
        per_point[(m["stage"], m["domain"], m["metric"])] += 1
    assert set(per_point.values()) == {1}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connections are refused
    return port


def test_teacher_down_stops_cleanly_then_resume_pays_nothing_twice_and_no_secret_is_written(
        tmp_path, monkeypatch):
    port = _closed_port()
    ws, conn = _workspace(tmp_path, "down")
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    cfg = _small(teacher=dict(backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model="teacher-x",
                              max_retries=1, retry_backoff_s=0.05, timeout_s=5, verify_synthetic=False))
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    assert jobs.run_worker(ws, conn, run_id) == jobs.EXIT_FAILED
    run = runs.get_run(conn, run_id)
    assert run["status"] == "failed" and "nothing was dropped" in run["error"] and "Resume" in run["error"]
    dropped = store.one(conn, "SELECT COUNT(*) AS n FROM selections WHERE run_id = ? AND kept = 0", (run_id,))
    pending = store.one(conn, "SELECT COUNT(*) AS n FROM selections WHERE run_id = ? AND kept IS NULL"
                              " AND kind IN ('head', 'tail_real')", (run_id,))
    assert dropped["n"] == 0 and pending["n"] > 0
    assert _paid(conn, run_id) == []  # the endpoint was down: no call succeeded, nothing was paid

    with FakeOpenAI(port=port) as server:  # the endpoint comes back at the same address
        assert jobs.run_worker(ws, conn, run_id) == 0, runs.get_run(conn, run_id)["error"]
        assert server.count(200) > 0
        auths = {h["auth"] for h in server.hits}
        assert auths == {f"Bearer {PLANTED_KEY}"}, auths  # the key really was used
    assert runs.get_run(conn, run_id)["status"] == "finished"
    assert all(r["n"] == 1 for r in _paid(conn, run_id))
    ok_calls = store.one(conn, "SELECT COUNT(*) AS n FROM ledger WHERE run_id = ? AND ok = 1 AND cached = 0",
                         (run_id,))["n"]
    assert ok_calls == len({r["key"] for r in _paid(conn, run_id)})

    # Grep everything the run wrote — database (with its WAL), run folder, logs, exports — for the key.
    from baldistill_core.reports.export import export_run

    for fmt in ("jsonl", "csv"):
        export_run(conn, run_id, fmt, ws.root / "exports" / fmt)
    conn.execute("PRAGMA wal_checkpoint(FULL)")
    hits = []
    for path in ws.root.rglob("*"):
        if path.is_file() and PLANTED_KEY.encode() in path.read_bytes():
            hits.append(str(path))
    assert hits == []
    assert PLANTED_KEY not in str(runs.get_run(conn, run_id))


def test_disk_full_while_saving_a_checkpoint_keeps_finished_stages(tmp_path, reference, monkeypatch):
    import peft

    ws, conn = _workspace(tmp_path, "full")
    run_id = runs.create_run(conn, ws.runs_dir, _small())
    real_save = peft.PeftModel.save_pretrained
    saves = []

    def failing_save(self, *a, **kw):
        saves.append(1)
        if len(saves) == 2:  # stage 1's adapter: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, *a, **kw)

    monkeypatch.setattr(peft.PeftModel, "save_pretrained", failing_save)
    assert jobs.run_worker(ws, conn, run_id) == jobs.EXIT_FAILED
    run = runs.get_run(conn, run_id)
    assert run["status"] == "failed" and "No space left" in run["error"] and "free disk space" in run["error"]
    stages = runs.stage_rows(conn, run_id)
    assert stages[0]["status"] == "done" and stages[1]["status"] == "training"
    assert os.path.exists(os.path.join(stages[0]["adapter_dir"], "adapter_model.safetensors"))
    leftovers = [p for p in (ws.runs_dir / run_id).rglob("*.tmp-*")]
    assert leftovers == []  # no half-written checkpoint left behind

    monkeypatch.setattr(peft.PeftModel, "save_pretrained", real_save)
    assert jobs.run_worker(ws, conn, run_id) == 0
    assert runs.get_run(conn, run_id)["status"] == "finished"
    assert training_content(conn, run_id) == reference[0]
    assert all(r["n"] == 1 for r in _paid(conn, run_id))


def test_long_reads_and_a_held_write_lock_never_reach_a_reviewer_as_locked(tmp_path):
    from baldistill_core.synthetic.synthesis import store_synthetic

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    ids = store_synthetic(conn, "tinymath", [dict(domain="num", input=f"What is {k} plus 1000?", answer=str(k + 1000),
                                                  rationale=f"The answer is: {k + 1000}") for k in range(3)])
    assert len(ids) == 3
    reader = store.connect(ws.db_path)
    writer = store.connect(ws.db_path)
    started = threading.Event()

    def long_read():
        reader.execute("BEGIN")
        list(reader.execute("SELECT * FROM examples"))  # a snapshot held open, as a slow page would
        started.set()
        time.sleep(1.5)
        reader.execute("COMMIT")

    t = threading.Thread(target=long_read)
    t.start()
    started.wait()
    t0 = time.time()
    review.approve(conn, ids[0], "ann")  # WAL: writers go on beside readers
    assert time.time() - t0 < 1.0
    t.join()

    def held_write():
        with store.transaction(writer):
            started.set()
            time.sleep(1.0)  # a worker's long write transaction

    started.clear()
    t = threading.Thread(target=held_write)
    t.start()
    started.wait()
    review.reject(conn, ids[1], "ann", "wrong")  # waits for the lock (busy timeout), then succeeds
    t.join()
    assert [review.get(conn, i)["status"] for i in ids] == ["approved", "rejected", "pending"]


@pytest.mark.parametrize("over, message", [
    (dict(budget=0), "greater than or equal to 1"),
    (dict(budget=3, stages=5), "stages K=5 is larger than the budget B=3"),
])
def test_impossible_budgets_are_refused_with_the_fix(over, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**over)


def test_budget_above_the_pool_for_a_method_that_cannot_synthesize(tmp_path):
    ws, conn = _workspace(tmp_path, "pool")
    run_id = runs.create_run(conn, ws.runs_dir, tiny_config(method="random_ft_cot", budget=500, stages=1))
    assert jobs.run_worker(ws, conn, run_id) == jobs.EXIT_FAILED
    err = runs.get_run(conn, run_id)["error"]
    assert "budget" in err.lower() and "lower" in err.lower()
