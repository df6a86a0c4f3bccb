"""Batch mode of the OpenAI-compatible teacher against the real local server's /v1/files and /v1/batches."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from baldistill_core import store
from baldistill_core.config import TeacherConfig
from baldistill_core.data.loading import dataset_spec
from baldistill_core.teacher import ledger
from baldistill_core.teacher.batch import batches_of_run
from baldistill_core.teacher.client import build_teacher
from baldistill_core.workspace import open_workspace
from _openai_server import FakeOpenAI
from _teacher_helpers import items, small_dataset


@pytest.fixture()
def ws(tmp_path):
    _, conn = open_workspace(tmp_path / "ws", bundled=False)
    small_dataset(conn, tmp_path)
    yield conn
    conn.close()


@pytest.fixture()
def srv():
    with FakeOpenAI() as s:
        yield s


def teacher(conn, srv, run_id, **kw):
    cfg = TeacherConfig(backend="openai", base_url=srv.base_url, mode="batch", batch_poll_s=0.02, max_retries=0,
                        **kw)
    return build_teacher(cfg, conn, spec=dataset_spec(conn, "mini"), run_id=run_id)


def _lines(conn, run_id):
    (b,) = batches_of_run(conn, run_id)
    return b, {r["custom_id"]: r for r in store.rows(conn, "SELECT * FROM teacher_batch_lines WHERE batch_id = ?",
                                                      (b["id"],))}


def test_batch_success_at_half_price_with_a_vllm_compatible_file_the_importer_reads(ws, srv, tmp_path):
    from baldistill_core.teacher.imported import imported_rationales
    from baldistill_core.teacher.imports import import_teacher_outputs

    conn = ws
    its = items(conn, "mini", limit=8)
    anns = teacher(conn, srv, "b1").annotate(its)
    assert all(a.kept for a in anns) and srv.count() == 0  # no single chat call at all
    assert srv.batch_creations == 1
    b, lines = _lines(conn, "b1")
    assert (b["status"], b["n_lines"], b["n_completed"], b["n_failed"], b["submissions"]) == ("completed", 8, 8, 0, 1)
    assert {r["status"] for r in lines.values()} == {"ok"}
    (req,) = [f for f in srv.files.values() if f["purpose"] == "batch"]
    rows = [json.loads(x) for x in req["data"].decode().splitlines()]
    assert all(r["method"] == "POST" and r["url"] == "/v1/chat/completions" and r["body"]["model"] == "gpt-4o-mini"
               and r["body"]["messages"] and r["custom_id"].startswith("rationale:") for r in rows)
    assert {r["custom_id"].split(":")[1] for r in rows} == {it["id"] for it in its}

    # The same calls one by one, in another run: the ledger prices the batch at half.
    batch_cost = ledger.summary(conn, "b1")["cost_usd"]
    build_teacher(TeacherConfig(backend="openai", base_url=srv.base_url), conn, spec=dataset_spec(conn, "mini"),
                  run_id="single").annotate([{**it, "input": it["input"] + " again"} for it in its])
    single_cost = ledger.summary(conn, "single")["cost_usd"]
    assert batch_cost > 0 and 0.45 <= batch_cost / single_cost <= 0.55

    # Asking again is served from the cache: no second batch.
    again = teacher(conn, srv, "b1").annotate(its)
    assert all(a.cached for a in again) and srv.batch_creations == 1

    # The endpoint's result file is importable as the dataset's recorded teacher.
    out = next(f for f in srv.files.values() if f["purpose"] == "batch_output")
    (tmp_path / "out.jsonl").write_bytes(out["data"])
    rep = import_teacher_outputs(conn, "mini", rationales=tmp_path / "out.jsonl")
    assert rep.rationales == 8 and set(imported_rationales(conn, "mini")[0]) == {it["id"] for it in its}


def test_partial_failure_retries_only_the_failed_lines_singly(ws, srv):
    conn = ws
    its = items(conn, "mini", marker={2: "[[batchfail]]", 5: "[[batchfail]]"}, limit=8)
    anns = teacher(conn, srv, "b2").annotate(its)
    assert all(a.kept for a in anns)
    assert srv.count() == 2 and srv.batch_creations == 1  # the two failed lines, one single call each
    b, lines = _lines(conn, "b2")
    assert (b["n_completed"], b["n_failed"]) == (6, 2)
    failed = [r for r in lines.values() if r["status"] == "failed"]
    assert len(failed) == 2 and all("batch worker lost" in r["error"] for r in failed)
    s = ledger.summary(conn, "b2")
    assert s["calls"] == 8 and s["failed_calls"] == 0


def test_an_expired_batch_keeps_what_finished_and_calls_the_rest_singly(ws, srv):
    conn = ws
    srv.batch_expire_after = 3
    anns = teacher(conn, srv, "b3").annotate(items(conn, "mini", limit=7))
    assert all(a.kept for a in anns) and srv.count() == 4 and srv.batch_creations == 1
    b, lines = _lines(conn, "b3")
    assert b["status"] == "expired" and (b["n_completed"], b["n_failed"]) == (3, 4)
    assert sum(r["error"] == "not run: the batch ended expired" for r in lines.values()) == 4


class Stop(Exception):
    pass


def test_cancel_while_waiting_cancels_the_remote_batch_and_a_resume_sends_the_rest(ws, srv):
    conn = ws
    srv.batch_gate.clear()  # the endpoint sits on the batch
    t = teacher(conn, srv, "b4")
    polls = []

    def check():
        polls.append(1)
        if len(polls) > 5:
            raise Stop()

    t.check_cancel = check
    its = items(conn, "mini", limit=6)
    with pytest.raises(Stop):
        t.annotate(its)
    (remote,) = srv.batches.values()
    assert remote["status"] in ("cancelling", "cancelled")
    assert batches_of_run(conn, "b4")[0]["status"] == "cancelling" and srv.count() == 0
    srv.batch_gate.set()
    anns = teacher(conn, srv, "b4").annotate(its)  # resumed: the cancelled batch ran nothing, a new one goes
    assert all(a.kept for a in anns) and srv.batch_creations == 2 and srv.count() == 0
    assert [b["status"] for b in batches_of_run(conn, "b4")] in (["completed", "cancelled"],)


def test_a_batch_over_the_cost_cap_is_not_submitted(ws, srv):
    from baldistill_core.teacher.client import BudgetExceeded

    t = teacher(ws, srv, "b5", cost_cap_usd=1e-9)
    with pytest.raises(BudgetExceeded, match="cost cap"):
        t.annotate(items(ws, "mini", limit=4))
    assert srv.batch_creations == 0 and not batches_of_run(ws, "b5")


def test_kill_9_while_polling_then_resume_polls_the_same_batch(tmp_path, srv):
    """A real worker process is killed while it polls; the resumed run never submits a second batch."""
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs

    ws_, conn, run_id, proc = _start_polling_run(tmp_path, srv)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert srv.batch_creations == 1
    srv.batch_gate.set()
    assert jobs.run_worker(ws_, conn, run_id) == 0, runs.log_tail(conn, run_id)
    assert runs.get_run(conn, run_id)["status"] == "finished"
    (b,) = batches_of_run(conn, run_id)
    assert srv.batch_creations == 1 and b["submissions"] == 1 and b["status"] == "completed"
    assert srv.count() == 0 and ledger.summary(conn, run_id)["calls"] == 8
    from baldistill_core.reports import export

    rows = export.distilled_rows(conn, run_id)
    assert len(rows) == 8 and all(r["provenance"] == {"teacher_model": "gpt-4o-mini", "backend": "openai",
                                                       "batch_id": b["remote_id"], "source_file": None,
                                                       "file_hash": None} for r in rows)
    conn.close()


def test_synthesis_in_batch_mode_records_the_batch_in_the_provenance(ws, srv):
    from baldistill_core.synthetic.synthesis import synthesize_for_gap
    from baldistill_core.teacher.imports import provenance

    conn = ws
    spec = dataset_spec(conn, "mini")
    shots = store.examples(conn, "mini", domain="tin")
    ids = synthesize_for_gap(teacher(conn, srv, "b6"), conn, spec, "tin", 4, run_id="b6", stage=0, shots=shots)
    assert len(ids) == 4 and srv.count() == 0
    by = {b["purpose"]: b for b in batches_of_run(conn, "b6")}
    assert set(by) == {"synthesis", "verification"} and by["verification"]["n_lines"] == 4
    p = provenance(conn, "mini", synthetic_id=ids[0])
    assert p["teacher_model"] == "gpt-4o-mini" and p["backend"] == "openai"
    assert p["batch_id"] == by["synthesis"]["remote_id"]


def test_offline_request_file_then_result_file_import_replays_with_no_server(ws, tmp_path, capsys):
    """The vLLM path: write the request file, run it elsewhere (here: the server's reply logic line by
    line, in the runner's output format), import the results, replay them with the recorded teacher."""
    from baldistill_core.cli import main as cli_main
    from baldistill_core.teacher.imports import import_teacher_outputs

    conn = ws
    req = tmp_path / "requests.jsonl"
    assert cli_main(["teacher", "batch-file", "mini", "-w", str(tmp_path / "ws"), "--out", str(req),
                     "--model", "Qwen/Qwen2.5-7B-Instruct"]) == 0
    assert "20 requests written" in capsys.readouterr().out
    runner = FakeOpenAI()  # not started: only its reply logic runs, as an offline runner would
    out = []
    for line in map(json.loads, req.read_text().splitlines()):
        assert set(line) == {"custom_id", "method", "url", "body"} and line["url"] == "/v1/chat/completions"
        status, body, _ = runner.answer(line["body"], line["body"]["messages"][-1]["content"], 1)
        out.append({"id": f"vllm-{len(out)}", "custom_id": line["custom_id"],
                    "response": {"status_code": status, "request_id": f"r{len(out)}", "body": body}, "error": None})
    runner.httpd.server_close()
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    rep = import_teacher_outputs(conn, "mini", rationales=tmp_path / "results.jsonl")
    assert rep.rationales == 20 and rep.rationales_flagged == 0
    t = build_teacher(TeacherConfig(backend="recorded"), conn, spec=dataset_spec(conn, "mini"), run_id="offline")
    assert all(a.kept for a in t.annotate(store.examples(conn, "mini")))
    assert ledger.summary(conn, "offline")["cost_usd"] == 0


def test_an_endpoint_without_a_batch_api_is_a_clear_error(ws, srv):
    from baldistill_core.teacher.client import TeacherConfigError

    srv.batch_api = False
    with pytest.raises(TeacherConfigError, match=r"has no files/batches API .*set teacher.mode: online"):
        teacher(ws, srv, "b7").annotate(items(ws, "mini", limit=3))
    assert srv.count() == 0  # no silent fall-back to full-price single calls


def test_cli_annotate_in_batch_mode(ws, srv, tmp_path, capsys):
    from baldistill_core.cli import main as cli_main

    code = cli_main(["teacher", "annotate", "mini", "-w", str(tmp_path / "ws"), "--backend", "openai", "--base-url",
                     srv.base_url, "--mode", "batch", "--batch-poll-s", "0.05", "--limit", "5", "--run-id", "cli-b"])
    assert code == 0 and "5 of 5 rationales kept" in capsys.readouterr().out
    assert srv.batch_creations == 1 and srv.count() == 0


def _start_polling_run(tmp_path, srv):
    from _run_helpers import import_tiny, tiny_config
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs

    ws_, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    cfg = tiny_config(method="random_ft_cot", budget=8, stages=1,
                      teacher=dict(backend="openai", base_url=srv.base_url, mode="batch", batch_poll_s=0.05))
    run_id = runs.create_run(conn, ws_.runs_dir, cfg)
    srv.batch_gate.clear()
    repo = str(Path(__file__).resolve().parent.parent)  # the worker imports this checkout's code
    proc = jobs.start_worker(ws_, run_id, env={"PYTHONPATH": repo})
    deadline = time.time() + 120
    while time.time() < deadline:
        got = batches_of_run(conn, run_id)
        if got and got[0]["remote_id"] and got[0]["status"] == "in_progress":
            return ws_, conn, run_id, proc
        assert proc.poll() is None, [p.read_text()[-2000:] for p in (tmp_path / "ws").glob("runs/*/worker.log")]
        time.sleep(0.1)
    pytest.fail("the worker never started polling a batch")


def test_cancelling_the_run_while_it_polls_cancels_the_batch(tmp_path, srv):
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs

    ws_, conn, run_id, proc = _start_polling_run(tmp_path, srv)
    assert jobs.cancel(conn, run_id, wait_s=30) == "cancelled"
    assert proc.wait(timeout=30) == 0
    (remote,) = srv.batches.values()
    deadline = time.time() + 10
    while remote["status"] != "cancelled" and time.time() < deadline:
        time.sleep(0.05)
    assert remote["status"] == "cancelled" and remote["request_counts"]["completed"] == 0
    assert batches_of_run(conn, run_id)[0]["status"] == "cancelling"
    assert runs.get_run(conn, run_id)["status"] == "cancelled" and srv.count() == 0
    conn.close()
