"""AppTest (no browser): the Review page's small honesty fixes (issue 12).

A reject never records a reason nobody chose; loading recorded examples says how many were
auto-rejected; the filters survive a reload (they live in the URL).
"""

from __future__ import annotations

import sys

from streamlit.testing.v1 import AppTest

from conftest import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _review(**q) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages/review.py"), default_timeout=120)
    for k, v in {"dataset": "math_lt", **q}.items():
        at.query_params[k] = v
    at.session_state["reviewer_name"] = "alice"
    at.session_state["nearest_by"] = "tfidf"
    return at.run()


def _seed(root, per_domain=2, dataset="math_lt"):
    from baldistill_core.data.loading import dataset_spec
    from baldistill_core.synthetic import synthesis
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(root)
    rep = synthesis.import_recorded_synthetic_report(conn, dataset_spec(conn, dataset), per_domain=per_domain)
    return conn, rep


def test_reject_without_a_chosen_reason_records_nothing(page_env):
    from baldistill_core.synthetic import review

    conn, _ = _seed(page_env)
    at = _review()
    sid = next(b.key[3:] for b in at.button if b.key and b.key.startswith("rj_"))
    assert at.selectbox(key=f"reason_{sid}").value is None  # no default reason
    at.button(key=f"rj_{sid}").click().run()
    assert review.get(conn, sid)["status"] == "pending"
    assert any("Pick a reason" in e.value for e in at.error)
    at.selectbox(key=f"reason_{sid}").select("wrong answer").run()
    at.button(key=f"rj_{sid}").click().run()
    assert review.get(conn, sid)["status"] == "rejected" and review.get(conn, sid)["reason"] == "wrong answer"


def test_loading_recorded_examples_counts_the_auto_rejected(page_env):
    from studio_ui import review_views

    _, rep = _seed(page_env, per_domain=2, dataset="r52")
    text = review_views.loaded_text(rep)
    n_p, n_r = len(rep["pending"]), len(rep["auto_rejected"])
    assert n_r > 0, "the bundled recordings hold answers that disagree with the gold one"
    assert text.startswith(f"Loaded {n_p + n_r} recorded synthetic examples: {n_p} pending review, {n_r} auto-rejected")
    assert review_views.loaded_text(dict(pending=[1, 2], auto_rejected=[], skipped=[])) == \
        "Loaded 2 recorded synthetic examples: 2 pending review."


def test_review_filters_survive_a_reload(page_env):
    _seed(page_env)
    at = _review()
    at.selectbox(key="f_status").select("rejected").run()
    domain = at.selectbox(key="f_domain").options[1]
    at.selectbox(key="f_domain").select(domain).run()
    qp = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert qp["f_status"] == "rejected" and qp["f_domain"] == domain
    reloaded = _review(f_status="rejected", f_domain=domain)  # a new session with only the URL
    assert not reloaded.exception
    assert reloaded.selectbox(key="f_status").value == "rejected"
    assert reloaded.selectbox(key="f_domain").value == domain
