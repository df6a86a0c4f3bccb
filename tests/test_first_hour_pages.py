"""Issue 12's first-hour bugs on the pages (AppTest, no browser): a second Launch, uploads, import
confirmation, delete behind a confirmation, teacher choice and key field, /home, the Compare PNG."""

from __future__ import annotations

import json
import os
import sys

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from test_pages_dashboard import _at, _ok  # the shared AppTest helpers

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _rows(n, prefix="u", domains=("alpha", "beta", "gamma")):
    return [dict(id=f"{prefix}{i}", domain=domains[i % len(domains)], input=f"{prefix} question {i}?",
                 answer="AB"[i % 2]) for i in range(n)]


def _via_app(path: str, **query) -> AppTest:
    """The page inside app.py's navigation, as a browser sees it (one sidebar picker per run)."""
    at = _at("app.py", **query).run()
    return at.switch_page(path).run()


def _submit(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Validate and import").click().run()


def _conn(root):
    from baldistill_core.workspace import open_workspace

    return open_workspace(root)


# ---------------------------------------------------------------- 1. a second Launch shows the new run


def test_second_launch_shows_the_new_run(page_env):
    from baldistill_core.config import RunConfig
    from baldistill_core.runs import jobs, records as runs

    ws, conn = _conn(page_env)
    first = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="math_lt", name="first"))
    runs.set_status(conn, first, "finished")
    at = _at("pages/training.py", dataset="math_lt", run=first).run()
    _ok(at)
    assert at.selectbox(key="run_pick").value == first
    at.text_input(key="train_smodel").set_value("tiny-llama-test")
    at.selectbox(key="train_preset").set_value("test-tiny").run()  # the estimate gate sees the tiny student
    new: list[str] = []
    try:
        at.button(key="launch").click().run()
        new = [r["id"] for r in runs.list_runs(conn, "math_lt") if r["id"] != first]
        assert len(new) == 1
        _ok(at)
        assert at.selectbox(key="run_pick").value == new[0]
        assert at.query_params["run"] == new[0]
        assert any(new[0] in s.value for s in at.success)
        at.run()  # the next rerun (a fragment tick, a click) keeps showing the new run
        assert at.selectbox(key="run_pick").value == new[0]
        # the form still holds the same config: a second press needs an explicit "again"
        assert at.button(key="launch").disabled and not at.checkbox(key=f"launch_again_{new[0]}").value
        at.checkbox(key=f"launch_again_{new[0]}").check().run()
        assert not at.button(key="launch").disabled
        at.selectbox(key="run_pick").set_value(first).run()  # and the picker still switches runs
        assert at.query_params["run"] == first
    finally:
        for rid in new or [r["id"] for r in runs.list_runs(conn, "math_lt") if r["id"] != first]:
            jobs.cancel(conn, rid, wait_s=5, kill_after=True)


# ---------------------------------------------------------------- 2, 3. uploads


def test_upload_with_the_same_file_name_keeps_both_splits_and_shows_the_new_dataset(page_env):
    from baldistill_core import store

    at = _via_app("pages/data.py", dataset="math_lt")
    assert at.sidebar.selectbox(key="dataset_picker").value == "math_lt"
    at.file_uploader(key="upload_train").upload("data.jsonl", _jsonl(_rows(30)), "application/json")
    at.file_uploader(key="upload_test").upload("data.jsonl", _jsonl(_rows(6, prefix="t")), "application/json")
    at.run()
    at.text_input[0].set_value("mc_new")
    at = _submit(at)
    _ok(at)
    _, conn = _conn(page_env)
    d = store.get_dataset(conn, "mc_new")
    assert (d["n_train"], d["n_test"]) == (30, 6)
    assert {e["input"][:1] for e in store.examples(conn, "mc_new", "test")} == {"t"}
    # the page reran: it shows the new dataset, and the dataset the sidebar picker renders from is the new
    # one (AppTest runs a rerun of a switched-to page without app.py's sidebar, so that is what is checked)
    assert {m.label: m.value for m in at.metric}["Training examples"] == "30"
    assert at.session_state["dataset"] == "mc_new" and at.query_params["dataset"] == "mc_new"
    assert any("Imported mc_new" in s.value for s in at.success)


def test_upload_over_an_existing_name_asks_first(page_env):
    from baldistill_core import store

    at = _at("pages/data.py", dataset="math_lt").run()
    at.file_uploader(key="upload_train").upload("small.jsonl", _jsonl(_rows(20)), "application/json")
    at.run()
    at.text_input[0].set_value("math_lt")
    at = _submit(at)
    assert any("already exists" in e.value and "Replace the existing dataset" in e.value for e in at.error)
    _, conn = _conn(page_env)
    assert store.get_dataset(conn, "math_lt")["n_train"] == 4125
    at.checkbox(key="upload_replace").check()
    at = _submit(at)
    _ok(at)
    assert store.get_dataset(conn, "math_lt")["n_train"] == 20


def test_csv_without_a_domain_column_says_so(page_env):
    at = _at("pages/data.py", dataset="math_lt").run()
    at.file_uploader(key="upload_train").upload("plain.csv", b"input,answer\n" + b"".join(
        f"question {i},{'AB'[i % 2]}\n".encode() for i in range(12)), "text/csv")
    at.run()
    assert any("No column is called 'domain'" in w.value for w in at.warning)
    at = _submit(at)
    _ok(at)
    assert any("no domain column: all 12 examples are in one domain" in w.value for w in at.warning)


def test_binary_upload_is_not_a_text_file(page_env):
    at = _at("pages/data.py", dataset="math_lt").run()
    at.file_uploader(key="upload_train").upload("data.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png")
    at.run()
    assert any("not a text file" in e.value for e in at.error)
    assert not any("UTF-8" in e.value for e in at.error)


def test_dataset_delete_needs_the_confirmation(page_env, tmp_path):
    from baldistill_core import store
    from baldistill_core.config import DatasetSpec
    from baldistill_core.data.loading import import_dataset

    _, conn = _conn(page_env)
    p = tmp_path / "gone.jsonl"
    p.write_bytes(_jsonl(_rows(12)))
    import_dataset(conn, DatasetSpec(name="gone", train_path=str(p)))
    at = _via_app("pages/data.py", dataset="gone")
    assert at.button(key="ds_delete").disabled
    at.checkbox(key="ds_confirm_delete").check().run()
    at.button(key="ds_delete").click().run()
    _ok(at)
    assert store.get_dataset(conn, "gone") is None
    assert at.session_state["dataset"] != "gone"
    assert any("Deleted gone" in m.value for m in at.success)


# ---------------------------------------------------------------- 5, 6. teacher choice, key field


def test_training_refuses_a_recorded_teacher_without_recordings_and_offers_a_key_field(page_env, tmp_path,
                                                                                      monkeypatch):
    from baldistill_core.config import DatasetSpec
    from baldistill_core.data.loading import import_dataset

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _, conn = _conn(page_env)
    p = tmp_path / "up.jsonl"
    p.write_bytes(_jsonl(_rows(40)))
    q = tmp_path / "up-test.jsonl"  # a test split: without one a run cannot evaluate (the estimate says so)
    q.write_bytes(_jsonl(_rows(6)))
    import_dataset(conn, DatasetSpec(name="up", train_path=str(p), test_path=str(q), task_type="multiple_choice"))
    at = _at("pages/training.py", dataset="up").run()
    assert any("no recorded rationales for dataset 'up'" in e.value for e in at.error)
    assert at.button(key="launch").disabled
    at.selectbox(key="train_teacher").set_value("openai").run()
    key_box = at.text_input(key="train_apikey")
    assert key_box.proto.type == key_box.proto.PASSWORD
    assert any("type it in the 'API key' field" in e.value for e in at.error) and at.button(key="launch").disabled
    key_box.set_value("sk-test").run()
    _ok(at)
    assert not at.button(key="launch").disabled
    assert not any("sk-test" in c.value for c in at.code)  # never in the YAML or the CLI twin


def test_plan_has_the_run_teacher_choice(page_env, tmp_path):
    from baldistill_core.config import DatasetSpec
    from baldistill_core.data.loading import import_dataset

    _, conn = _conn(page_env)
    p = tmp_path / "up.jsonl"
    p.write_bytes(_jsonl(_rows(60)))
    q = tmp_path / "up-test.jsonl"  # a test split: without one a run cannot evaluate (the estimate says so)
    q.write_bytes(_jsonl(_rows(6)))
    import_dataset(conn, DatasetSpec(name="up", train_path=str(p), test_path=str(q), task_type="multiple_choice"))
    at = _at("pages/plan.py", dataset="up").run()
    heads = {m.label: m.value for m in at.metric}["Head domains"]
    assert any("no recorded rationales" in w.value for w in at.warning) and heads == "0"
    at.selectbox(key="plan_teacher").set_value("local").run()
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Head domains"] == "3"


# ---------------------------------------------------------------- 7. /home


def test_home_is_served_at_its_url_path(page_env):
    at = _at("app.py").run()
    _ok(at)
    served = {info.get("url_pathname") for info in at._registered_pages.values()}
    assert "home" in served  # a link to /home finds the Home page
    assert at.title[0].value == "BalDistill Studio"  # and "/" still opens Home


# ---------------------------------------------------------------- 8. Compare PNG


def test_compare_png_figure_has_coloured_legend_and_room_for_ticks():
    from studio_ui import run_views

    scores = [dict(name=n, method="baldistill_a", run_id=f"run-{n}", per_domain={"Algebra": a, "Geometry": b})
              for n, a, b in (("one", 0.6, 0.4), ("two", 0.5, 0.3))]
    fig = run_views.png_figure(run_views.grouped_bars(scores, "accuracy"))
    colours = [t.marker.color for t in fig.data]
    assert all(colours) and len(set(colours)) == 2
    assert fig.layout.template.layout.paper_bgcolor == "white"
    m = fig.layout.margin
    assert m.l >= 60 and m.t >= 60 and fig.layout.yaxis.automargin
    if not (os.environ.get("BROWSER_PATH") or os.path.exists("/usr/bin/chromium")):
        pytest.skip("no Chromium for kaleido: the rendered PNG is not checked here")
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(run_views.figure_png(run_views.grouped_bars(scores, "accuracy")))).convert("RGB")
    px = set(img.getdata())
    for c in colours:  # both bar colours are drawn (bars and legend swatches), not black
        rgb = tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in px


def test_failed_run_resumes_from_the_page_with_another_teacher(page_env, tmp_path):
    from baldistill_core.config import DatasetSpec, RunConfig
    from baldistill_core.data.loading import import_dataset
    from baldistill_core.runs import jobs, records as runs

    ws, conn = _conn(page_env)
    p = tmp_path / "up.jsonl"
    p.write_bytes(_jsonl(_rows(40)))
    q = tmp_path / "up-test.jsonl"  # a test split: without one a run cannot evaluate (the estimate says so)
    q.write_bytes(_jsonl(_rows(6)))
    import_dataset(conn, DatasetSpec(name="up", train_path=str(p), test_path=str(q), task_type="multiple_choice"))
    rid = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="up", budget=20, stages=2))
    runs.set_status(conn, rid, "failed", error="NoRecording: no recording")
    try:  # any worker a click starts is stopped at the end, whatever fails
        at = _at("pages/training.py", dataset="up", run=rid).run()
        at.button(key="resume_run").click().run()  # the same teacher: refused with the reason, nothing started
        assert any("no recorded rationales" in e.value for e in at.error)
        assert runs.get_run(conn, rid)["status"] == "failed"
        at.selectbox(key=f"rs_{rid}_teacher").set_value("openai").run()
        at.text_input(key=f"rs_{rid}_url").set_value("http://127.0.0.1:9/v1").run()
        at.button(key="resume_teacher").click().run()
        assert runs.run_config(conn, rid).teacher.backend == "openai"
        assert any("teacher changed from recorded to openai" in r["message"] for r in runs.log_tail(conn, rid))
    finally:
        jobs.cancel(conn, rid, wait_s=5, kill_after=True)
