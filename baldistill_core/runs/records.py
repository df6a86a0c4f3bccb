"""Run records: creation, status, heartbeat, logs, metrics — what the worker writes and the pages read.

A run is a row in ``runs`` plus a folder (``<workspace>/runs/<id>``) holding ``config.yaml``, the
stage adapters and the worker log. The stored config never holds a secret: ``TeacherConfig`` only
names the environment variable of the API key.

Status: created → running → (awaiting_review ⇄ running) → finished, or cancelling → cancelled,
or failed. A run whose status says running but whose worker is gone (killed, machine restarted)
shows ``state = "interrupted"`` and can be resumed.
"""

from __future__ import annotations

import json
import os
import signal
import re
import secrets
import sqlite3
import time
from enum import Enum
from pathlib import Path

from baldistill_core import store
from baldistill_core.errors import BalDistillError
from baldistill_core.config import RunConfig
from baldistill_core.selection import records as picks
from baldistill_core.selection.methods import effective_stages

class RunStatus(str, Enum):
    """A run's stored status. ``state`` adds ``interrupted``: running on record, but no live worker."""

    CREATED = "created"
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    FINISHED = "finished"

    def __str__(self) -> str:
        return self.value


INTERRUPTED = "interrupted"
STATUSES = tuple(s.value for s in RunStatus)
ACTIVE = (RunStatus.RUNNING.value, RunStatus.CANCELLING.value)          # a worker should be alive
ENDED = (RunStatus.FINISHED.value, RunStatus.CANCELLED.value)           # nothing left to do or stop
CANCELLABLE = frozenset({RunStatus.CREATED.value, RunStatus.RUNNING.value, RunStatus.AWAITING_REVIEW.value,
                         RunStatus.CANCELLING.value})                   # by state
RESUMABLE = frozenset({RunStatus.CANCELLED.value, RunStatus.FAILED.value, INTERRUPTED,
                       RunStatus.AWAITING_REVIEW.value, RunStatus.CREATED.value})  # by state, without a live worker
HEARTBEAT_STALE_S = 30.0   # a worker beats every few seconds; silence this long means it is gone
STAGE_STEPS = ("selecting", "annotating", "training", "evaluating", "done")


class RunError(BalDistillError, ValueError):
    """A run cannot do what was asked; the message says why and what to do."""


# ---------------------------------------------------------------- create and read


def new_run_id(cfg: RunConfig) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{cfg.dataset}-{cfg.method}".lower()).strip("-")[:40]
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{slug}-{secrets.token_hex(2)}"


def create_run(conn: sqlite3.Connection, runs_dir: str | Path, cfg: RunConfig, *, created_by: str | None = None,
               run_id: str | None = None) -> str:
    """Insert a run row and write ``config.yaml`` into its new folder; returns the run id."""
    run_id = run_id or new_run_id(cfg)
    folder = Path(runs_dir) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    t = store.now()
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO runs(id, name, dataset, method, config, status, folder, created_by, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, cfg.name, cfg.dataset, cfg.method, cfg.model_dump_json(), "created", str(folder),
             created_by, t, t),
        )
    return run_id


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live process on this machine (a zombie counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def worker_alive(run: dict, *, stale_s: float = HEARTBEAT_STALE_S) -> bool:
    hb = run.get("heartbeat_at")
    return bool(run.get("pid")) and pid_alive(run["pid"]) and hb is not None and time.time() - hb < stale_s


def _decorate(r: dict) -> dict:
    r["config"] = json.loads(r["config"])
    r["worker_alive"] = worker_alive(r)
    r["state"] = INTERRUPTED if r["status"] in ACTIVE and not r["worker_alive"] else r["status"]
    return r


def get_run(conn: sqlite3.Connection, run_id: str) -> dict:
    r = store.one(conn, "SELECT * FROM runs WHERE id = ?", (run_id,))
    if r is None:
        raise RunError(f"run {run_id!r} not found; list runs with `baldistill runs list`")
    return _decorate(r)


def run_config(conn: sqlite3.Connection, run_id: str) -> RunConfig:
    return RunConfig.model_validate(get_run(conn, run_id)["config"])


def list_runs(conn: sqlite3.Connection, dataset: str | None = None) -> list[dict]:
    sql, params = "SELECT * FROM runs", []
    if dataset:
        sql += " WHERE dataset = ?"
        params.append(dataset)
    return [_decorate(r) for r in store.rows(conn, sql + " ORDER BY created_at DESC", params)]


# ---------------------------------------------------------------- status, progress, logs


def set_status(conn: sqlite3.Connection, run_id: str, status: str, *, error: str | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    conn.execute("UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                 (status, error, store.now(), run_id))


def set_progress(conn: sqlite3.Connection, run_id: str, stage: int | None, step: str) -> None:
    conn.execute("UPDATE runs SET current_stage = ?, current_step = ?, updated_at = ? WHERE id = ?",
                 (stage, step, store.now(), run_id))
    _maybe_die(stage, step)


def _maybe_die(stage: int | None, step: str) -> None:
    """Fault injection for the kill-at-every-step tests: ``BALDISTILL_FAULT_KILL_AT="<stage>:<step prefix>"``
    makes the worker SIGKILL itself when it reaches that step — the same abrupt death as ``kill -9``, at a
    point a test can name instead of racing for it. Unset in normal use."""
    target = os.environ.get("BALDISTILL_FAULT_KILL_AT")
    if target and f"{stage}:{step}".startswith(target):
        os.kill(os.getpid(), signal.SIGKILL)


def log(conn: sqlite3.Connection, run_id: str, message: str, level: str = "info") -> None:
    conn.execute("INSERT INTO logs(run_id, level, message, at) VALUES (?,?,?,?)",
                 (run_id, level, message, store.now()))


def log_tail(conn: sqlite3.Connection, run_id: str, n: int = 50) -> list[dict]:
    out = store.rows(conn, "SELECT seq, level, message, at FROM logs WHERE run_id = ? ORDER BY seq DESC LIMIT ?",
                     (run_id, n))
    return out[::-1]


# ---------------------------------------------------------------- stages


def set_stage(conn: sqlite3.Connection, run_id: str, stage: int, status: str, *, quota: dict | None = None) -> None:
    """Record that ``stage`` reached ``status`` (every step before it is complete)."""
    t = store.now()
    conn.execute(
        "INSERT INTO stages(run_id, stage, status, quota, started_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT(run_id, stage) DO UPDATE SET status = excluded.status,"
        " quota = COALESCE(excluded.quota, stages.quota),"
        " finished_at = CASE WHEN excluded.status = 'done' THEN ? ELSE stages.finished_at END",
        (run_id, stage, status, store.dumps(quota) if quota is not None else None, t, t),
    )


def stage_status(conn: sqlite3.Connection, run_id: str, stage: int) -> str | None:
    r = store.one(conn, "SELECT status FROM stages WHERE run_id = ? AND stage = ?", (run_id, stage))
    return r["status"] if r else None


def set_stage_detail(conn: sqlite3.Connection, run_id: str, stage: int, **fields) -> None:
    """Set any of ``plan`` (dict), ``train`` (dict), ``adapter_dir`` (str) for a stage."""
    conn.execute("INSERT OR IGNORE INTO stage_details(run_id, stage) VALUES (?, ?)", (run_id, stage))
    for k, v in fields.items():
        if k not in ("plan", "train", "adapter_dir"):
            raise ValueError(f"unknown stage detail {k!r}")
        val = store.dumps(v) if isinstance(v, (dict, list)) else v
        conn.execute(f"UPDATE stage_details SET {k} = ? WHERE run_id = ? AND stage = ?", (val, run_id, stage))


def stage_rows(conn: sqlite3.Connection, run_id: str) -> list[dict]:
    """One row per stage: status, times, quota, plan, training result, adapter folder, pick counts."""
    out = store.rows(
        conn,
        "SELECT s.stage, s.status, s.quota, s.started_at, s.finished_at, d.plan, d.train, d.adapter_dir"
        " FROM stages s LEFT JOIN stage_details d ON d.run_id = s.run_id AND d.stage = s.stage"
        " WHERE s.run_id = ? ORDER BY s.stage", (run_id,),
    )
    counts = {(r["stage"], r["kind"]): r for r in picks.kinds_per_stage(conn, run_id)}
    for r in out:
        for k in ("quota", "plan", "train"):
            r[k] = json.loads(r[k]) if r[k] else None
        kinds = {kind: c for (st, kind), c in counts.items() if st == r["stage"]}
        r["picked"] = {kind: c["n"] for kind, c in kinds.items()}
        r["kept"] = sum(c["kept"] or 0 for c in kinds.values())
        r["dropped"] = sum(c["dropped"] or 0 for c in kinds.values())
    return out


def adapter_dir(conn: sqlite3.Connection, run_id: str, stage: int) -> str | None:
    """The adapter folder a stage trained (None before its training step finished)."""
    r = store.one(conn, "SELECT adapter_dir FROM stage_details WHERE run_id = ? AND stage = ?", (run_id, stage))
    return r["adapter_dir"] if r else None


def last_adapter(conn: sqlite3.Connection, run_id: str, stage: int | None = None) -> str | None:
    """The adapter of ``stage``, or of the run's last trained stage."""
    sql = "SELECT adapter_dir FROM stage_details WHERE run_id = ? AND adapter_dir IS NOT NULL"
    params: list = [run_id]
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    r = store.one(conn, sql + " ORDER BY stage DESC LIMIT 1", params)
    return r["adapter_dir"] if r else None


def train_steps(conn: sqlite3.Connection, run_id: str, stage: int) -> int:
    """Optimizer steps a stage's training took (0 before it trained)."""
    r = store.one(conn, "SELECT train FROM stage_details WHERE run_id = ? AND stage = ?", (run_id, stage))
    return int(json.loads(r["train"]).get("steps") or 0) if r and r["train"] else 0


# ---------------------------------------------------------------- metrics


def write_metrics(conn: sqlite3.Connection, run_id: str, stage: int, split: str, values: list[tuple[str, str, float]],
                  *, step: int = 0, replace: bool = True) -> None:
    """Write ``(domain, metric, value)`` rows; ``replace`` first deletes the stage's rows of that
    split and step, so re-running an evaluation after a crash never duplicates a point."""
    t = store.now()
    with store.transaction(conn):
        if replace:
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND stage = ? AND split = ? AND step = ?",
                         (run_id, stage, split, step))
        conn.executemany(
            "INSERT INTO metrics(run_id, stage, step, split, domain, metric, value, at) VALUES (?,?,?,?,?,?,?,?)",
            [(run_id, stage, step, split, d, m, float(v), t) for d, m, v in values if v is not None],
        )


def has_metrics(conn: sqlite3.Connection, run_id: str, stage: int, split: str) -> bool:
    return store.one(conn, "SELECT 1 AS x FROM metrics WHERE run_id = ? AND stage = ? AND split = ? LIMIT 1",
                     (run_id, stage, split)) is not None


def clear_metrics(conn: sqlite3.Connection, run_id: str, stage: int, split: str) -> None:
    conn.execute("DELETE FROM metrics WHERE run_id = ? AND stage = ? AND split = ?", (run_id, stage, split))


def metrics(conn: sqlite3.Connection, run_id: str, split: str | None = None) -> list[dict]:
    sql = "SELECT stage, step, split, domain, metric, value, at FROM metrics WHERE run_id = ?"
    params: list = [run_id]
    if split:
        sql += " AND split = ?"
        params.append(split)
    return store.rows(conn, sql + " ORDER BY stage, step, split, domain, metric", params)


# ---------------------------------------------------------------- experiment tracker


def set_tracker(conn: sqlite3.Connection, run_id: str, backend: str, *, status: str,
                tracker_run_id: str | None = None, url: str | None = None, message: str | None = None) -> None:
    """Record the tracker run this run reports to (``reports.tracking``); kept across resumes."""
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO trackers(run_id, backend, tracker_run_id, url, status, message, updated_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id, backend) DO UPDATE SET"
            " tracker_run_id = COALESCE(excluded.tracker_run_id, tracker_run_id), url = COALESCE(excluded.url, url),"
            " status = excluded.status, message = excluded.message, updated_at = excluded.updated_at",
            (run_id, backend, tracker_run_id, url, status, message, store.now()))


def tracker(conn: sqlite3.Connection, run_id: str, backend: str | None = None) -> dict | None:
    """The run's tracker record ``{backend, tracker_run_id, url, status, message}`` (latest), or None."""
    sql, params = "SELECT * FROM trackers WHERE run_id = ?", [run_id]
    if backend:
        sql, params = sql + " AND backend = ?", params + [backend]
    return store.one(conn, sql + " ORDER BY updated_at DESC LIMIT 1", params)


# ---------------------------------------------------------------- spend and progress


def spend(conn: sqlite3.Connection, run_id: str) -> dict:
    """Teacher spend of the run (ledger) against its budget."""
    cfg = run_config(conn, run_id)
    from baldistill_core.teacher import ledger

    summary = ledger.summary(conn, run_id)  # the ledger module owns every sum over the ledger
    agg = dict(calls=summary["calls"], paid_calls=summary["calls"] - summary["cached_calls"],
               cached_calls=summary["cached_calls"], examples=summary["examples"], cost_usd=summary["cost_usd"],
               unpriced_calls=summary["unpriced_calls"], cost_text=ledger.cost_text(summary))
    used = picks.budget_used(conn, run_id)
    return dict(budget=cfg.budget, selected=used, cost_cap_usd=cfg.teacher.cost_cap_usd, **agg,
                ledger=summary)


def _eta(cfg: RunConfig, run: dict, st: list[dict], done: list[dict], durations: list[float], k: int) -> float:
    """Seconds left: the remaining stages at the pace of the slowest finished one (stage 0 scores no IFD, so
    later stages run longer than the mean said), plus the final test evaluation, estimated from the base
    student's live evaluation before stage 0 (scaled by final / live examples per domain)."""
    per = max(durations)
    current = next((s for s in st if s["status"] != "done"), None)
    elapsed = time.time() - current["started_at"] if current and current["started_at"] else 0.0
    left = max(0.0, per * (k - len(done)) - elapsed)
    first = min((s["started_at"] for s in st if s["started_at"]), default=None)
    base_eval = first - run["created_at"] if first and run.get("created_at") else 0.0
    if 0 < base_eval < 3 * 3600:
        ratio = (cfg.eval.final_per_domain or 4 * cfg.eval.live_per_domain) / cfg.eval.live_per_domain
        left += base_eval * ratio
    return left


def progress(conn: sqlite3.Connection, run_id: str) -> dict:
    """Stage i of K, the current step, and an ETA from the finished stages' durations."""
    run = get_run(conn, run_id)
    cfg = RunConfig.model_validate(run["config"])
    k = effective_stages(cfg)
    st = stage_rows(conn, run_id)
    done = [s for s in st if s["status"] == "done" and s["finished_at"] and s["started_at"]]
    durations = [s["finished_at"] - s["started_at"] for s in done]
    eta = None
    if durations and run["status"] in ACTIVE + ("created",):
        eta = _eta(cfg, run, st, done, durations, k)
    return dict(stage=run["current_stage"], stages=k, stages_done=len(done), step=run["current_step"],
                status=run["status"], state=run["state"], eta_s=eta,
                fraction=len(done) / k if k else 1.0, heartbeat_at=run["heartbeat_at"])
