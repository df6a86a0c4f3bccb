"""Experiment trackers for real and offline: a tiny run reports to each installed backend's local store
(trackio's SQLite store, MLflow's file store, TensorBoard event files, W&B offline run files), and what
they hold is read back with the tracker's own reader and compared with our metrics table."""

from __future__ import annotations

import importlib.util
import json
import socket
import struct

import pytest

from baldistill_core.evaluation.evaluate import score_predictions
from baldistill_core.reports import tracking
from baldistill_core.runs import jobs
from baldistill_core.runs import records as runs
from _run_helpers import import_tiny, tiny_config

INSTALLED = [b for b in ("trackio", "mlflow", "tensorboard", "wandb") if importlib.util.find_spec(b)]
SECRET = "sk-test-SECRET-do-not-log-123"


def _skip_missing(backend):
    if backend not in INSTALLED:
        pytest.skip(f"{backend} is not installed (pip install {tracking.INSTALL[backend]})")


# ---------------------------------------------------------------- readers: the tracker's own files


def read_tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "metrics"), size_guidance={"scalars": 0})
    acc.Reload()
    out = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    train = {}
    for stage_dir in sorted(run_dir.glob("train-stage*")):
        a = EventAccumulator(str(stage_dir), size_guidance={"scalars": 0})
        a.Reload()
        train[stage_dir.name] = [e.value for e in a.Scalars("train/loss")] if "train/loss" in a.Tags()["scalars"] else []
    return out, train


def read_mlflow(uri, run_id):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    out = {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in run.data.metrics}
    return out, run


def read_trackio(project, name):
    from trackio.sqlite_storage import SQLiteStorage

    out: dict[str, dict[int, float]] = {}
    for row in SQLiteStorage.get_logs(project, name):
        for k, v in row.items():
            if isinstance(v, (int, float)) and k not in ("step",):
                out.setdefault(k, {})[row["step"]] = float(v)
    return out


def read_wandb_offline(run_file):
    """History rows of an offline ``run-<id>.wandb`` file (LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw, block, pos, chunks, buf = run_file.read_bytes(), 32768, 7, [], b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            chunks.append(data)
        elif kind == 2:
            buf = data
        elif kind == 3:
            buf += data
        elif kind == 4:
            chunks.append(buf + data)
    out: dict[str, dict[int, float]] = {}
    for data in chunks:
        rec = pb.Record()
        rec.ParseFromString(data)
        if rec.WhichOneof("record_type") != "history":
            continue
        row = {(it.key or "/".join(it.nested_key)): json.loads(it.value_json) for it in rec.history.item}
        step = int(row["stage"]) if "stage" in row else int(row.get("_step", -1))  # ours: x-axis "stage"
        for k, v in row.items():
            if isinstance(v, (int, float)):
                out.setdefault(k, {})[step] = float(v)
    return out, raw


# ---------------------------------------------------------------- a real run per backend


def _ours(conn, run_id, split):
    """Our metrics table as tracker names: {name: {step: value}} (step = stage + 1)."""
    from baldistill_core import store
    from baldistill_core.evaluation.evaluate import head_tail_groups

    head, tail = head_tail_groups(store.domain_counts(conn, "tinymath", "train"))
    prefix = "eval" if split == "live" else "test"
    out: dict[str, dict[int, float]] = {}
    for m in runs.metrics(conn, run_id, split):
        if m["metric"] == "n":
            continue
        d = m["domain"]
        name = (tracking.metric_key(prefix, "overall", d[1:], m["metric"]) if d.startswith("_") else
                tracking.metric_key(prefix, "head" if d in head else "tail", d, m["metric"]))
        out.setdefault(name, {})[m["stage"] + 1] = m["value"]
    return out


@pytest.fixture(scope="module", params=["tensorboard", "mlflow", "trackio", "wandb"])
def tracked_run(request, tmp_path_factory):
    backend = request.param
    _skip_missing(backend)
    from baldistill_core.workspace import open_workspace

    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)  # present in the environment; must reach no tracker
    for var in ("MLFLOW_TRACKING_URI", "WANDB_DIR", "WANDB_API_KEY"):
        mp.delenv(var, raising=False)
    tmp = tmp_path_factory.mktemp(f"track-{backend}")
    if backend == "trackio":
        mp.setenv("TRACKIO_DIR", str(tmp / "ws" / "tracking" / "trackio"))
    ws, conn = open_workspace(tmp / "ws", bundled=False)
    import_tiny(conn, tmp / "data")
    cfg = tiny_config(tracking=dict(backend=backend, project="bd-test"),
                      teacher=dict(base_url=f"https://bob:{SECRET}@teacher.example/v1"))
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    code = jobs.run_worker(ws, conn, run_id)
    yield dict(backend=backend, ws=ws, conn=conn, run_id=run_id, code=code, tmp=tmp)
    conn.close()
    mp.undo()


def test_a_tracked_run_reports_our_per_domain_values_to_the_tracker(tracked_run):
    conn, run_id, backend, ws = tracked_run["conn"], tracked_run["run_id"], tracked_run["backend"], tracked_run["ws"]
    assert tracked_run["code"] == 0 and runs.get_run(conn, run_id)["status"] == "finished"
    rec = runs.tracker(conn, run_id)
    assert rec["backend"] == backend and rec["status"] == "finished" and rec["message"] is None, rec
    store_dir = ws.root / "tracking" / backend
    if backend == "tensorboard":
        got, train = read_tensorboard(store_dir / run_id)
        assert rec["url"] == f"tensorboard --logdir {store_dir}"
        assert sorted(train) == ["train-stage0", "train-stage1", "train-stage2"] and all(train.values())
        for s in range(3):  # the trainer's own loss (report_to) equals the loss curve on our Training page
            ours_loss = [m["value"] for m in runs.metrics(conn, run_id, "train") if m["stage"] == s]
            assert train[f"train-stage{s}"] == pytest.approx(ours_loss, rel=1e-5)
    elif backend == "mlflow":
        got, run = read_mlflow(store_dir.resolve().as_uri(), rec["tracker_run_id"])
        assert run.info.run_name == run_id and run.data.params["method"] == "baldistill_a"
        assert "loss" in got  # the trainer's own MLflowCallback, into our run
        assert rec["url"].startswith("mlflow ui --backend-store-uri file://")
    elif backend == "trackio":
        got = read_trackio("bd-test", run_id)
        assert "train/loss" in got  # the trainer's TrackioCallback, resumed by name
    else:
        files = list(store_dir.rglob(f"run-{rec['tracker_run_id']}.wandb"))
        assert len(files) == 1 and rec["url"].startswith("wandb sync ")
        got, raw = read_wandb_offline(files[0])
        assert any(k.startswith("train/") for k in got)  # the trainer's WandbCallback, into our run
    ours = {**_ours(conn, run_id, "live"), **_ours(conn, run_id, "test")}
    per_domain = [k for k in ours if k.startswith(("eval/tail/", "eval/head/"))]
    assert "eval/tail/num/accuracy" in per_domain and "eval/head/alg/accuracy" in per_domain
    for name, by_step in ours.items():
        if name.startswith("test/"):  # the final test is logged once, at the last stage
            assert got[name][3] == pytest.approx(by_step[3]), name
        else:
            assert got[name] == pytest.approx(by_step), name
    stages = runs.stage_rows(conn, run_id)
    for s in stages:
        assert got["stage/final_loss"][s["stage"] + 1] == pytest.approx(s["train"]["final_loss"])
    spend = runs.spend(conn, run_id)
    assert got["teacher/budget_used"][3] == spend["selected"] and got["teacher/calls"][3] == spend["calls"] > 0
    # Nothing secret: the key in the environment and the password in the endpoint URL reach no file.
    for f in store_dir.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_redaction_and_metric_names():
    from baldistill_core.config import RunConfig

    cfg = RunConfig(dataset="d", teacher=dict(backend="openai", base_url="https://u:pw@h.example:8443/v1?token=t"))
    params = tracking.safe_params(cfg)
    assert params["teacher.base_url"] == "https://h.example:8443/v1"
    assert params["teacher.api_key_env"] == "OPENAI_API_KEY" and not any("pw" in v for v in params.values())
    report = score_predictions(
        [dict(id="1", domain="a b", answer="1"), dict(id="2", domain="a b", answer="2"), dict(id="3", domain="z", answer="3")],
        ["The answer is: 1", "The answer is: 5", "The answer is: 3"], "math", sizes={"a b": 10, "z": 1})
    m = tracking.report_metrics(report, "eval", (["a b"], ["z"]))
    assert m["eval/head/a b/accuracy"] == 0.5 and m["eval/tail/z/accuracy"] == 1.0
    assert m["eval/overall/macro/accuracy"] == 0.75 and m["eval/overall/micro/accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="credentials"):
        RunConfig(dataset="d", tracking=dict(backend="mlflow", uri="http://u:p@127.0.0.1:5000"))


# ---------------------------------------------------------------- a failing tracker never fails the run


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("how", ["unreachable", "not installed"])
def test_a_failing_tracker_warns_and_the_run_finishes(how, tmp_path, monkeypatch):
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    if how == "unreachable":
        _skip_missing("mlflow")
        # The team's server from the environment, credentials in its URL: down, and never echoed.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:{SECRET}@127.0.0.1:{_closed_port()}")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        track = dict(backend="mlflow")
    else:
        monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # how Python marks a module absent
        track = dict(backend="wandb")
    run_id = runs.create_run(conn, ws.runs_dir, tiny_config(tracking=track, stages=1, budget=5))
    assert jobs.run_worker(ws, conn, run_id) == 0
    assert runs.get_run(conn, run_id)["status"] == "finished"
    rec = runs.tracker(conn, run_id)
    assert rec["status"] == "failed" and "the run goes on without it" in rec["message"]
    warnings = [l["message"] for l in runs.log_tail(conn, run_id, 100) if l["level"] == "warning"]
    assert len([w for w in warnings if w.startswith("tracking:")]) == 1, warnings  # one warning, then silence
    if how == "not installed":
        assert "pip install wandb==" in rec["message"]
    else:
        assert "127.0.0.1" in rec["message"] or "Connection" in rec["message"], rec["message"]
        assert not any(SECRET in l["message"] for l in runs.log_tail(conn, run_id, 200)) and SECRET not in rec["message"]
    assert runs.metrics(conn, run_id, "test")  # our own records are complete
    conn.close()


def test_a_trainer_integration_that_raises_is_dropped_and_training_goes_on(tmp_path):
    _skip_missing("tensorboard")
    from baldistill_core.config import StudentConfig
    from baldistill_core.student.model import resolve_model
    from baldistill_core.student.training import Reporting, train_adapter

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the event folder should go")
    warned: list[str] = []
    rep = Reporting(report_to="tensorboard", env={"TENSORBOARD_LOGGING_DIR": str(blocker / "stage{stage}")},
                    warn=warned.append)
    cfg = StudentConfig(model="tiny-llama-test", preset="test-tiny")
    ex = [{"prompt": f"Add {i} and 1.\n", "completion": f"The answer is: {i + 1}"} for i in range(4)]
    res = train_adapter(resolve_model("tiny-llama-test"), ex, cfg, tmp_path / "out", reporting=rep)
    assert res.steps == 1 and (tmp_path / "out" / "adapter_config.json").exists()
    assert len(warned) == 1 and "tensorboard integration failed" in warned[0]


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow", "trackio", "wandb"])
def test_nonzero_per_domain_values_and_the_final_table_reach_each_tracker(backend, tmp_path, monkeypatch):
    _skip_missing(backend)
    import sys

    from baldistill_core.workspace import open_workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    uri = None
    if backend == "trackio":  # trackio's folder is fixed once per process, at its first import
        uri = str(sys.modules["trackio"].utils.TRACKIO_DIR) if "trackio" in sys.modules else str(tmp_path / "tio")
    cfg = tiny_config(tracking=dict(backend=backend, project="bd-direct", uri=uri))
    run_id = runs.create_run(conn, ws.runs_dir, cfg)
    warned: list[str] = []
    t = tracking.start(conn, run_id, cfg, ws.runs_dir / run_id, warn=warned.append)
    items = [dict(id=str(i), domain=d, answer=str(i)) for i, d in enumerate(["alg", "alg", "geo", "geo", "num"])]
    outs = ["The answer is: 0", "The answer is: 9", "The answer is: 2", "The answer is: 3", "no answer"]
    report = score_predictions(items, outs, "math", sizes={"alg": 14, "geo": 6, "num": 2})
    t.stage_eval(0, report, (["alg"], ["geo", "num"]))
    t.final(1, report, (["alg"], ["geo", "num"]))
    t.close(True)
    assert warned == [] and runs.tracker(conn, run_id)["status"] == "finished"
    want = {"eval/head/alg/accuracy": 0.5, "eval/tail/geo/accuracy": 1.0, "eval/tail/num/accuracy": 0.0,
            "eval/overall/macro/accuracy": 0.5, "eval/overall/micro/accuracy": 0.6, "test/tail/geo/accuracy": 1.0}
    rec = runs.tracker(conn, run_id)
    store_dir = ws.root / "tracking" / backend
    if backend == "tensorboard":
        got, _ = read_tensorboard(store_dir / run_id)
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(store_dir / run_id / "metrics"))
        acc.Reload()
        table = acc.Tensors("final_table/text_summary")[0].tensor_proto.string_val[0].decode()
        assert "| alg | 0.5 |" in table and "| _macro | 0.5 |" in table
    elif backend == "mlflow":
        from mlflow.tracking import MlflowClient

        got, _ = read_mlflow(store_dir.resolve().as_uri(), rec["tracker_run_id"])
        path = MlflowClient(tracking_uri=store_dir.resolve().as_uri()).download_artifacts(
            rec["tracker_run_id"], "final_table.json", str(tmp_path))
        rows = json.loads(open(path).read())["rows"]
        assert {r["domain"]: r["accuracy"] for r in rows}["geo"] == 1.0
    elif backend == "trackio":
        from trackio.sqlite_storage import SQLiteStorage

        got = read_trackio("bd-direct", run_id)
        assert any("final_table" in row for row in SQLiteStorage.get_logs("bd-direct", run_id))
    else:
        (run_file,) = store_dir.rglob(f"run-{rec['tracker_run_id']}.wandb")
        got, raw = read_wandb_offline(run_file)
        assert b"final_table" in raw
    for name, value in want.items():
        step = 2 if name.startswith("test/") else 1
        assert got[name][step] == pytest.approx(value), name


def test_a_resumed_run_reports_to_the_same_tracker_run(tmp_path, monkeypatch):
    """A run that waits for review (worker exits) and is resumed keeps one MLflow run with every stage."""
    _skip_missing("mlflow")
    from baldistill_core import store
    from baldistill_core.synthetic import review
    from baldistill_core.workspace import open_workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    run_id = runs.create_run(conn, ws.runs_dir, tiny_config(auto_approve=False, tracking=dict(backend="mlflow")))
    jobs.run_worker(ws, conn, run_id)
    first = runs.tracker(conn, run_id)
    assert runs.get_run(conn, run_id)["status"] == "awaiting_review" and first["status"] == "paused"
    for r in store.rows(conn, "SELECT id FROM synthetic WHERE run_id = ? AND status = 'pending'", (run_id,)):
        review.approve(conn, r["id"], reviewer="tester")
    assert jobs.run_worker(ws, conn, run_id) == 0
    again = runs.tracker(conn, run_id)
    assert again["tracker_run_id"] == first["tracker_run_id"] and again["status"] == "finished"
    uri = (ws.root / "tracking" / "mlflow").resolve().as_uri()
    got, run = read_mlflow(uri, again["tracker_run_id"])
    assert run.info.status == "FINISHED"
    assert sorted(got["eval/overall/macro/accuracy"]) == [0, 1, 2, 3]  # base student + 3 stages, one run
    from mlflow.tracking import MlflowClient

    assert len(MlflowClient(tracking_uri=uri).search_runs([run.info.experiment_id])) == 1
    conn.close()


def test_an_accelerate_launch_child_reports_its_loss_through_report_to(tmp_path):
    """`accelerate launch` with one process (the GPU smoke test's launch, here on the CPU) trains a stage,
    and the child's trainer writes its loss where the parent's tracker told it to."""
    _skip_missing("tensorboard")
    from baldistill_core.config import StudentConfig
    from baldistill_core.student.launch import launch
    from baldistill_core.student.model import resolve_model
    from baldistill_core.student.training import Reporting

    cfg = StudentConfig(model="tiny-llama-test", preset="test-tiny", batch_size=2)
    ex = [{"prompt": f"Add {i} and 1.\n", "completion": f"The answer is: {i + 1}"} for i in range(4)]
    rep = Reporting(report_to="tensorboard", project="p", run_name="r",
                    env={"TENSORBOARD_LOGGING_DIR": str(tmp_path / "tb" / "train-stage{stage}")})
    res = launch(cfg, resolve_model("tiny-llama-test"), ex, tmp_path / "s" / "adapter", seed=0, reporting=rep,
                 stage=3, always=True)
    assert res.steps == 2 and (tmp_path / "s" / "adapter" / "adapter_config.json").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["train-stage3"]
    acc = EventAccumulator(str(tmp_path / "tb" / "train-stage3"))
    acc.Reload()
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert len(losses) == 2 and losses[-1] == pytest.approx(res.final_loss, rel=1e-5)
