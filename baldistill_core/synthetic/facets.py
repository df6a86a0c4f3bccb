"""Filter choices of the review queue: which domains, runs and stages have synthetic examples."""

from __future__ import annotations

import sqlite3

from baldistill_core import store
from baldistill_core.synthetic.review import IMPORTED


def facets(conn: sqlite3.Connection, dataset: str) -> dict:
    """``{total, domains: [..], runs: [run id or review.IMPORTED], stages: [int]}`` of a dataset's queue."""
    rows = store.rows(conn, "SELECT domain, run_id, stage, COUNT(*) AS n FROM synthetic WHERE dataset = ?"
                            " GROUP BY domain, run_id, stage", (dataset,))
    return dict(
        total=sum(r["n"] for r in rows),
        domains=sorted({r["domain"] for r in rows}),
        runs=sorted({IMPORTED if r["run_id"] is None else r["run_id"] for r in rows}),
        stages=sorted({r["stage"] for r in rows if r["stage"] is not None}),
    )
