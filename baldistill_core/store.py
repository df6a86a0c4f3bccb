"""The workspace database: the one write path for shared state.

SQLite in WAL mode inside the workspace folder. The UI and the background worker share nothing
but this database and the run folders, so every piece of state a page shows is read from here.
All SQL lives in this module and in the ``*_store`` helpers of the module that owns a table
(declared in ``schema.py`` so the DDL stays in one place); pages never write SQL.
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

from baldistill_core.schema import ADDED_COLUMNS, SCHEMA, SCHEMA_VERSION  # noqa: F401  (the DDL, one place)

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
    for table, column, decl in ADDED_COLUMNS:  # a workspace made before the column existed
        if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
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
        conn.execute("DELETE FROM teacher_rationales WHERE dataset = ?", (name,))
        conn.execute("UPDATE teacher_imports SET current = 0 WHERE dataset = ?", (name,))
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
