"""Issue 12's first-hour bugs, below the pages: import over an existing name, delete and rename,
the teacher pre-launch check, resuming with another teacher, the budget count, upload problems."""

from __future__ import annotations

import json
import time

import pytest

from baldistill_core import store
from baldistill_core.cli import main
from baldistill_core.config import DatasetSpec, RunConfig, TeacherConfig
from baldistill_core.data import loading as data
from baldistill_core.errors import ConfigError, DataError
from baldistill_core.runs import jobs, records as runs
from baldistill_core.selection import records as picks
from baldistill_core.selection.select import Pick, StageSelection


def _rows(n: int = 40, domains=("alpha", "beta", "gamma")) -> list[dict]:
    return [dict(id=f"u{i}", domain=domains[i % len(domains)], input=f"Question {i}: which letter?",
                 answer="AB"[i % 2]) for i in range(n)]


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _upload(conn, tmp_path, name="mc10", **kw):
    spec = DatasetSpec(name=name, train_path=_write(tmp_path / f"{name}.jsonl", _rows()),
                       task_type="multiple_choice")
    return data.import_dataset(conn, spec, **kw)


# ---------------------------------------------------------------- 4. import over an existing name


def test_import_never_replaces_an_existing_dataset_silently(ws, tmp_path):
    w, conn = ws
    path = _write(tmp_path / "small.jsonl", _rows(20))
    with pytest.raises(DataError, match="bundled demo 'math_lt' already exists.*--replace"):
        data.import_dataset(conn, DatasetSpec(name="math_lt", train_path=path))
    assert store.get_dataset(conn, "math_lt")["n_train"] == 4125  # untouched
    # the CLI refuses too, and replaces with --replace
    assert main(["data", "import", "math_lt", path, "-w", str(w.root)]) == 2
    assert store.get_dataset(conn, "math_lt")["n_train"] == 4125
    assert main(["data", "import", "math_lt", path, "--replace", "-w", str(w.root)]) == 0
    assert store.get_dataset(conn, "math_lt")["n_train"] == 20


def test_delete_and_rename_datasets_and_runs(ws, tmp_path, capsys):
    from baldistill_core.data import manage as data_manage
    from baldistill_core.runs import manage as run_manage

    w, conn = ws
    _upload(conn, tmp_path)
    rid = runs.create_run(conn, w.runs_dir, RunConfig(dataset="mc10", name="first"))
    with pytest.raises(DataError, match="bundled demo"):
        data_manage.rename_dataset(conn, "math_lt", "other")
    data_manage.rename_dataset(conn, "mc10", "mc_ten")
    assert store.get_dataset(conn, "mc10") is None
    assert store.get_dataset(conn, "mc_ten")["spec"]["name"] == "mc_ten"
    assert sum(store.domain_counts(conn, "mc_ten").values()) == 40
    assert runs.get_run(conn, rid)["dataset"] == "mc_ten" and runs.run_config(conn, rid).dataset == "mc_ten"
    # a dataset with runs is not deleted; deleting needs --yes on the CLI
    with pytest.raises(DataError, match="used by 1 run"):
        data_manage.delete_dataset(conn, "mc_ten")
    run_manage.rename_run(conn, rid, "renamed")
    assert runs.get_run(conn, rid)["name"] == "renamed"
    assert "name: renamed" in (w.runs_dir / rid / "config.yaml").read_text()
    assert main(["runs", "delete", rid, "-w", str(w.root)]) == 2
    assert main(["runs", "delete", rid, "--yes", "-w", str(w.root)]) == 0
    assert not (w.runs_dir / rid).exists()
    with pytest.raises(runs.RunError):
        runs.get_run(conn, rid)
    assert main(["data", "delete", "mc_ten", "-w", str(w.root)]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert main(["data", "delete", "mc_ten", "--yes", "-w", str(w.root)]) == 0
    assert store.get_dataset(conn, "mc_ten") is None


# ---------------------------------------------------------------- 5. teacher pre-launch check


def test_recorded_teacher_without_recordings_is_refused_at_launch(ws, tmp_path):
    from baldistill_core.teacher.preflight import check_teacher

    w, conn = ws
    _upload(conn, tmp_path)
    cfg = RunConfig(dataset="mc10", budget=20, stages=2)
    check = check_teacher(conn, cfg)
    assert check.errors and "no recorded rationales for dataset 'mc10'" in check.errors[0]
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="choose the openai teacher"):
        jobs.submit(w, conn, cfg)
    assert time.perf_counter() - t0 < 5
    assert runs.list_runs(conn, "mc10") == []  # nothing created
    # the bundled demo has recordings: no error
    assert check_teacher(conn, RunConfig(dataset="math_lt")).errors == []
    # a run that trains on gold answers only needs no teacher
    assert check_teacher(conn, RunConfig(dataset="mc10", method="random_ft")).errors == []


def test_openai_teacher_needs_a_key_at_launch(ws, tmp_path, monkeypatch):
    from baldistill_core.teacher.preflight import check_teacher

    w, conn = ws
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = RunConfig(dataset="math_lt", teacher=TeacherConfig(backend="openai"))
    with pytest.raises(ConfigError, match="type it in the 'API key' field"):
        jobs.submit(w, conn, cfg)
    assert runs.list_runs(conn) == []
    assert check_teacher(conn, cfg, api_key="sk-session").errors == []
    # the key reaches the worker's environment only, never the stored config
    assert jobs._key_env(cfg, "sk-session", None) == {"OPENAI_API_KEY": "sk-session"}
    assert "sk-session" not in cfg.model_dump_json()


def test_failed_run_resumes_with_another_teacher_and_the_change_is_recorded(ws, tmp_path):
    from baldistill_core.runs import manage as run_manage

    w, conn = ws
    _upload(conn, tmp_path)
    cfg = RunConfig(dataset="mc10", budget=20, stages=2)
    rid = runs.create_run(conn, w.runs_dir, cfg)  # as launched before the check existed
    runs.set_status(conn, rid, "failed", error="NoRecording: no recording")
    with pytest.raises(ConfigError, match="no recorded rationales"):
        jobs.resume(w, conn, rid)  # the same teacher cannot work: refused, nothing started
    assert runs.get_run(conn, rid)["status"] == "failed"
    other = TeacherConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    proc = jobs.resume(w, conn, rid, teacher=other)
    try:
        assert runs.run_config(conn, rid).teacher == other
        assert "backend: openai" in (w.runs_dir / rid / "config.yaml").read_text()
        logs = " ".join(r["message"] for r in runs.log_tail(conn, rid))
        assert "teacher changed from recorded to openai:m at http://127.0.0.1:9/v1" in logs
    finally:
        jobs.cancel(conn, rid, wait_s=5, kill_after=True)
        proc.wait(timeout=30)
    with pytest.raises(runs.RunError, match="has finished"):
        runs.set_status(conn, rid, "finished")
        run_manage.change_teacher(conn, rid, TeacherConfig())


# ---------------------------------------------------------------- 6. budget counts annotated examples


def test_budget_counts_only_examples_the_teacher_annotated(ws):
    from baldistill_core.selection.policy import allocate_stage

    w, conn = ws
    rid = runs.create_run(conn, w.runs_dir, RunConfig(dataset="math_lt", budget=200, stages=2))
    sizes = {"Algebra": 50, "Geometry": 50}
    alloc = allocate_stage("adaptive", sizes, sizes, 8, 2, 0)
    ids = [f"a{i}" for i in range(4)]
    picks.save_selection(conn, rid, StageSelection(alloc, [Pick(x, "Algebra", "head") for x in ids]))
    assert runs.spend(conn, rid)["selected"] == 0  # picked, but the teacher has not answered (0 calls)

    class Note:
        def __init__(self, i, kept):
            self.id, self.kept, self.reason, self.rationale = i, kept, None, "r"

    picks.record_annotations(conn, rid, 0, [Note("a0", True), Note("a1", False)])
    assert runs.spend(conn, rid)["selected"] == 2


# ---------------------------------------------------------------- 2, 9. upload problems


def test_train_and_test_with_the_same_file_name_are_not_swapped():
    from studio_ui.charts import upload_files

    class Up:
        def __init__(self, name, body):
            self.name, self.body = name, body

        def getvalue(self):
            return self.body

    train = "".join(json.dumps(r) + "\n" for r in _rows(30)).encode()
    test = "".join(json.dumps(dict(r, id=f"t{i}")) + "\n" for i, r in enumerate(_rows(6))).encode()
    train_name, test_name, uploads = upload_files(Up("data.jsonl", train), Up("data.jsonl", test))
    assert train_name != test_name and uploads[train_name] == train and uploads[test_name] == test
    spec = DatasetSpec(name="x", train_path=train_name, test_path=test_name, task_type="multiple_choice")
    loaded = data.load_dataset(spec, uploads=uploads)
    assert (len(loaded.train), len(loaded.test)) == (30, 6)
    with pytest.raises(DataError, match="train and test are the same file"):
        data.load_dataset(spec.model_copy(update={"test_path": train_name}), uploads={train_name: train})


def test_binary_file_is_called_not_a_text_file():
    with pytest.raises(DataError, match=r"x\.jsonl: not a text file"):
        data.read_table("x.jsonl", data=b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe")
    with pytest.raises(DataError, match="not a text file.*UTF-16"):
        data.read_table("x.csv", data="input,answer\nhi,A\n".encode("utf-16"))


def test_single_value_domain_column_warns_and_the_map_offers_clusters(ws, tmp_path):
    from baldistill_core.map import pseudo_domains

    _, conn = ws
    spec = DatasetSpec(name="one", train_path=_write(tmp_path / "one.jsonl", _rows(12, domains=("only",))))
    loaded = data.import_dataset(conn, spec)
    assert any("holds a single value ('only')" in w and "clusters as domains" in w for w in loaded.warnings)
    assert not pseudo_domains.has_domains(conn, "one")  # so the Map offers "Use clusters as domains"
    nodomain = data.load_dataset(spec.model_copy(update={"domain_field": None}))
    assert any(w.startswith("no domain column: all 12 examples are in one domain 'all'") for w in nodomain.warnings)
