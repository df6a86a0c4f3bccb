"""AppTest (no browser) for the dashboard pages: Plan, Review, Training, Compare, and Home's tour."""

from __future__ import annotations

import sys

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO

if str(REPO) not in sys.path:  # page scripts import studio_ui from the repo root, as app.py's folder
    sys.path.insert(0, str(REPO))


def _at(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(REPO / path), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def _run(path: str, **query) -> AppTest:
    return _at(path, **query).run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _conn(root):
    from baldistill_core.workspace import open_workspace

    return open_workspace(root)


def _texts(at: AppTest) -> str:
    return " ".join([i.value for i in at.info] + [c.value for c in at.caption] + [m.value for m in at.markdown]
                    + [w.value for w in at.warning])


def _fake_run(ws, conn, *, name: str, method: str, scores: dict[str, float], status: str = "finished",
              dataset: str = "math_lt", budget: int = 14) -> str:
    """A run row with stages and metrics written through the real run-record functions."""
    from baldistill_core.runs import records as runs
    from baldistill_core.config import RunConfig

    metric = "f1" if dataset == "r52" else "accuracy"
    cfg = RunConfig(dataset=dataset, name=name, method=method, budget=budget, stages=2)
    rid = runs.create_run(conn, ws.runs_dir, cfg)
    for st in (0, 1):
        runs.set_stage(conn, rid, st, "done", quota={"Algebra": 1})
        rows = [(d, metric, v * (0.5 + 0.5 * st)) for d, v in scores.items()]
        vals = [v for _, _, v in rows]
        rows += [("_macro", metric, sum(vals) / len(vals)), ("_micro", metric, vals[0]),
                 ("_head", metric, vals[0]), ("_tail", metric, vals[-1])]
        runs.write_metrics(conn, rid, st, "live", rows, step=st)
        runs.write_metrics(conn, rid, st, "train", [("_all", "loss", 2.0 - st)], step=st + 1)
    runs.log(conn, rid, "stage 1: done")
    runs.set_status(conn, rid, status)
    return rid


# ---------------------------------------------------------------- Home


def test_home_has_demo_tour(page_env):
    at = _run("pages/home.py")
    _ok(at)
    assert any(s.value == "Demo tour" for s in at.subheader)
    # the tour names its pages in the order a visitor walks them (a page run alone shows captions, not links)
    steps = [c.value for c in at.caption if c.value.endswith("(open it from the navigation)")]
    names = [v.split("·", 1)[1].split("(")[0].strip() for v in steps]
    assert names == ["Data", "Map", "Plan", "Review", "Training", "Compare"], steps


# ---------------------------------------------------------------- Plan


@pytest.mark.parametrize("dataset", ["math_lt", "r52"])
def test_plan_stage0_is_random_with_cli_twin(page_env, dataset):
    at = _run("pages/plan.py", dataset=dataset)
    _ok(at)
    assert "Stage 0: selection is random" in _texts(at)
    code = " ".join(c.value for c in at.code)
    assert "baldistill preview plan.yaml --stage 0" in code and f"dataset: {dataset}" in code
    # quota table + head picks: quotas of the stage sum to its budget
    table = at.dataframe[0].value
    assert table["quota"].sum() == int({m.label: m.value for m in at.metric}["Stage budget"])
    picks = at.dataframe[1].value  # head picks: exactly the head domains' real quota, ids unique
    assert len(picks) == int(table.loc[table["role"] == "head", "real"].sum()) > 0
    assert picks["id"].is_unique


def test_plan_later_stage_without_student_and_tail_gaps(page_env):
    at = _run("pages/plan.py", dataset="r52")
    at.number_input(key="plan_budget").set_value(2000).run()
    at.number_input(key="plan_stages").set_value(5).run()  # on CPU the form starts from the R52 demo's K=2
    at.selectbox(key="plan_stage").select(3).run()
    _ok(at)
    assert "No trained student chosen" in _texts(at)
    assert any(s.value.startswith("Tail gaps") for s in at.subheader)
    assert any("gap of" in t.value for t in at.text)  # r52's tiny domains cannot cover their quota
    assert "--stage 3" in at.code[0].value


def test_plan_invalid_config_is_an_error_not_a_crash(page_env):
    at = _run("pages/plan.py", dataset="math_lt")
    at.number_input(key="plan_budget").set_value(2).run()  # K (5, or 3 from math_lt's CPU demo) > B=2
    assert not at.exception
    assert any("lower K or raise the budget" in e.value for e in at.error)


# ---------------------------------------------------------------- Review


def _review_at(name: str | None = "alice", nearest_by: str = "tfidf", **q) -> AppTest:
    at = _at("pages/review.py", **{"dataset": "math_lt", **q})
    # None = a local user who cleared the name field (it defaults to the OS user)
    at.session_state["reviewer_name"] = name or ""
    at.session_state["nearest_by"] = nearest_by  # MiniLM only in the slow test below
    return at.run()


def test_review_empty_state_then_load_recorded(page_env):
    at = _review_at()
    _ok(at)
    assert "No synthetic examples for **math_lt** yet" in _texts(at)
    at.number_input(key="load_per_domain").set_value(2).run()
    at.button(key="load_recorded").click().run()
    _ok(at)
    ws, conn = _conn(page_env)
    from baldistill_core.synthetic import review

    prog = review.progress(conn, "math_lt")
    assert prog and all(v["pending"] == 2 for v in prog.values())  # 2 per domain with recorded examples
    n = sum(v["pending"] for v in prog.values())
    assert len([b for b in at.button if b.key and b.key.startswith("ap_")]) == min(n, 10)  # one page


def test_review_decisions_through_the_page(page_env):
    from baldistill_core.synthetic import review
    from baldistill_core.synthetic import synthesis
    from baldistill_core.data.loading import dataset_spec

    ws, conn = _conn(page_env)
    synthesis.import_recorded_synthetic(conn, dataset_spec(conn, "math_lt"), per_domain=2)
    at = _review_at()
    _ok(at)
    ids = [b.key[3:] for b in at.button if b.key and b.key.startswith("ap_")]
    a, b, c = ids[:3]
    at.button(key=f"ap_{a}").click().run()
    _ok(at)
    assert review.get(conn, a)["status"] == "approved" and review.get(conn, a)["reviewer"] == "alice"
    at.selectbox(key=f"reason_{b}").select("off-topic for the domain").run()
    at.button(key=f"rj_{b}").click().run()
    _ok(at)
    row = review.get(conn, b)
    assert row["status"] == "rejected" and row["reason"] == "off-topic for the domain"
    # edit in place keeps the original
    before = review.get(conn, c)
    ver = before["version"]
    at.text_input(key=f"ed_ans_{c}_{ver}").input("42").run()
    at.button(key=f"ed_{c}").click().run()
    _ok(at)
    row = review.get(conn, c)
    assert row["status"] == "edited" and row["answer"] == "42"
    assert row["original"]["answer"] == before["answer"]
    # undo my last decision (the edit) from the sidebar
    at.sidebar.button(key="undo_last").click().run()
    _ok(at)
    row = review.get(conn, c)
    assert row["status"] == "pending" and row["answer"] == before["answer"]
    # the approved one left the pending queue; switch the filter to see it
    at.selectbox(key="f_status").select("approved").run()
    assert [x.key for x in at.button if x.key and x.key.startswith("ap_")] == [f"ap_{a}"]
    assert [h["action"] for h in review.history(conn, a)] == ["approve"]


def test_review_needs_a_name_and_bulk_needs_confirm(page_env):
    from baldistill_core.synthetic import review
    from baldistill_core.synthetic import synthesis
    from baldistill_core.data.loading import dataset_spec

    ws, conn = _conn(page_env)
    synthesis.import_recorded_synthetic(conn, dataset_spec(conn, "math_lt"), per_domain=1)
    at = _review_at(name=None)
    assert any("Enter your name" in w.value for w in at.warning)
    first = next(b.key[3:] for b in at.button if b.key and b.key.startswith("ap_"))
    at.button(key=f"ap_{first}").click().run()
    assert any("reviewer name is needed" in e.value for e in at.error)
    assert review.get(conn, first)["status"] == "pending"
    # bulk approve of one domain after confirming
    at.session_state["reviewer_name"] = "bob"
    dom = at.selectbox(key="f_domain").options[1]
    other = at.selectbox(key="f_domain").options[2]
    at.selectbox(key="f_domain").select(dom).run()
    assert at.button(key="bulk_go").disabled
    at.checkbox(key="bulk_confirm_0").check().run()
    at.button(key="bulk_go").click().run()
    _ok(at)
    prog = review.progress(conn, "math_lt")
    assert prog[dom]["approved"] == 1 and prog[other]["pending"] == 1


def test_review_two_tabs_see_each_other_and_stale_decisions_are_refused(page_env):
    from baldistill_core.synthetic import review
    from baldistill_core.synthetic import synthesis
    from baldistill_core.data.loading import dataset_spec

    ws, conn = _conn(page_env)
    synthesis.import_recorded_synthetic(conn, dataset_spec(conn, "math_lt"), per_domain=1)
    tab1, tab2 = _review_at(name="alice"), _review_at(name="bob")
    sid = next(b.key[3:] for b in tab1.button if b.key and b.key.startswith("ap_"))
    tab1.button(key=f"ap_{sid}").click().run()
    _ok(tab1)
    # bob's tab still shows the old version of the example: his reject must not overwrite alice's approval
    tab2.selectbox(key=f"reason_{sid}").set_value("wrong answer")  # sent with the click, no rerun in between
    tab2.button(key=f"rj_{sid}").click().run()
    assert any("changed by alice" in e.value for e in tab2.error)
    assert review.get(conn, sid)["status"] == "approved"
    tab2.run()  # refresh: the decided example has left bob's pending queue too
    assert f"ap_{sid}" not in [b.key for b in tab2.button]


@pytest.mark.slow
def test_review_nearest_by_minilm_embedding_when_the_map_is_cached(page_env):
    from baldistill_core.synthetic import synthesis
    from baldistill_core.data.loading import dataset_spec

    ws, conn = _conn(page_env)
    synthesis.import_recorded_synthetic(conn, dataset_spec(conn, "math_lt"), per_domain=1)
    at = _review_at(nearest_by="embedding")
    _ok(at)
    caps = [c.value for c in at.caption]
    assert any("MiniLM embedding cosine" in c for c in caps)  # math_lt ships its map embeddings
    sims = [float(t.value.split(" · ")[0]) for t in at.text if " · answer " in t.value.split("\n")[0]]
    assert sims and all(-1.0 <= x <= 1.0001 for x in sims)
    at = _review_at(nearest_by="tfidf")
    _ok(at)
    assert any("TF-IDF cosine" in c.value for c in at.caption)


def test_review_renders_data_as_text_not_markdown(page_env):
    from baldistill_core.synthetic import synthesis

    ws, conn = _conn(page_env)
    synthesis.store_synthetic(conn, "math_lt", [dict(domain="Algebra", input="<b>**bold?**</b> $x$",
                                                     answer="1", rationale="<script>x</script>")], source="recorded")
    at = _review_at()
    _ok(at)
    texts = [t.value for t in at.text]
    assert "<b>**bold?**</b> $x$" in texts and "<script>x</script>" in texts
    assert not any("<script>" in m.value for m in at.markdown)


# ---------------------------------------------------------------- Training


def test_training_empty_shows_form_and_cli(page_env):
    at = _run("pages/training.py", dataset="math_lt")
    _ok(at)
    assert "No runs on **math_lt** yet" in _texts(at)
    code = at.code[0].value
    assert "baldistill run run.yaml --detach" in code and "dataset: math_lt" in code
    at.text_input(key="train_smodel").input("tiny-llama-test").run()
    at.selectbox(key="train_preset").select("test-tiny").run()
    at.checkbox(key="train_auto").check().run()
    at.number_input(key="train_stages").set_value(2).run()
    code = at.code[0].value
    for line in ("model: tiny-llama-test", "preset: test-tiny", "auto_approve: true", "stages: 2"):
        assert line in code


def test_training_unknown_run_id_is_a_message(page_env):
    at = _run("pages/training.py", dataset="math_lt", run="no-such-run")
    assert not at.exception
    assert any("no run with id 'no-such-run'" in e.value for e in at.error)


def test_training_shows_a_run_live(page_env):
    ws, conn = _conn(page_env)
    rid = _fake_run(ws, conn, name="a", method="baldistill_a", scores={"Algebra": 0.5, "Geometry": 0.2})
    at = _run("pages/training.py", dataset="math_lt", run=rid)
    _ok(at)
    assert ":green-badge[finished]" in " ".join(m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 2  # per-domain curves + loss
    assert at.button(key="cancel_run").disabled and at.button(key="resume_run").disabled
    assert "stage 1: done" in at.code[-1].value


def test_training_many_domains_draw_a_heatmap(page_env):
    ws, conn = _conn(page_env)
    from baldistill_core import store

    doms = list(store.domain_counts(conn, "r52"))[:20]
    rid = _fake_run(ws, conn, name="r", method="baldistill_a", scores={d: 0.3 for d in doms}, dataset="r52",
                    status="cancelled")
    at = _run("pages/training.py", dataset="r52", run=rid)
    _ok(at)
    import json

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["data"][0]["type"] == "heatmap"
    assert not at.button(key="resume_run").disabled


# ---------------------------------------------------------------- Compare


def test_compare_empty_state(page_env):
    at = _run("pages/compare.py", dataset="math_lt")
    _ok(at)
    assert "No evaluated runs on **math_lt** yet" in _texts(at)


def test_compare_two_runs_table_charts_csv(page_env):
    ws, conn = _conn(page_env)
    a = _fake_run(ws, conn, name="adaptive", method="baldistill_a", scores={"Algebra": 0.6, "Geometry": 0.4})
    b = _fake_run(ws, conn, name="random", method="random_ft_cot", scores={"Algebra": 0.7, "Geometry": 0.1})
    at = _run("pages/compare.py", dataset="math_lt")
    _ok(at)
    table = at.dataframe[0].value
    assert set(table["run_id"]) == {a, b}
    assert table.set_index("name").loc["random", "small domains"] == pytest.approx(0.1)  # the size group, renamed
    assert set(table["method"]) == {"BalDistill-A", "Random FT CoT"}  # labels, as on every page
    assert len(at.get("plotly_chart")) == 3
    from baldistill_core.reports import compare

    csv = compare.to_csv(compare.compare(conn, [a, b]))
    assert csv.splitlines()[0].endswith("domain:Algebra,domain:Geometry") and len(csv.splitlines()) == 3


# ---------------------------------------------------------------- Plan with a trained student


@pytest.fixture
def tiny_student_run(page_env):
    """A real one-stage run of the 2-layer test model (recorded teacher): its stage-0 student exists."""
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs
    from baldistill_core.config import RunConfig

    ws, conn = _conn(page_env)
    cfg = RunConfig(dataset="math_lt", name="tiny", budget=7, stages=1, auto_approve=True,
                    student=dict(model="tiny-llama-test", preset="test-tiny"),
                    eval=dict(live_per_domain=1, final_per_domain=1))
    rid = runs.create_run(conn, ws.runs_dir, cfg)
    assert jobs.run_worker(ws, conn, rid) == 0
    assert runs.get_run(conn, rid)["status"] == "finished", runs.log_tail(conn, rid)
    return rid


def test_plan_with_a_student_from_a_finished_run(page_env, tiny_student_run):
    rid = tiny_student_run
    at = _run("pages/plan.py", dataset="math_lt")
    at.selectbox(key="plan_student").select(f"{rid}:0").run()
    at.number_input(key="plan_ifdcap").set_value(3).run()
    _ok(at)
    assert f"--stage 1 --run-id {rid}" in at.code[0].value
    assert {m.label: m.value for m in at.metric}["Stage"] == "1"
    at.button(key="plan_score").click().run()
    _ok(at)
    picks = at.dataframe[1].value
    assert picks["ifd"].notna().any(), picks  # ranked by the student's IFD
    assert any(s.value.endswith("highest IFD first") for s in at.subheader)
    # the run's own stage-0 picks are not offered again
    from baldistill_core.selection import records as selection_records

    _, conn = _conn(page_env)
    taken = selection_records.picked_ids(conn, rid, 1)
    assert taken and not taken & set(picks["id"])


def test_compare_png_export_through_kaleido(page_env):
    ws, conn = _conn(page_env)
    _fake_run(ws, conn, name="adaptive", method="baldistill_a", scores={"Algebra": 0.6, "Geometry": 0.4})
    at = _run("pages/compare.py", dataset="math_lt")
    at.button(key="make_png").click().run()
    _ok(at)
    png = at.session_state["compare_png"]
    if not png:  # no Chromium for kaleido: the page must offer the HTML figure instead
        assert len(at.get("download_button")) == 2
    else:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_form_clip_reaches_the_config_and_cli(page_env):
    at = _run("pages/training.py", dataset="r52")
    at.number_input(key="train_clip").set_value(64).run()
    _ok(at)
    assert any("max_input_tokens: 64" in c.value for c in at.code)
