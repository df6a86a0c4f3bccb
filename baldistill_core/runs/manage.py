"""Run housekeeping: rename, delete, and change the teacher of a stopped run (recorded in its log).

A teacher change is safe when no worker holds the run and it has not finished: the answers already
kept stay as they were (the cache is keyed by backend + model, so the new teacher never reuses the
old one's replies), and the steps still to do ask the new teacher. The change is written to the run's
log and to its ``config.yaml``, so a reader of the run sees which stages had which teacher.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from baldistill_core import store
from baldistill_core.config import RunConfig, TeacherConfig
from baldistill_core.runs import records as runs

RUN_TABLES = ("stages", "selections", "metrics", "logs", "stage_details", "ledger")


def rename_run(conn, run_id: str, name: str) -> None:
    """Change a run's display name (its id and folder stay)."""
    runs.get_run(conn, run_id)
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise runs.RunError("a run name needs 1 to 80 characters")
    conn.execute("UPDATE runs SET name = ?, updated_at = ? WHERE id = ?", (name, store.now(), run_id))
    cfg = runs.run_config(conn, run_id).model_copy(update={"name": name})
    _save_config(conn, run_id, cfg)


def delete_run(conn, run_id: str) -> None:
    """Delete a run's rows and its folder (adapters included). Refused while its worker runs."""
    run = runs.get_run(conn, run_id)
    if run["worker_alive"]:
        raise runs.RunError(f"run {run_id} is running (process {run['pid']}); cancel it first, then delete it")
    with store.transaction(conn):
        for table in RUN_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.execute("UPDATE synthetic SET run_id = NULL WHERE run_id = ?", (run_id,))  # reviewed data stays
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    shutil.rmtree(run["folder"], ignore_errors=True)


def describe_teacher(t: TeacherConfig) -> str:
    if t.backend == "recorded":
        return "recorded"
    return f"{t.backend}:{t.model}" + (f" at {t.base_url}" if t.base_url else "")


def change_teacher(conn, run_id: str, teacher: TeacherConfig) -> bool:
    """Give a stopped run another teacher (True when it changed). Refused while a worker holds the run
    or once it finished."""
    run = runs.get_run(conn, run_id)
    if run["worker_alive"]:
        raise runs.RunError(f"run {run_id} is running; cancel it before changing its teacher")
    if run["status"] == "finished":
        raise runs.RunError(f"run {run_id} has finished; start a new run with the other teacher")
    cfg = RunConfig.model_validate(run["config"])
    if cfg.teacher == teacher:
        return False
    at = f"stage {run['current_stage']} ({run['current_step']})" if run["current_stage"] is not None else "the start"
    new = cfg.model_copy(update={"teacher": teacher})
    _save_config(conn, run_id, new)
    runs.log(conn, run_id, f"teacher changed from {describe_teacher(cfg.teacher)} to {describe_teacher(teacher)} "
                           f"at {at}: steps done before keep the old teacher's answers", "warning")
    return True


def _save_config(conn, run_id: str, cfg: RunConfig) -> None:
    conn.execute("UPDATE runs SET config = ?, updated_at = ? WHERE id = ?",
                 (cfg.model_dump_json(), store.now(), run_id))
    folder = Path(runs.get_run(conn, run_id)["folder"])
    if folder.exists():
        (folder / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")

