"""The stage loop end to end on a 2-layer random Llama, the recorded teacher and a tiny dataset."""

from __future__ import annotations

import hashlib
import json

import pytest

from baldistill_core import store
from baldistill_core.reports import export
from baldistill_core.runs import jobs
from baldistill_core.runs import records as runs
from baldistill_core.synthetic import review
from _run_helpers import import_tiny, tiny_config, training_content


def _metric_rows(conn, run_id, split):
    return {(m["stage"], m["domain"], m["metric"]): m["value"] for m in runs.metrics(conn, run_id, split)}


def _file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 3-stage BalDistill-A run that waits for review at stage 2, is approved, and resumes."""
    from baldistill_core.student.model import resolve_model
    from baldistill_core.workspace import open_workspace

    tmp = tmp_path_factory.mktemp("pipeline")
    ws, conn = open_workspace(tmp / "ws", bundled=False)
    import_tiny(conn, tmp / "data")
    base = resolve_model("tiny-llama-test")
    base_hash = _file_hash(base / "model.safetensors")
    run_id = runs.create_run(conn, ws.runs_dir, tiny_config(auto_approve=False))
    first = jobs.run_worker(ws, conn, run_id)
    state = dict(first_code=first, status_after_first=runs.get_run(conn, run_id)["status"],
                 stages_after_first=[s["status"] for s in runs.stage_rows(conn, run_id)])
    pending = [r["id"] for r in store.rows(conn, "SELECT id FROM synthetic WHERE run_id = ? AND status = 'pending'",
                                           (run_id,))]
    state["pending"] = pending
    for sid in pending:  # a reviewer approves the queued tail examples
        review.approve(conn, sid, reviewer="tester")
    state["second_code"] = jobs.run_worker(ws, conn, run_id)
    yield dict(ws=ws, conn=conn, run_id=run_id, base=base, base_hash=base_hash, tmp=tmp, **state)
    conn.close()


def test_run_waits_for_review_then_completes_with_metrics_per_domain_per_stage(finished_run):
    conn, run_id = finished_run["conn"], finished_run["run_id"]
    assert finished_run["first_code"] == 0 and finished_run["status_after_first"] == "awaiting_review"
    assert finished_run["stages_after_first"] == ["done", "done", "selecting"]
    assert len(finished_run["pending"]) == 1
    run = runs.get_run(conn, run_id)
    assert finished_run["second_code"] == 0 and run["status"] == "finished", runs.log_tail(conn, run_id)
    live = _metric_rows(conn, run_id, "live")
    for stage in (-1, 0, 1, 2):
        for dom in ("alg", "geo", "num", "_macro", "_micro", "_head", "_tail"):
            assert (stage, dom, "accuracy") in live, (stage, dom)
    test = _metric_rows(conn, run_id, "test")
    assert (2, "_macro", "accuracy") in test and (2, "num", "accuracy") in test
    loss_stages = {m["stage"] for m in runs.metrics(conn, run_id, "train") if m["metric"] == "loss"}
    assert loss_stages == {0, 1, 2}


def test_stages_spend_exactly_their_quota_and_the_tail_gets_synthetic_data(finished_run):
    conn, run_id = finished_run["conn"], finished_run["run_id"]
    st = runs.stage_rows(conn, run_id)
    assert [sum(s["quota"].values()) for s in st] == [5, 5, 5]
    assert [sum(s["picked"].values()) for s in st] == [5, 5, 5]
    assert st[2]["plan"]["num"]["role"] == "tail" and st[2]["picked"].get("synthetic") == 1
    assert all(s["plan"]["alg"]["role"] == "head" for s in st)
    sels = store.rows(conn, "SELECT * FROM selections WHERE run_id = ?", (run_id,))
    real = [s["example_id"] for s in sels if s["kind"] in ("head", "tail_real")]
    assert len(real) == len(set(real)) and "alg-13" not in real  # picks leave the pool; no recording, no pick
    assert any(s["ifd"] is not None for s in sels if s["stage"] > 0 and s["kind"] == "head")
    for s in sels:
        assert s["kept"] in (0, 1)
        if s["kept"] == 0:
            assert s["drop_reason"] and s["example_id"] == "alg-01"
    # Every rationale call was made once for the run (none repeated by the resume).
    paid = store.rows(conn, "SELECT key, COUNT(*) AS n FROM ledger WHERE run_id = ? AND cached = 0 GROUP BY key",
                      (run_id,))
    assert paid and all(r["n"] == 1 for r in paid)


def test_lora_weights_change_and_base_weights_do_not(finished_run):
    import torch

    from baldistill_core.student.model import load_model

    conn, run_id, base = finished_run["conn"], finished_run["run_id"], finished_run["base"]
    assert _file_hash(base / "model.safetensors") == finished_run["base_hash"]
    plain, _ = load_model(base)
    adapter = runs.stage_rows(conn, run_id)[-1]["adapter_dir"]
    tuned, _ = load_model(base, adapter_dir=adapter)
    base_sd = plain.state_dict()
    lora_b = {k: v for k, v in tuned.state_dict().items() if "lora_B" in k}
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b.values())  # LoRA B starts at zero
    for k, v in tuned.state_dict().items():
        if "base_layer" in k:
            orig = k.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(v, base_sd[orig]), k


def test_exports(finished_run):
    conn, run_id, tmp = finished_run["conn"], finished_run["run_id"], finished_run["tmp"]
    out = export.export_run(conn, run_id, "jsonl", tmp / "ex" / "train.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == len(training_content(conn, run_id)) > 0
    assert [m["role"] for m in lines[0]["messages"]] == ["user", "assistant"]
    assert "The answer is:" in lines[0]["messages"][1]["content"]
    from datasets import load_from_disk

    ds = load_from_disk(str(export.export_run(conn, run_id, "datasets", tmp / "ex" / "ds")))
    assert len(ds) == len(lines) and "messages" in ds.column_names
    csv_text = export.export_run(conn, run_id, "csv", tmp / "ex" / "m.csv").read_text()
    assert csv_text.startswith("stage,step,split,domain,metric,value") and ",live,_macro,accuracy," in csv_text
    ad = export.export_run(conn, run_id, "adapter", tmp / "ex" / "adapter")
    assert (ad / "adapter_config.json").exists()
    merged = export.export_run(conn, run_id, "merged", tmp / "ex" / "merged")
    from baldistill_core.student.model import load_model

    m, _ = load_model(merged)
    b, _ = load_model(finished_run["base"])
    name = next(k for k in b.state_dict() if k.endswith("q_proj.weight"))
    assert not m.state_dict()[name].equal(b.state_dict()[name])


def test_zero_shot_and_answer_only_methods_and_the_budget_error(finished_run):
    ws, conn = finished_run["ws"], finished_run["conn"]
    zs = runs.create_run(conn, ws.runs_dir, tiny_config(method="zero_shot_cot"))
    assert jobs.run_worker(ws, conn, zs) == 0 and runs.get_run(conn, zs)["status"] == "finished"
    assert not store.rows(conn, "SELECT 1 FROM selections WHERE run_id = ?", (zs,))
    assert (0, "_macro", "accuracy") in _metric_rows(conn, zs, "test")

    rf = runs.create_run(conn, ws.runs_dir, tiny_config(method="random_ft", budget=9))
    assert jobs.run_worker(ws, conn, rf) == 0, runs.log_tail(conn, rf)
    assert [s["stage"] for s in runs.stage_rows(conn, rf)] == [0]  # one-stage baseline
    assert not store.rows(conn, "SELECT 1 FROM ledger WHERE run_id = ?", (rf,))  # no teacher call
    rows = export.distilled_rows(conn, rf)
    assert len(rows) == 9 and all(r["messages"][1]["content"].startswith("The answer is:") for r in rows)

    big = runs.create_run(conn, ws.runs_dir, tiny_config(method="random_ft_cot", budget=40))
    assert jobs.run_worker(ws, conn, big) == 1
    run = runs.get_run(conn, big)
    assert run["status"] == "failed" and "larger than the pool" in run["error"]


def test_multi_gpu_stage_training_goes_through_accelerate_launch(tmp_path):
    from baldistill_core.student import launch as train_stage
    from baldistill_core.config import StudentConfig
    from baldistill_core.student.model import resolve_model

    cfg = StudentConfig(model="tiny-llama-test", preset="test-tiny", accelerate_num_processes=2)
    cmd = train_stage.launch_command(cfg, "/base", tmp_path / "ex.jsonl", tmp_path / "out", seed=3)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[cmd.index("-m", 3):][:2] == ["-m", "baldistill_core.student.launch"]
    assert StudentConfig.model_validate_json(cmd[cmd.index("--config") + 1]) == cfg
    # The child entry point itself (what each accelerate process runs), here in one CPU process.
    ex = tmp_path / "ex.jsonl"
    ex.write_text(json.dumps({"prompt": "Add 1 and 2.\n", "completion": "The answer is: 3"}) + "\n")
    one = StudentConfig(model="tiny-llama-test", preset="test-tiny")
    assert train_stage.main(["--base", str(resolve_model("tiny-llama-test")), "--examples", str(ex),
                             "--config", one.model_dump_json(), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "train_result.json").read_text())["steps"] == 1


def test_cli_show_export_and_preview_match_the_run(finished_run, capsys):
    from baldistill_core.cli import main

    ws, conn, run_id, tmp = finished_run["ws"], finished_run["conn"], finished_run["run_id"], finished_run["tmp"]
    root = str(ws.root)
    assert main(["runs", "list", "-w", root]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["runs", "show", run_id, "-w", root]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "stage 2: done" in out and "test stage 2" in out
    assert main(["export", run_id, "--format", "jsonl", "-w", root, "-o", str(tmp / "cli.jsonl")]) == 0
    assert (tmp / "cli.jsonl").read_text().count("\n") == len(training_content(conn, run_id))
    cfg_file = tmp / "cfg.yaml"
    cfg_file.write_text(runs.run_config(conn, run_id).to_yaml())
    # The preview of stage 1 with the run's stage-0 student picks exactly what the run picked.
    assert main(["preview", str(cfg_file), "--stage", "1", "--run-id", run_id, "-w", root]) == 0
    out = capsys.readouterr().out
    assert "highest IFD first" in out and "runners-up" in out
    picked = {r["example_id"] for r in store.rows(
        conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage = 1 AND kind = 'head'", (run_id,))}
    assert picked and all(x in out for x in picked)
    assert main(["runs", "cancel", run_id, "-w", root]) == 0
    assert runs.get_run(conn, run_id)["status"] == "finished"


def test_evaluations_keep_every_item_and_compare_with_itself_is_zero(finished_run, capsys):
    from baldistill_core.cli import main
    from baldistill_core.runs import eval_items

    ws, conn, run_id = finished_run["ws"], finished_run["conn"], finished_run["run_id"]
    preds = [json.loads(x) for x in (ws.runs_dir / run_id / "final_predictions.jsonl").read_text().splitlines()]
    kept = eval_items.read(conn, run_id, 2, "test")
    assert [(r["id"], r["correct"]) for r in kept] == sorted((p["id"], p["correct"]) for p in preds)
    assert len(kept) == 9    # 3 test items in each of the 3 domains
    assert len(eval_items.read(conn, run_id, -1, "live")) == 6     # the base student's live point, 2 per domain
    assert main(["runs", "compare", run_id, run_id, "-w", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "on 9 shared items" in out and "within noise on small-domain macro: +0.0 points [+0.0, +0.0]" in out
