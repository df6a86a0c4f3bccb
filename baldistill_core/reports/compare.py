"""Comparison of runs: the scores a stakeholder compares (macro / micro / large / small domains), per-domain
scores, and the budget each run spent — as plain rows, ready for a table, a chart or a CSV file.

A run is scored by its final test evaluation when it has one, else by the latest live evaluation
(a run still in progress can be compared, marked as such), with the dataset's primary metric
(``evaluate.primary_metric``: macro F1 for classification, accuracy for math).
"""

from __future__ import annotations

import csv
import io
import sqlite3

from baldistill_core import store
from baldistill_core.evaluation import evaluate
from baldistill_core.runs import records as runs
from baldistill_core.selection.methods import label as method_label

GROUPS = ("_macro", "_micro", "_head", "_tail")
# The scores first: a table cut at the right edge still shows what a comparison is for.
# "large domains" / "small domains" are the evaluation's size groups (stored as _head / _tail, see
# evaluate.GROUP_NAMES), not the method's per-stage head and tail.
COLUMNS = ("name", "method", "macro", "micro", "large domains", "small domains", "budget", "selected", "cost_usd",
           "status", "split", "stage", "metric", "dataset", "run_id")


def _task_type(conn: sqlite3.Connection, dataset: str) -> str:
    d = store.get_dataset(conn, dataset)
    return (d or {}).get("spec", {}).get("task_type", "classification")


def run_scores(conn: sqlite3.Connection, run_id: str) -> dict:
    """One run's headline scores: ``{run_id, name, method, dataset, status, split, stage, metric,
    macro, micro, large domains, small domains, per_domain: {domain: value}, budget, selected, cost_usd}``.

    Scores are ``None`` when the run has not been evaluated yet.
    """
    run = runs.get_run(conn, run_id)
    metric = evaluate.primary_metric(_task_type(conn, run["dataset"]))
    rows = store.rows(conn, "SELECT stage, split, domain, value FROM metrics WHERE run_id = ? AND metric = ?"
                            " AND split IN ('test', 'live')", (run_id, metric))
    split = "test" if any(r["split"] == "test" for r in rows) else ("live" if rows else None)
    rows = [r for r in rows if r["split"] == split]
    stage = max((r["stage"] for r in rows), default=None)
    at_stage = {r["domain"]: r["value"] for r in rows if r["stage"] == stage}
    spent = runs.spend(conn, run_id)
    return dict(
        run_id=run_id, name=run["name"], method=run["method"], dataset=run["dataset"], status=run["state"],
        split=split, stage=stage, metric=metric,
        macro=at_stage.get("_macro"), micro=at_stage.get("_micro"),
        **{evaluate.group_name("_head"): at_stage.get("_head"), evaluate.group_name("_tail"): at_stage.get("_tail")},
        per_domain={d: v for d, v in sorted(at_stage.items()) if not d.startswith("_")},
        budget=spent["budget"], selected=spent["selected"], cost_usd=round(float(spent.get("cost_usd") or 0.0), 6),
    )


def compare(conn: sqlite3.Connection, run_ids: list[str]) -> list[dict]:
    """``run_scores`` of every run, in the order given (unknown ids raise ``runs.RunError``)."""
    return [run_scores(conn, r) for r in run_ids]


def table(scores: list[dict]) -> list[dict]:
    """Flat rows (no per-domain dict) for a table and the CSV file; the method as its label."""
    return [{c: (method_label(s[c]) if c == "method" else s[c]) for c in COLUMNS} for s in scores]


def per_domain(scores: list[dict]) -> list[dict]:
    """Long rows ``{run_id, name, domain, value}`` over the union of the runs' domains."""
    return [dict(run_id=s["run_id"], name=s["name"], domain=d, value=v)
            for s in scores for d, v in s["per_domain"].items()]


def to_csv(scores: list[dict]) -> str:
    """The comparison as CSV: one row per run with the headline scores, then one column per domain.

    >>> s = [dict(run_id="r1", name="a", method="m", dataset="d", status="finished", split="test",
    ...           stage=1, metric="f1", macro=0.5, micro=0.6, budget=10,
    ...           selected=10, cost_usd=0.0, per_domain={"x": 0.5},
    ...           **{"large domains": 0.7, "small domains": 0.4})]
    >>> to_csv(s).splitlines()[0].split(",")[-1]
    'domain:x'
    >>> to_csv(s).splitlines()[1].split(",")[:3]
    ['a', 'm', '0.5']
    >>> to_csv(s).splitlines()[0].split(",")[4:6]
    ['large domains', 'small domains']
    """
    domains = sorted({d for s in scores for d in s["per_domain"]})
    buf = io.StringIO()
    flat = table(scores)
    header = list(COLUMNS)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header + [f"domain:{d}" for d in domains])
    for s, row in zip(scores, flat):
        w.writerow([row[c] for c in header] + [s["per_domain"].get(d, "") for d in domains])
    return buf.getvalue()


def comparable_runs(conn: sqlite3.Connection, dataset: str | None = None) -> list[dict]:
    """Runs that have at least one evaluation (``id, name, method, dataset, state``), newest first."""
    have = {r["run_id"] for r in store.rows(conn, "SELECT DISTINCT run_id FROM metrics WHERE split IN ('test', 'live')")}
    return [dict(id=r["id"], name=r["name"], method=r["method"], dataset=r["dataset"], state=r["state"])
            for r in runs.list_runs(conn, dataset) if r["id"] in have]
