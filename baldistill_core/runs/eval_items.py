"""Per-item outcomes of a run's evaluations (the ``eval_items`` table): what the confidence
intervals and paired comparisons of ``evaluation.uncertainty`` resample.

The pipeline writes one row per test item for every live and final evaluation, next to the
aggregate rows of ``metrics``; re-running an evaluation replaces its rows.
"""

from __future__ import annotations

import sqlite3

from baldistill_core import store

_COLS = ("example_id", "domain", "gold", "pred", "pred_label", "correct", "token_f1")


def write(conn: sqlite3.Connection, run_id: str, stage: int, split: str, predictions: list[dict]) -> None:
    """Replace the outcomes of ``run_id``'s ``split`` evaluation at ``stage`` with ``predictions``
    (``EvalReport.predictions``: id, domain, gold, pred, correct, [pred_label], [token_f1])."""
    with store.transaction(conn):
        conn.execute("DELETE FROM eval_items WHERE run_id = ? AND stage = ? AND split = ?", (run_id, stage, split))
        conn.executemany(
            "INSERT INTO eval_items(run_id, stage, split, example_id, domain, gold, pred, pred_label, correct,"
            " token_f1) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(run_id, stage, split, str(p["id"]), p["domain"], str(p["gold"]),
              None if p.get("pred") is None else str(p["pred"]), p.get("pred_label"), int(bool(p["correct"])),
              p.get("token_f1")) for p in predictions])


def read(conn: sqlite3.Connection, run_id: str, stage: int, split: str) -> list[dict]:
    """The outcomes as items for ``evaluation.uncertainty`` (``id`` = example id), by example id."""
    rows = store.rows(conn, f"SELECT {', '.join(_COLS)} FROM eval_items WHERE run_id = ? AND stage = ? AND split = ?"
                            " ORDER BY example_id", (run_id, stage, split))
    for r in rows:
        r["id"] = r.pop("example_id")
        r["correct"] = bool(r["correct"])
    return rows


def has_items(conn: sqlite3.Connection, run_id: str) -> bool:
    return store.one(conn, "SELECT 1 AS x FROM eval_items WHERE run_id = ? LIMIT 1", (run_id,)) is not None
