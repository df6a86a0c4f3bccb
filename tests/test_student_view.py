"""One student view: the clipped prompt is the one the run trains on, scores, previews, evaluates and exports.

A run with ``student.max_input_tokens`` set clips every input. These tests run a real tiny run with a
clip short enough to cut every tinymath input and check that the Plan page's preview, ``evaluate_run``,
``export`` and the IFD cache all see exactly the run's clipped prompts.
"""

from __future__ import annotations

import json

import pytest

from baldistill_core import store
from baldistill_core.reports import export
from baldistill_core.runs import jobs, preview
from baldistill_core.runs import records as runs
from baldistill_core.runs.context import RunContext
from baldistill_core.runs.evaluation import evaluate_run
from baldistill_core.runs.scoring import checkpoint_id, stage_scorer
from baldistill_core.selection import records as picks
from baldistill_core.task.prompts import student_prompt
from baldistill_core.task.view import StudentView, prompt_hash
from baldistill_core.data.loading import import_dataset
from _run_helpers import tiny_config, write_dataset

CLIP = 8  # tokens; every input below is longer, so every input is cut
PREFIX = "Read the following problem about adding two whole numbers carefully before you answer it. "


@pytest.fixture(scope="module")
def clipped_run(tmp_path_factory):
    from baldistill_core.workspace import open_workspace

    tmp = tmp_path_factory.mktemp("view")
    ws, conn = open_workspace(tmp / "ws", bundled=False)
    spec = write_dataset(tmp / "data")
    for split in ("train", "test"):  # long inputs: a preamble before each problem
        path = tmp / "data" / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(dict(r, input=PREFIX + r["input"])) + "\n" for r in rows))
    import_dataset(conn, spec)
    cfg = tiny_config(stages=2, budget=10, student=dict(max_input_tokens=CLIP))
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    assert jobs.run_worker(ws, conn, run_id) == 0
    assert runs.get_run(conn, run_id)["status"] == "finished"
    ctx = RunContext.build(conn, cfg)
    yield dict(ws=ws, conn=conn, run_id=run_id, cfg=cfg, ctx=ctx, tmp=tmp)
    conn.close()


def _unclipped(ctx, e) -> str:
    return student_prompt(ctx.view.instruction, e["input"], ctx.spec.task_type)


def test_the_clip_cuts_every_input_of_the_fixture(clipped_run):
    ctx = clipped_run["ctx"]
    train = store.examples(clipped_run["conn"], "tinymath", "train")
    assert all(ctx.view.prompt(e) != _unclipped(ctx, e) for e in train)
    assert all(ctx.view.clip(e["input"]) and e["input"].startswith(ctx.view.clip(e["input"])) for e in train)


def test_preview_of_a_stage_equals_what_the_run_then_selected(clipped_run):
    conn, run_id, cfg = clipped_run["conn"], clipped_run["run_id"], clipped_run["cfg"]
    saved = {(r["example_id"], r["kind"]): r["ifd"] for r in store.rows(
        conn, "SELECT example_id, kind, ifd FROM selections WHERE run_id = ? AND stage = ?", (run_id, 0))}
    pv0 = preview.preview_stage(conn, cfg, 0)  # stage 0: random, no student, no run needed
    assert {(p.example_id, p.kind) for p in pv0.picks} == set(saved)

    # Stage 1: the run ranked head candidates with stage 0's student. The cached scores are keyed by
    # the run's prompts; keep them aside, score afresh through the preview, and both must agree.
    ckpt = checkpoint_id(run_id, 0)
    keys = {r["example_key"] for r in store.rows(conn, "SELECT example_key FROM ifd_cache WHERE checkpoint = ?",
                                                 (ckpt,))}
    assert keys
    conn.execute("DELETE FROM ifd_cache WHERE checkpoint = ?", (ckpt,))
    pv = preview.preview_stage(conn, cfg, 1, run_id=run_id, scorer=stage_scorer(conn, run_id, 0))
    assert pv.by_ifd and pv.head_picks
    saved1 = {(r["example_id"], r["kind"]): r["ifd"] for r in store.rows(
        conn, "SELECT example_id, kind, ifd FROM selections WHERE run_id = ? AND stage = 1", (run_id,))}
    shown = {(p.example_id, p.kind): p.ifd for p in pv.picks if p.kind != "synthetic"}
    run_real = {k: v for k, v in saved1.items() if k[1] != "synthetic"}
    assert shown.keys() == run_real.keys()
    scored = sorted(k for k in shown if run_real[k] is not None)
    assert scored and all(shown[k] is None for k in shown if k not in scored)
    assert [shown[k] for k in scored] == pytest.approx([run_real[k] for k in scored], rel=1e-5)
    # and the cache holds scores under the clipped prompts' hashes only, the same keys as the run's
    ctx = clipped_run["ctx"]
    assert {r["example_key"] for r in store.rows(conn, "SELECT example_key FROM ifd_cache WHERE checkpoint = ?",
                                                 (ckpt,))} == keys
    pool = {e["id"]: e for e in store.examples(conn, "tinymath", "train")}
    for key in keys:
        ex_id, h = key.split("#")
        assert h == prompt_hash(ctx.view.prompt(pool[ex_id])) != prompt_hash(_unclipped(ctx, pool[ex_id]))


def test_export_ships_the_prompts_the_student_trained_on(clipped_run):
    conn, run_id, ctx = clipped_run["conn"], clipped_run["run_id"], clipped_run["ctx"]
    rows = export.distilled_rows(conn, run_id)
    trained = picks.training_rows(conn, run_id, "tinymath", 1)
    assert len(rows) == len(trained) > 0
    for row, t in zip(rows, trained):
        assert row["messages"][0]["content"] == ctx.view.prompt(t) != _unclipped(ctx, t)


def test_evaluate_run_sees_the_run_s_own_final_test_prompts(clipped_run):
    conn, run_id, ctx, ws = clipped_run["conn"], clipped_run["run_id"], clipped_run["ctx"], clipped_run["ws"]
    report = evaluate_run(conn, run_id=run_id)
    final = [json.loads(line) for line in
             (runs.get_run(conn, run_id)["folder"] and (ws.runs_dir / run_id / "final_predictions.jsonl"))
             .read_text().splitlines()]
    assert [p["prompt"] for p in report.predictions] == [p["prompt"] for p in final]
    tests = {e["id"]: e for e in store.examples(conn, "tinymath", "test")}
    assert all(p["prompt"] == ctx.view.prompt(tests[p["id"]]) != _unclipped(ctx, tests[p["id"]])
               for p in report.predictions)
    assert [p["output"] for p in report.predictions] == [p["output"] for p in final]  # same student, same inputs


def test_the_ifd_cache_never_reuses_a_score_for_another_prompt(clipped_run):
    from baldistill_core.student import ifd
    from baldistill_core.student.model import load_model, resolve_model

    conn = clipped_run["conn"]
    model, tok = load_model(resolve_model("tiny-llama-test"))
    a = ifd.score_cached(conn, "probe", model, tok, [dict(key="x", prompt="Add: 1 + 1?\n")], max_new_tokens=4)
    n = lambda: store.one(conn, "SELECT COUNT(*) AS n FROM ifd_cache WHERE checkpoint = 'probe'")["n"]  # noqa: E731
    assert n() == 1
    again = ifd.score_cached(conn, "probe", model, tok, [dict(key="x", prompt="Add: 1 + 1?\n")], max_new_tokens=4)
    assert n() == 1 and again["x"].score == a["x"].score
    ifd.score_cached(conn, "probe", model, tok, [dict(key="x", prompt="Add: 1 + 1? Think.\n")], max_new_tokens=4)
    assert n() == 2  # same example key, another prompt: scored afresh, stored beside the first


def test_a_view_without_a_tokenizer_refuses_to_clip_silently():
    from baldistill_core.errors import ConfigError

    v = StudentView("math", "Add.", max_input_tokens=2)
    assert v.prompt(dict(input="a")) == student_prompt("Add.", "a", "math")  # shorter than the clip: no tokenizer needed
    with pytest.raises(ConfigError, match="no tokenizer"):
        v.prompt(dict(input="a much longer input"))
