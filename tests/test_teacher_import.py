"""Bring your own teacher outputs: rationales and synthetic examples imported from files (real SQLite)."""

from __future__ import annotations

import json

import pytest

from baldistill_core import store
from baldistill_core.cli import main as cli_main
from baldistill_core.config import DatasetSpec, TeacherConfig
from baldistill_core.data.loading import dataset_spec, import_dataset
from baldistill_core.errors import DataError
from baldistill_core.teacher import ledger
from baldistill_core.teacher.client import build_teacher
from baldistill_core.teacher.imported import imported_rationales
from baldistill_core.teacher.imports import RationaleFields, import_teacher_outputs, provenance
from baldistill_core.workspace import open_workspace

LABELS = ["acq", "earn", "tin"]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


def _story(lab: str, k: int) -> str:
    w = " ".join(WORDS[(k + j) % len(WORDS)] for j in range(6))
    return f"Report {k} on {lab}: the board said {w} figures rose {k * 7} percent in quarter {k % 4}."


@pytest.fixture()
def ws(tmp_path):
    _, conn = open_workspace(tmp_path / "ws", bundled=False)
    train, test = [], []
    for lab in LABELS:
        for k in range(4):
            train.append({"id": f"{lab}-{k}", "domain": lab, "answer": lab, "input": _story(lab, k)})
        test.append({"id": f"t-{lab}", "domain": lab, "answer": lab, "input": _story(lab, 50)})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    import_dataset(conn, DatasetSpec(name="news", train_path=str(tmp_path / "train.jsonl"),
                                     test_path=str(tmp_path / "test.jsonl"), task_type="classification"))
    yield conn, tmp_path
    conn.close()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rationales(tmp, rows=None, name="rats.jsonl"):
    rows = rows if rows is not None else [
        {"id": f"{lab}-{k}", "rationale": f"It is about {lab}. The answer is: {lab}", "model": "gpt-x"}
        for lab in LABELS for k in range(4)]
    return _jsonl(tmp / name, rows)


def _synthetic(tmp, rows=None, name="syn.jsonl"):
    rows = rows if rows is not None else [
        {"domain": "tin", "input": f"Smelter news {k}: tin stocks at the exchange moved {k} lots in the week {k}.",
         "answer": "tin", "rationale": "Tin stocks. The answer is: tin"} for k in range(3)]
    return _jsonl(tmp / name, rows)


def _table(conn, sql, params=()):
    return store.rows(conn, sql, params)


def test_rationales_become_the_recorded_teacher_with_flag_and_provenance(ws):
    conn, tmp = ws
    rows = [{"id": f"{lab}-{k}", "rationale": f"It is about {lab}. The answer is: {lab}"}
            for lab in LABELS for k in range(4)]
    rows[1]["rationale"] = "Clearly tin. The answer is: tin"  # acq-1: disagrees with gold
    rep = import_teacher_outputs(conn, "news", rationales=_rationales(tmp, rows), teacher_model="gpt-x")
    assert (rep.rationales, rep.rationales_flagged, rep.rationales_unchanged) == (12, 1, False)
    got, digest = imported_rationales(conn, "news")
    assert len(got) == 12 and len(digest) == 64
    prov = provenance(conn, "news", example_id="acq-1")
    assert prov["teacher_model"] == "gpt-x" and prov["source_file"] == "rats.jsonl" and prov["agrees"] == 0
    assert prov["file_hash"] == digest and prov["at"] > 0

    t = build_teacher(TeacherConfig(backend="recorded"), conn, spec=dataset_spec(conn, "news"), run_id="r1")
    anns = {a.id: a for a in t.annotate(store.examples(conn, "news"))}
    assert all(anns[f"{lab}-{k}"].kept for lab in LABELS for k in range(4) if (lab, k) != ("acq", 1))
    assert not anns["acq-1"].kept and anns["acq-1"].reason == "answer mismatch"  # same rule as run time
    assert anns["earn-2"].rationale == "It is about earn. The answer is: earn"
    s = ledger.summary(conn, "r1")
    assert s["calls"] == 12 and s["cost_usd"] == 0


def test_same_file_twice_changes_nothing_and_a_newer_file_replaces_it(ws):
    conn, tmp = ws
    f = _rationales(tmp)
    import_teacher_outputs(conn, "news", rationales=f)
    before = _table(conn, "SELECT * FROM teacher_imports")
    rep = import_teacher_outputs(conn, "news", rationales=f)
    assert rep.rationales_unchanged and _table(conn, "SELECT * FROM teacher_imports") == before
    model_a = build_teacher(TeacherConfig(), conn, spec=dataset_spec(conn, "news")).backend.model

    rows = [{"id": "acq-0", "rationale": "Take-over. The answer is: acq"}]
    rep = import_teacher_outputs(conn, "news", rationales=_rationales(tmp, rows, "rats2.jsonl"))
    assert not rep.rationales_unchanged and rep.rationales == 1
    assert imported_rationales(conn, "news")[0] == {"acq-0": "Take-over. The answer is: acq"}
    model_b = build_teacher(TeacherConfig(), conn, spec=dataset_spec(conn, "news")).backend.model
    assert model_a != model_b  # a newer file never replays the cached replies of the older one
    assert [r["current"] for r in _table(conn, "SELECT current FROM teacher_imports ORDER BY id")] == [0, 1]


@pytest.mark.parametrize("rows,expect", [
    ([{"id": "nope-1", "rationale": "x. The answer is: acq"}], r"line 1: unknown id 'nope-1': no training example"),
    ([{"id": "t-acq", "rationale": "x. The answer is: acq"}], r"line 1: unknown id 't-acq': it is a test example"),
    ([{"id": "acq-0", "rationale": "  "}], r"line 1: the rationale of 'acq-0' is empty"),
    ([{"id": "acq-0", "rationale": "a. The answer is: acq"}, {"id": "acq-0", "rationale": "b. The answer is: acq"}],
     r"line 2: id 'acq-0' repeats line 1"),
    ([{"example": "acq-0", "rationale": "a"}], r"id column 'id' not found; columns are: example, rationale"),
])
def test_bad_rationales_name_the_line_and_write_nothing(ws, rows, expect):
    conn, tmp = ws
    with pytest.raises(DataError, match=expect):
        import_teacher_outputs(conn, "news", rationales=_rationales(tmp, rows), synthetic=_synthetic(tmp))
    assert not _table(conn, "SELECT 1 FROM teacher_imports") and not _table(conn, "SELECT 1 FROM teacher_rationales")
    assert not _table(conn, "SELECT 1 FROM synthetic")  # the good synthetic file was not half-imported


def _syn_row(**kw):
    row = {"domain": "tin", "input": "Smelter news: tin stocks at the exchange moved ten lots in the week.",
           "answer": "tin", "rationale": "Tin. The answer is: tin"}
    return {**row, **kw}


@pytest.mark.parametrize("rows,expect", [
    ([_syn_row(domain="gold")], r"line 1: unknown domain 'gold'; use one of the dataset's domains \(acq, earn, tin\)"),
    ([_syn_row(answer="copper")], r"line 1: answer 'copper' is not in the label set"),
    ([_syn_row(rationale="")], r"line 1: the rationale is empty"),
    ([_syn_row(), _syn_row(input="smelter NEWS: tin stocks at the exchange moved ten lots in the week")],
     r"line 2: the input repeats line 1"),
    ([_syn_row(input=_story("tin", 50))], r"line 1: the input is a copy of test example 't-tin'.*decontamination"),
    ([_syn_row(input=_story("tin", 50) + " Shares fell.")],
     r"line 1: the input is a near-duplicate of test example 't-tin' \(Jaccard 0\.\d\d\); refused .*decontamination"),
])
def test_bad_synthetic_rows_are_refused_with_nothing_written(ws, rows, expect):
    conn, tmp = ws
    with pytest.raises(DataError, match=expect):
        import_teacher_outputs(conn, "news", rationales=_rationales(tmp), synthetic=_synthetic(tmp, rows))
    assert not _table(conn, "SELECT 1 FROM synthetic") and not _table(conn, "SELECT 1 FROM teacher_rationales")
    assert not _table(conn, "SELECT 1 FROM teacher_imports")


def test_synthetic_enter_the_queue_pending_flagged_and_reviews_survive_a_newer_file(ws):
    from baldistill_core.synthetic import review

    conn, tmp = ws
    rows = [_syn_row(input=f"Smelter news {k}: tin stocks at the exchange moved {k} lots in week {k}.")
            for k in range(3)]
    rows.append(_syn_row(input=_story("tin", 2) + " Extra.", model="claude-y"))  # near a train input: flagged
    rows.append(_syn_row(input="A tin mine in Bolivia reopened after the strike ended on Monday.",
                         rationale="Mining news. The answer is: earn"))       # rationale disagrees: flagged
    rep = import_teacher_outputs(conn, "news", synthetic=_synthetic(tmp, rows), teacher_model="gpt-x")
    assert (rep.synthetic_new, rep.synthetic_near_train, rep.synthetic_flagged) == (5, 1, 1)
    syn = {r["input"]: r for r in _table(conn, "SELECT * FROM synthetic")}
    assert {r["status"] for r in syn.values()} == {"pending"} and {r["source"] for r in syn.values()} == {"imported"}
    near = syn[rows[3]["input"]]
    assert near["duplicate_of"] == "tin-2"
    assert syn[rows[4]["input"]]["verified"] == 0 and "not the answer 'tin'" in syn[rows[4]["input"]]["reason"]
    p = provenance(conn, "news", synthetic_id=near["id"])
    assert p["teacher_model"] == "claude-y" and p["source_file"] == "syn.jsonl" and len(p["file_hash"]) == 64
    assert provenance(conn, "news", synthetic_id=syn[rows[0]["input"]]["id"])["teacher_model"] == "gpt-x"

    f = tmp / "syn.jsonl"
    assert import_teacher_outputs(conn, "news", synthetic=f, teacher_model="gpt-x").synthetic_unchanged
    review.approve(conn, syn[rows[0]["input"]]["id"], reviewer="ann")
    review.reject(conn, syn[rows[1]["input"]]["id"], reviewer="ann", reason="dull")
    # A newer file drops rows 1 and 2, keeps row 0, changes row 3's rationale and adds one.
    newer = [rows[0], {**rows[3], "rationale": "Metal. The answer is: tin"}, rows[4],
             _syn_row(input="Tin prices in Penang reached a record on strong demand from solder makers.")]
    rep = import_teacher_outputs(conn, "news", synthetic=_synthetic(tmp, newer, "syn2.jsonl"), teacher_model="gpt-x")
    assert (rep.synthetic_new, rep.synthetic_updated, rep.synthetic_kept_reviewed, rep.synthetic_removed) == (1, 1, 1, 1)
    after = {r["input"]: r for r in _table(conn, "SELECT * FROM synthetic")}
    assert after[rows[0]["input"]]["status"] == "approved" and after[rows[0]["input"]]["reviewer"] == "ann"
    assert after[rows[1]["input"]]["status"] == "rejected"   # reviewed: kept although the new file drops it
    assert rows[2]["input"] not in after                     # pending and dropped: removed
    assert after[rows[3]["input"]]["rationale"] == "Metal. The answer is: tin"
    assert len(_table(conn, "SELECT 1 FROM reviews")) == 2


def test_batch_result_files_and_csv_with_a_field_mapping(ws):
    conn, tmp = ws
    lines = []
    for k, ex in enumerate(["acq-0", "earn-1"]):
        lab = ex.split("-")[0]
        body = {"id": f"c{k}", "object": "chat.completion", "model": "Qwen/Qwen2.5-72B",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"So {lab}. The answer is: {lab}"},
                             "finish_reason": "stop"}]}
        lines.append({"id": f"b{k}", "custom_id": f"rationale:{ex}:abc123", "response": {"status_code": 200,
                                                                                         "body": body}, "error": None})
    f = _jsonl(tmp / "vllm_out.jsonl", lines)
    rep = import_teacher_outputs(conn, "news", rationales=f)
    assert rep.rationales == 2
    assert provenance(conn, "news", example_id="earn-1")["teacher_model"] == "Qwen/Qwen2.5-72B"

    lines[1] = {"id": "b1", "custom_id": "rationale:earn-1:abc", "response": None,
                "error": {"code": "server_error", "message": "boom"}}
    with pytest.raises(DataError, match=r"line 2: the batch call 'rationale:earn-1:abc' failed \(boom\)"):
        import_teacher_outputs(conn, "news", rationales=_jsonl(tmp / "vllm_bad.jsonl", lines))

    (tmp / "r.csv").write_text('ex,why\nacq-2,"Deal, so acq. The answer is: acq"\n')
    rep = import_teacher_outputs(conn, "news", rationales=tmp / "r.csv",
                                 rationale_fields=RationaleFields(id="ex", rationale="why"))
    assert rep.rationales == 1 and imported_rationales(conn, "news")[0] == {"acq-2": "Deal, so acq. The answer is: acq"}


def test_cli_import_prints_what_happened_and_names_problems(ws, capsys):
    conn, tmp = ws
    wsdir = str(tmp / "ws")
    code = cli_main(["teacher", "import", "news", "-w", wsdir, "--rationales", str(_rationales(tmp)),
                     "--synthetic", str(_synthetic(tmp)), "--teacher-model", "gpt-x"])
    out = capsys.readouterr().out
    assert code == 0 and "rationales: imported — 12 for news, 0 flagged" in out
    assert "synthetic: 3 new pending review" in out
    bad = _jsonl(tmp / "bad.csv.jsonl", [{"d": "tin", "q": "x y z w", "a": "tin", "r": ""}])
    code = cli_main(["teacher", "import", "news", "-w", wsdir, "--synthetic", str(bad), "--synthetic-domain-field", "d",
                     "--synthetic-input-field", "q", "--synthetic-answer-field", "a", "--synthetic-rationale-field", "r"])
    err = capsys.readouterr().err
    assert code == 2 and "line 1: the rationale is empty" in err and "nothing was imported" in err


def test_a_run_replays_imported_rationales_with_no_paid_call(tmp_path):
    """The tiny math dataset without bundled recordings: its rationales come from an import."""
    from _run_helpers import tiny_config, write_dataset
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs
    from baldistill_core.selection import records as picks

    ws_, conn = open_workspace(tmp_path / "ws", bundled=False)
    spec = write_dataset(tmp_path / "data").model_copy(update={"recorded_rationales": None,
                                                              "recorded_synthetic": None})
    import_dataset(conn, spec)
    rats = [json.loads(x) for x in (tmp_path / "data" / "teacher_rationales.jsonl").read_text().splitlines()]
    rep = import_teacher_outputs(conn, "tinymath", rationales=_jsonl(tmp_path / "mine.jsonl", rats),
                                 teacher_model="gpt-4o")
    assert rep.rationales == 21 and rep.rationales_flagged == 1   # alg-01 ends at a wrong answer
    run_id = runs.create_run(conn, ws_.runs_dir, tiny_config(method="random_ft_cot", budget=8, stages=1))
    assert jobs.run_worker(ws_, conn, run_id) == 0, runs.log_tail(conn, run_id)
    s = ledger.summary(conn, run_id)
    assert s["calls"] >= 8 and s["cost_usd"] == 0
    assert not store.rows(conn, "SELECT 1 FROM ledger WHERE run_id = ? AND cost_usd > 0", (run_id,))
    by_id = {r["id"]: r["rationale"] for r in rats}
    trained = picks.training_rows(conn, run_id, "tinymath", 99)
    assert len(trained) >= 7 and all(r["rationale"] == by_id[r["example_id"]] for r in trained)
    assert "alg-13" not in {r["example_id"] for r in trained}  # no rationale imported: not in the recorded pool
    from baldistill_core.reports import export

    rows = export.distilled_rows(conn, run_id)
    digest = imported_rationales(conn, "tinymath")[1]
    assert rows and all(r["provenance"] == {"teacher_model": "gpt-4o", "backend": "import", "batch_id": None,
                                            "source_file": "mine.jsonl", "file_hash": digest} for r in rows)
    conn.close()
