"""AppTest pages for teacher outputs: provenance on the Review page, batch state on the Training page."""

from __future__ import annotations

import json
import sys

from streamlit.testing.v1 import AppTest

from conftest import REPO
from test_pages_dashboard import _ok, _run  # the shared AppTest helpers

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def test_review_page_shows_where_an_imported_example_came_from(page_env, tmp_path):
    from baldistill_core.teacher.imports import import_teacher_outputs
    from baldistill_core.workspace import open_workspace

    _, conn = open_workspace(page_env)
    f = tmp_path / "syn.jsonl"
    f.write_text(json.dumps({"domain": "Geometry", "input": "A square has side 7 cm. What is its area in cm^2?",
                             "answer": "49", "rationale": "Side squared: 7*7 = 49. The answer is: \\boxed{49}",
                             "model": "my-teacher-v2"}) + "\n")
    import_teacher_outputs(conn, "math_lt", synthetic=f)
    at = AppTest.from_file(str(REPO / "pages/review.py"), default_timeout=120)
    at.query_params["dataset"] = "math_lt"
    at.session_state["reviewer_name"] = "alice"
    at.session_state["nearest_by"] = "tfidf"
    at.run()
    _ok(at)
    caps = [t.value for t in at.text if t.value.startswith("Provenance:")]
    assert len(caps) == 1 and "teacher my-teacher-v2" in caps[0] and "via import" in caps[0]
    assert "file syn.jsonl (sha256 " in caps[0]


def test_training_page_shows_the_batch_state_and_counts(page_env):
    from baldistill_core import store
    from baldistill_core.config import RunConfig
    from baldistill_core.runs import records as runs
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(page_env)
    cfg = RunConfig(dataset="math_lt", name="b", method="baldistill_a", budget=14, stages=2,
                    teacher=dict(backend="openai", mode="batch", base_url="http://127.0.0.1:9/v1"))
    rid = runs.create_run(conn, ws.runs_dir, cfg)
    runs.set_status(conn, rid, "failed", error="stopped for the test")
    now = store.now()
    conn.execute("INSERT INTO teacher_batches(id, run_id, purpose, model, remote_id, status, n_lines, n_completed,"
                 " n_failed, submissions, created_at, updated_at) VALUES ('tb-x-1', ?, 'rationale', 'gpt-4o-mini',"
                 " 'batch_abc', 'in_progress', 12, 5, 1, 1, ?, ?)", (rid, now, now))
    at = _run("pages/training.py", dataset="math_lt", run=rid)
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[-1].value
    row = table.iloc[0].to_dict()
    assert row["batch"] == "batch_abc" and row["status"] == "in_progress"
    assert (row["lines"], row["completed"], row["failed"], row["submitted"]) == (12, 5, 1, 1)
    assert any(c.value.startswith("Teacher batches (1)") for c in at.caption)


def test_data_page_lists_the_imports_of_the_dataset(page_env, tmp_path):
    from baldistill_core.teacher.imports import import_teacher_outputs
    from baldistill_core.workspace import open_workspace

    _, conn = open_workspace(page_env)
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"id": "math-train-00001", "rationale": "So 3. The answer is: \\boxed{3}"}) + "\n")
    import_teacher_outputs(conn, "math_lt", rationales=f, teacher_model="gpt-4o")
    at = _run("pages/data.py", dataset="math_lt")
    _ok(at)
    table = next(d.value for d in at.dataframe if "sha256" in d.value.columns)
    row = table.iloc[0].to_dict()
    assert (row["kind"], row["file"], row["rows"], row["model"], row["in_use"]) == ("rationales", "r.jsonl", 1,
                                                                                    "gpt-4o", True)


def test_data_page_offers_the_teacher_outputs_import(page_env):
    at = _run("pages/data.py", dataset="r52")
    _ok(at)
    assert any(e.label.startswith("Bring your own teacher outputs") for e in at.expander)
    assert len(at.get("file_uploader")) >= 3  # the dataset upload's two, plus rationales and synthetic


def test_training_form_offers_batch_mode_for_the_openai_teacher(page_env):
    at = _run("pages/training.py", dataset="math_lt")
    _ok(at)
    at.selectbox(key="train_teacher").select("openai").run()
    at.text_input(key="train_url").input("http://127.0.0.1:9/v1").run()  # a local endpoint: no key needed
    at.selectbox(key="train_tmode").select("batch").run()
    _ok(at)
    code = at.code[0].value
    assert "backend: openai" in code and "mode: batch" in code
