"""Uncertainty of a comparison: each run's scores with 95% bootstrap intervals, and the paired
difference of two runs on the items both were scored on, with a plain verdict.

Reads the per-item outcomes (``runs.eval_items``) of the evaluation ``compare.run_scores`` picked
(final test, else the latest live one) and hands them to ``evaluation.uncertainty``. A run
evaluated before per-item outcomes were kept has no intervals (``None``): re-evaluate it.
"""

from __future__ import annotations

import sqlite3

from baldistill_core import store
from baldistill_core.evaluation import uncertainty
from baldistill_core.evaluation.evaluate import head_tail_groups
from baldistill_core.runs import eval_items

N_BOOT = 1000
SEED = 0


def _groups(conn: sqlite3.Connection, dataset: str) -> tuple[list[str], list[str]]:
    return head_tail_groups(store.domain_counts(conn, dataset, "train"))


def items_of(conn: sqlite3.Connection, score: dict) -> list[dict]:
    """The per-item outcomes behind ``score`` (a ``compare.run_scores`` row); [] when none were kept."""
    if score.get("split") is None:
        return []
    return eval_items.read(conn, score["run_id"], score["stage"], score["split"])


def add_intervals(conn: sqlite3.Connection, scores: list[dict], *, n_boot: int = N_BOOT, seed: int = SEED) -> list[dict]:
    """Add ``ci = {macro: Interval, micro, head, tail}`` (or None) and ``n_items`` to every score row."""
    for s in scores:
        items = items_of(conn, s)
        s["n_items"] = len(items)
        if not items:
            s["ci"] = None
            continue
        head, tail = _groups(conn, s["dataset"])
        s["ci"] = uncertainty.confidence_intervals(items, s["metric"], head=head, tail=tail, n_boot=n_boot, seed=seed)
    return scores


def interval_rows(scores: list[dict]) -> list[dict]:
    """Flat rows ``{name, run_id, stat, value, low, high}`` (fractions) for a table, chart or CSV."""
    out = []
    for s in scores:
        for stat, iv in (s.get("ci") or {}).items():
            out.append(dict(name=s["name"], method=s["method"], run_id=s["run_id"], stat=stat,
                            value=iv.value, low=iv.low, high=iv.high))
    return out


def paired(conn: sqlite3.Connection, a: dict, b: dict, *, n_boot: int = N_BOOT, seed: int = SEED) -> dict | None:
    """A − B on shared items: ``{a, b, shared, only_a, only_b, diffs, verdicts, per_domain}``;
    None when either run has no per-item outcomes."""
    ia, ib = items_of(conn, a), items_of(conn, b)
    if not ia or not ib:
        return None
    if a["metric"] != b["metric"]:
        raise ValueError(f"runs {a['run_id']} and {b['run_id']} are scored by different metrics "
                         f"({a['metric']} vs {b['metric']}); compare runs of the same dataset")
    head, tail = _groups(conn, a["dataset"])
    p = uncertainty.paired_difference(ia, ib, a["metric"], head=head, tail=tail, n_boot=n_boot, seed=seed)
    na, nb = label(a), label(b)
    return dict(a=a["run_id"], b=b["run_id"], name_a=na, name_b=nb, shared=p.shared, only_a=p.only_a,
                only_b=p.only_b, diffs=p.diffs, per_domain=p.per_domain,
                verdicts={k: uncertainty.verdict(na, nb, k, iv) for k, iv in p.diffs.items()})


def label(score: dict) -> str:
    """How a run is named in a verdict: its name, with the method when the name does not say it."""
    name, method = score.get("name") or score["run_id"], score.get("method") or ""
    return name if method in name else f"{name} ({method})"


def format_report(scores: list[dict], pairs: list[dict]) -> str:
    """Plain text for the CLI: scores with intervals, then each paired difference and verdict."""
    lines = []
    for s in scores:
        head = f"{s['name']} · {s['method']} · {s['run_id']} ({s['split'] or 'not evaluated'}, {s['metric']})"
        if not s.get("ci"):
            lines.append(f"{head}: no per-item outcomes kept; re-run `baldistill evaluate {s['run_id']}`")
            continue
        lines.append(f"{head}, {s['n_items']} items")
        for stat, iv in s["ci"].items():
            lines.append(f"  {uncertainty.LABELS[stat]:<11} {iv.points()}")
    for p in pairs:
        lines.append("")
        lines.append(f"{p['name_a']} − {p['name_b']} on {p['shared']} shared items"
                     + (f" ({p['only_a']} + {p['only_b']} unshared left out)" if p["only_a"] or p["only_b"] else ""))
        for stat in p["diffs"]:
            lines.append(f"  {p['verdicts'][stat]}")
        lines.append("  per domain (A − B, points; * = one item's outcome decides it):")
        for r in p["per_domain"]:
            flag = " *" if r["one_item"] else ""
            lines.append(f"    {r['domain'][:28]:<28} n={r['n']:<4} {100 * r['diff']:+7.1f}{flag}"
                         + (f"  [{r['group']}]" if r["group"] else ""))
    return "\n".join(lines)
