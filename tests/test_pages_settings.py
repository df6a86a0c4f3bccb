"""AppTest (no browser): one vocabulary and settings that follow the user (issue 12).

Budget, K, method and seed chosen on one page start the next page and survive a reload (the URL); every
page starts from the RunConfig defaults; a method that ignores K says so; the Training form can start
from a bundled config (the tour's); the evaluation's size groups are called large / small domains.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import yaml

from baldistill_core.config import RunConfig
from conftest import REPO
from test_pages_dashboard import _at, _ok  # the shared AppTest helpers


def _start(name: str, dataset: str = "math_lt"):
    """Where every page starts: the dataset's CPU demo config on a CPU-only machine (issue 14), else the
    RunConfig default."""
    import torch

    demo = REPO / "assets" / "configs" / f"{dataset}-cpu-demo.yaml"
    start = yaml.safe_load(demo.read_text()) if demo.exists() and not torch.cuda.is_available() else {}
    return start.get(name, RunConfig.model_fields[name].default)


def _qp(at: AppTest, name: str):
    v = at.query_params.get(name)
    return v[0] if isinstance(v, list) else v


def test_defaults_agree_on_data_plan_and_training(page_env):
    data = _at("pages/data.py", dataset="math_lt").run()
    plan = _at("pages/plan.py", dataset="math_lt").run()
    train = _at("pages/training.py", dataset="math_lt").run()
    for at in (data, plan, train):
        _ok(at)
    assert data.sidebar.number_input(key="data_budget").value == _start("budget")
    assert plan.number_input(key="plan_budget").value == _start("budget")
    assert train.number_input(key="train_budget").value == _start("budget")
    assert data.sidebar.number_input(key="data_stages").value == train.number_input(key="train_stages").value \
        == _start("stages")
    assert data.sidebar.selectbox(key="data_method").value == train.selectbox(key="train_method").value \
        == _start("method")


def test_choices_on_data_reach_plan_and_training_and_survive_a_reload(page_env):
    at = _at("app.py", dataset="math_lt").run()
    at.switch_page("pages/data.py").run()
    at.sidebar.selectbox(key="data_method").select("baldistill_n").run()
    at.sidebar.number_input(key="data_budget").set_value(77).run()
    at.sidebar.number_input(key="data_stages").set_value(3).run()
    _ok(at)
    assert (_qp(at, "method"), _qp(at, "budget"), _qp(at, "stages")) == ("baldistill_n", "77", "3")
    at.switch_page("pages/plan.py").run()  # same session, another page
    _ok(at)
    assert at.number_input(key="plan_budget").value == 77 and at.number_input(key="plan_stages").value == 3
    assert at.selectbox(key="plan_method").value == "baldistill_n"
    at.number_input(key="plan_seed").set_value(5).run()
    at.switch_page("pages/training.py").run()
    assert at.number_input(key="train_budget").value == 77 and at.number_input(key="train_seed").value == 5
    # a reload is a new session with only the URL: the values come back from it
    fresh = _at("pages/training.py", dataset="math_lt", method="baldistill_n", budget="77", stages="3",
                seed="5").run()
    _ok(fresh)
    assert fresh.number_input(key="train_budget").value == 77 and fresh.number_input(key="train_stages").value == 3
    assert fresh.selectbox(key="train_method").value == "baldistill_n" and fresh.number_input(key="train_seed").value == 5
    # a nonsense URL value falls back to the default instead of failing
    bad = _at("pages/plan.py", dataset="math_lt", budget="lots", method="nope").run()
    _ok(bad)
    assert bad.number_input(key="plan_budget").value == _start("budget")


def test_a_method_that_ignores_k_says_so(page_env):
    at = _at("pages/training.py", dataset="math_lt").run()
    at.selectbox(key="train_method").select("random_ft_cot").run()
    _ok(at)
    assert at.number_input(key="train_stages").disabled
    assert any("K is ignored by Random FT CoT" in c.value for c in at.caption)
    data = _at("pages/data.py", dataset="math_lt", method="random_ft_cot").run()
    _ok(data)
    assert data.sidebar.number_input(key="data_stages").disabled
    assert data.get("plotly_chart")[1].proto is not None
    assert len({c for c in data.dataframe[0].value.columns if c.startswith("total")}) == 1


def test_training_starts_from_the_tour_config(page_env):
    at = _at("pages/training.py", dataset="r52", config="r52-tour").run()
    _ok(at)
    assert at.selectbox(key="train_method").value == "baldistill_n"
    assert (at.number_input(key="train_budget").value, at.number_input(key="train_stages").value) == (40, 4)
    assert at.text_input(key="train_smodel").value == "smollm2-135m"
    assert at.number_input(key="train_clip").value == 64 and at.checkbox(key="train_auto").value
    code = at.code[0].value
    # the fields without a widget come from the file too, so the CLI twin is the same run
    assert "learning_rate: 0.002" in code and "fresh_adapter_per_stage: false" in code and "stages: 4" in code
    assert _qp(at, "budget") == "40"


def test_training_curves_name_the_size_groups(page_env):
    from studio_ui import run_views

    live = [dict(stage=s, domain=d, value=v) for s in (-1, 0) for d, v in (("a", 0.1), ("b", 0.2))]
    fig = run_views.accuracy_figure(live, ["a"], ["b"], "accuracy")
    titles = {t.legendgrouptitle.text for t in fig.data if t.name in ("a", "b")}
    assert titles == {"large domains", "small domains"} and "head" not in fig.layout.title.text


def test_home_tour_links_carry_the_tour_settings(page_env):
    at = _at("app.py").run()
    _ok(at)
    links = {p.proto.label: p.proto.page for p in at.get("page_link")} if at.get("page_link") else {}
    md = " ".join(m.value for m in at.markdown)
    assert "BalDistill-N, B=40, K=4" in md and "r52-tour.yaml" in md
    assert "5 · Training" in links, links


def test_data_page_renders_math_latex_and_shows_no_none_cells(page_env):
    at = _at("pages/data.py", dataset="math_lt").run()
    _ok(at)
    shown = [m.value for m in at.markdown if "$" in m.value]
    assert shown, "math examples are rendered as markdown with their LaTeX spans"
    assert not [t.value for t in at.text if "$" in t.value]  # not as raw text
    table = at.dataframe[0].value
    assert set(table["tail from stage"]) <= {"never"} | {f"stage {s}" for s in range(50)}
    assert table["tail from stage"].notna().all()


def test_training_does_not_call_recorded_teacher_calls_paid(page_env):
    from baldistill_core.runs import records as runs
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(page_env)
    rid = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="math_lt", name="rec", budget=14, stages=2))
    at = _at("pages/training.py", dataset="math_lt", run=rid).run()
    _ok(at)
    labels = [m.label for m in at.metric]
    assert "Teacher calls (recorded replays / cached)" in labels and not any("paid" in lb for lb in labels)
    assert any("BalDistill-A" in m.value for m in at.markdown)  # the method by its label
