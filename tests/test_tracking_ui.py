"""The tracker and engine settings in the Training form, the YAML and the CLI; the tracker on the Training page."""

from __future__ import annotations

import sys

import yaml
from streamlit.testing.v1 import AppTest

from conftest import REPO
from _run_helpers import import_tiny, tiny_config

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _page(**query) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "training.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def test_the_form_sets_tracker_and_engine_and_the_cli_twin_carries_them(page_env):
    at = _page(dataset="math_lt")
    assert not at.exception
    assert at.selectbox(key="train_tracker").value == "none" and at.selectbox(key="train_engine").value == "hf"
    at.selectbox(key="train_tracker").select("mlflow").run()
    at.text_input(key="train_tproject").input("team-exp").run()
    at.text_input(key="train_turi").input("http://127.0.0.1:5000").run()
    at.selectbox(key="train_engine").select("vllm").run()
    twin = yaml.safe_load(at.code[0].value.split("<<'YAML'\n", 1)[1].split("\nYAML", 1)[0])
    assert twin["tracking"] == {"backend": "mlflow", "project": "team-exp", "uri": "http://127.0.0.1:5000"}
    assert twin["student"]["engine"] == "vllm"
    at.text_input(key="train_turi").input("http://u:pw@127.0.0.1:5000").run()  # credentials: refused, kept out
    assert any("must not hold credentials" in e.value for e in at.error)


def test_the_training_page_shows_the_tracker_run_and_a_failed_tracker(page_env):
    from baldistill_core.runs import records as runs
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(page_env)
    rid = runs.create_run(conn, ws.runs_dir, tiny_config(dataset="math_lt", tracking=dict(backend="mlflow")))
    runs.set_tracker(conn, rid, "mlflow", status="active", tracker_run_id="abc123",
                     url="mlflow ui --backend-store-uri file:///tmp/x")
    at = _page(dataset="math_lt", run=rid)
    assert not at.exception
    assert any("Experiment tracker: **mlflow** (active)" in c.value for c in at.caption)
    assert "abc123" in [t.value for t in at.text] and any("mlflow ui --backend-store-uri" in c.value for c in at.code)
    runs.set_tracker(conn, rid, "mlflow", status="failed", message="tracking: mlflow failed to start: refused")
    at = _page(dataset="math_lt", run=rid)
    assert any("is off for this run" in w.value for w in at.warning)
    assert any(c.value == "tracking: mlflow failed to start: refused" for c in at.code)


def test_cli_run_with_tracker_flags_reports_and_runs_show_prints_the_tracker(tmp_path, capsys):
    from baldistill_core.cli import main
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(tiny_config(stages=1, budget=5).to_yaml())
    assert main(["run", str(cfg), "-w", str(ws.root), "--tracker", "tensorboard", "--tracker-project", "p1",
                 "--engine", "hf"]) == 0
    from baldistill_core.runs import records as runs

    (run,) = runs.list_runs(conn)
    assert run["config"]["tracking"]["backend"] == "tensorboard" and run["config"]["tracking"]["project"] == "p1"
    assert runs.tracker(conn, run["id"])["status"] == "finished"
    capsys.readouterr()
    assert main(["runs", "show", run["id"], "-w", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert f"tracker tensorboard (finished): run {run['id']}, open with: tensorboard --logdir" in out
    conn.close()
