"""AppTest (no browser) for the app shell, Home and Data pages."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import REPO


def _run(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(REPO / path), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_app_shell_runs_home_with_picker(page_env):
    at = _run("app.py")
    _no_errors(at)
    assert at.title[0].value == "BalDistill Studio"
    picker = at.sidebar.selectbox(key="dataset_picker")
    assert set(picker.options) == {"math_lt", "r52"}


def test_data_page_metrics_and_charts(page_env):
    at = _run("pages/data.py", dataset="math_lt")
    _no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Training examples"] == "4,125" and metrics["Domains"] == "7"
    assert len(at.get("plotly_chart")) == 2  # distribution + quota per stage
    table = at.dataframe[0].value
    assert list(table["domain"])[:2] == ["Algebra", "Intermediate Algebra"]
    assert table["total quota"].sum() == at.sidebar.number_input[0].value


def test_data_page_switches_dataset_and_policy(page_env):
    at = _run("pages/data.py", dataset="math_lt")
    at.sidebar.selectbox(key="dataset_picker").select("r52").run()
    _no_errors(at)
    assert {m.label: m.value for m in at.metric}["Domains"] == "52"
    assert at.query_params["dataset"] == ["r52"] or at.query_params["dataset"] == "r52"
    at.sidebar.selectbox(key="data_method").select("baldistill_n").run()
    at.sidebar.number_input(key="data_stages").set_value(5).run()  # the CPU start config has another K
    at.sidebar.number_input(key="data_budget").set_value(520).run()  # 2 per domain and stage at K=5
    _no_errors(at)
    table = at.dataframe[0].value
    # naive: every domain gets the same total quota up to rounding
    assert table["total quota"].max() - table["total quota"].min() <= 1


def test_data_page_budget_error_is_shown_not_raised(page_env):
    at = _run("pages/data.py", dataset="math_lt")
    at.sidebar.selectbox[1].select("random_ft_cot").run()
    at.sidebar.number_input[0].set_value(100000).run()
    assert not at.exception
    assert any("lower the budget" in e.value for e in at.error)


def test_home_lists_bundled_datasets_with_licence(page_env):
    at = _run("pages/home.py")
    _no_errors(at)
    captions = " ".join(c.value for c in at.caption)
    assert "research use only" in captions and "MIT" in captions
