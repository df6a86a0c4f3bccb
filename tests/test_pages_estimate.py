"""AppTest (no browser): the estimate on the Training form and the Plan page, its guard rails, the CPU default."""

from __future__ import annotations

import sys

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO

from baldistill_core.runs import throughput

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEEDED = {"load_s": 1.0, "gen_tok_s": 50.0, "ifd_tok_s": 40.0, "train_tok_s": 80.0, "train_overhead_s": 5.0}


@pytest.fixture(autouse=True)
def seeded_store(tmp_path, monkeypatch):
    path = tmp_path / "throughputs.json"
    monkeypatch.setattr(throughput, "store_path", lambda: path)
    for model in ("smollm2-135m", "tiny-llama-test"):
        throughput.record(model, SEEDED, "seeded by the test")


def _run(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(REPO / path), default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_fresh_cpu_workspace_starts_from_the_r52_cpu_demo_with_its_estimate(page_env):
    at = _run("pages/training.py")  # no dataset chosen: a fresh CPU workspace picks the demo's
    assert not at.exception, [e.value for e in at.exception]
    yaml_text = " ".join(c.value for c in at.code)
    for line in ("dataset: r52", "budget: 40", "stages: 2", "max_input_tokens: 64"):
        assert line in yaml_text
    m = _metrics(at)
    assert m["Teacher cost"] == "$0.0000" and int(m["Teacher calls"]) == 40
    minutes = float(m["Estimated time"].split()[0]) if "min" in m["Estimated time"] else 0
    assert minutes < 60  # minutes, not hours
    assert not at.warning and not at.button(key="launch").disabled


def test_known_zero_pair_warns_before_launch(page_env):
    at = _run("pages/training.py", dataset="math_lt")
    assert any("known to score 0" in w.value for w in at.warning)


def test_hard_cap_refuses_the_launch_in_the_form(page_env):
    at = _run("pages/training.py", dataset="math_lt")
    at.selectbox(key="train_teacher").select("openai").run()
    at.text_input(key="train_tmodel").input("gpt-4o-mini").run()
    at.text_input(key="train_url").input("http://127.0.0.1:9/v1").run()
    at.text_input(key="train_smodel").input("tiny-llama-test").run()
    at.selectbox(key="train_preset").select("test-tiny").run()
    at.number_input(key="train_hardcap").set_value(0.0001).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Launch refused" in e.value and "hard cap" in e.value for e in at.error)
    assert at.button(key="launch").disabled
    assert _metrics(at)["Teacher cost"].startswith("$")
    # an unknown model: the cost says so, and the page does not guess
    at.text_input(key="train_tmodel").input("mystery-model-7b").run()
    assert _metrics(at)["Teacher cost"] == "unknown"
    assert any("mystery-model-7b" in w.value for w in at.warning)


def test_plan_page_shows_the_run_estimate(page_env):
    at = _run("pages/plan.py", dataset="r52")
    assert not at.exception, [e.value for e in at.exception]
    assert {"Estimated time", "Teacher calls", "Teacher tokens", "Teacher cost"} <= set(_metrics(at))
