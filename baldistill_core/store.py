"""The workspace database: the one write path for shared state.

SQLite in WAL mode inside the workspace folder. The UI and the background worker share nothing
but this database and the run folders, so every piece of state a page shows is read from here.
All SQL lives in this module and in the ``*_store`` helpers of the module that owns a table
(declared here so the schema stays in one place); pages never write SQL.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);

CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,              -- DatasetSpec as JSON
    content_hash TEXT NOT NULL,      -- hash of the loaded train+test rows
    n_train INTEGER NOT NULL,
    n_test INTEGER NOT NULL,
    label_set TEXT,                  -- JSON list for classification tasks
    readme TEXT,
    bundled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS examples (
    dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    split TEXT NOT NULL CHECK (split IN ('train', 'test')),
    row INTEGER NOT NULL,            -- position in the source file (0-based)
    domain TEXT NOT NULL,
    input TEXT NOT NULL,
    answer TEXT NOT NULL,
    reference TEXT,
    PRIMARY KEY (dataset, id)
);
-- Per domain in file order: counts per domain and the example browser's pages (LIMIT/OFFSET) without a sort.
DROP INDEX IF EXISTS examples_domain;
CREATE INDEX IF NOT EXISTS examples_domain_row ON examples(dataset, split, domain, row);
-- Covering index of the selection pool: ids per domain in file order without reading any text.
CREATE INDEX IF NOT EXISTS examples_pool ON examples(dataset, split, row, domain, id);

-- Teacher: one cache for every call, keyed by backend + model + prompt + parameters.
CREATE TABLE IF NOT EXISTS teacher_cache (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

-- Teacher: the ledger. One row per logical call a run asked for (cached ones too, with cost 0).
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    key TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('rationale', 'synthesis', 'verification', 'other')),
    cached INTEGER NOT NULL,
    ok INTEGER NOT NULL DEFAULT 1,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    examples INTEGER NOT NULL DEFAULT 0,  -- budget units (examples annotated/synthesized)
    error TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_run ON ledger(run_id);

-- Synthetic tail examples and their review state.
CREATE TABLE IF NOT EXISTS synthetic (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    run_id TEXT,
    stage INTEGER,
    domain TEXT NOT NULL,
    input TEXT NOT NULL,
    answer TEXT NOT NULL,
    rationale TEXT NOT NULL DEFAULT '',
    teacher_answer TEXT,
    source TEXT NOT NULL DEFAULT 'teacher',   -- teacher | recorded
    verified INTEGER,                          -- NULL = not checked, 1 agree, 0 disagree
    verify_answer TEXT,
    duplicate_of TEXT,                         -- id of a near-duplicate, if any
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'edited', 'rejected')),
    original TEXT,                             -- JSON of input/answer/rationale before the first edit
    reason TEXT,
    reviewer TEXT,
    decided_at REAL,
    version INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS synthetic_queue ON synthetic(dataset, status, domain);

-- Audit trail: every review decision, never updated.
CREATE TABLE IF NOT EXISTS reviews (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    synthetic_id TEXT NOT NULL,
    action TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    reason TEXT,
    before TEXT,
    after TEXT,
    at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    method TEXT NOT NULL,
    config TEXT NOT NULL,            -- RunConfig as JSON (never holds secrets)
    status TEXT NOT NULL,            -- created | running | awaiting_review | cancelling | cancelled | failed | finished
    folder TEXT NOT NULL,
    pid INTEGER,
    heartbeat_at REAL,
    current_stage INTEGER,
    current_step TEXT,
    error TEXT,
    created_by TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending | selecting | annotating | training | evaluating | done
    quota TEXT,                      -- JSON {domain: n}
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, stage)
);

-- What each stage picked, and what happened to it.
CREATE TABLE IF NOT EXISTS selections (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    example_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    kind TEXT NOT NULL,              -- head | tail_real | synthetic | duplicate
    ifd REAL,
    kept INTEGER,                    -- NULL until annotated; 0 = dropped
    drop_reason TEXT,
    rationale TEXT,
    PRIMARY KEY (run_id, stage, example_id, kind)
);

CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    split TEXT NOT NULL,             -- live | test | train
    domain TEXT NOT NULL,            -- a domain name, or _macro / _micro / _head / _tail / _all
    metric TEXT NOT NULL,            -- accuracy | f1 | token_f1 | loss | ...
    value REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, stage);

CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, seq);

-- Per-stage detail the pipeline writes (owned by baldistill_core.runs.records): the allocation
-- {domain: {quota, pool, real, fill, role}}, the training result, and the stage's adapter folder.
CREATE TABLE IF NOT EXISTS stage_details (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    plan TEXT,
    train TEXT,
    adapter_dir TEXT,
    PRIMARY KEY (run_id, stage)
);

-- IFD scores, cached by student checkpoint + example + variant.
CREATE TABLE IF NOT EXISTS ifd_cache (
    checkpoint TEXT NOT NULL,
    example_key TEXT NOT NULL,
    variant TEXT NOT NULL,
    score REAL,
    loss_cond REAL NOT NULL,
    loss_uncond REAL NOT NULL,
    rationale TEXT NOT NULL,
    PRIMARY KEY (checkpoint, example_key, variant)
);
"""

_local = threading.local()


class StoreError(BalDistillError, RuntimeError):
    pass


def connect(db_path: str | Path, *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """Open (creating if needed) the workspace database with the schema applied.

    WAL lets readers (pages) go on while the worker writes; ``busy_timeout`` makes a writer wait
    for a lock instead of failing, so a long read never surfaces "database is locked" to a user.
    """
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db_path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
    )
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front so two writers never deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def rows(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[dict]:
    return [dict(r) for r in conn.execute(sql, tuple(params)).fetchall()]


def one(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> dict | None:
    r = conn.execute(sql, tuple(params)).fetchone()
    return dict(r) if r is not None else None


def now() -> float:
    return time.time()


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


# ---------------------------------------------------------------- datasets and examples


# Dataset and example rows are written by ``baldistill_core.data.importing`` (streaming, chunked, one
# transaction) and ``set_domains`` below.


def list_datasets(conn: sqlite3.Connection) -> list[dict]:
    return rows(
        conn,
        "SELECT name, n_train, n_test, content_hash, bundled, created_at FROM datasets ORDER BY bundled DESC, name",
    )


def get_dataset(conn: sqlite3.Connection, name: str) -> dict | None:
    d = one(conn, "SELECT * FROM datasets WHERE name = ?", (name,))
    if d is not None:
        d["spec"] = json.loads(d["spec"])
        d["label_set"] = json.loads(d["label_set"]) if d["label_set"] else None
    return d


def delete_dataset(conn: sqlite3.Connection, name: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM examples WHERE dataset = ?", (name,))
        conn.execute("DELETE FROM datasets WHERE name = ?", (name,))


def examples(
    conn: sqlite3.Connection,
    dataset: str,
    split: str = "train",
    *,
    domain: str | None = None,
    ids: list[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict]:
    sql = "SELECT id, split, row, domain, input, answer, reference FROM examples WHERE dataset = ? AND split = ?"
    params: list[Any] = [dataset, split]
    if domain is not None:
        sql += " AND domain = ?"
        params.append(domain)
    if ids is not None:
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        params.extend(ids)
    sql += " ORDER BY row"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params.extend([limit, offset])
    return rows(conn, sql, params)


def pool_rows(conn: sqlite3.Connection, dataset: str, split: str = "train") -> list[dict]:
    """``{id, row, domain}`` of every example in file order: the selection pool, read from the covering
    index ``examples_pool`` (no input or answer text is loaded)."""
    cur = conn.execute("SELECT id, row, domain FROM examples INDEXED BY examples_pool WHERE dataset = ? AND split = ?"
                       " ORDER BY row", (dataset, split))
    cur.row_factory = None
    return [{"id": i, "row": r, "domain": d} for i, r, d in cur]


def inputs_by_id(conn: sqlite3.Connection, dataset: str, ids: Iterable[str], *, chunk: int = 900) -> dict[str, str]:
    """``{id: input}`` for the given example ids only (the picks a page shows, the candidates IFD scores)."""
    ids = list(dict.fromkeys(ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        cur = conn.execute(f"SELECT id, input FROM examples WHERE dataset = ? AND id IN ({','.join('?' * len(part))})",
                           [dataset, *part])
        cur.row_factory = None
        out.update(cur.fetchall())
    return out


def domain_counts(conn: sqlite3.Connection, dataset: str, split: str = "train") -> dict[str, int]:
    return {
        r["domain"]: r["n"]
        for r in rows(
            conn,
            "SELECT domain, COUNT(*) AS n FROM examples WHERE dataset = ? AND split = ? GROUP BY domain"
            " ORDER BY n DESC, domain",
            (dataset, split),
        )
    }


def set_domains(conn: sqlite3.Connection, dataset: str, mapping: dict[str, str]) -> None:
    """Assign domains by example id (pseudo-domains from clusters)."""
    with transaction(conn):
        conn.executemany(
            "UPDATE examples SET domain = ? WHERE dataset = ? AND id = ?",
            [(dom, dataset, ex_id) for ex_id, dom in mapping.items()],
        )


def workspace_db_path(workspace: str | Path) -> Path:
    return Path(workspace) / "studio.db"


def default_workspace() -> Path:
    return Path(os.environ.get("BALDISTILL_WORKSPACE", "workspace")).resolve()
