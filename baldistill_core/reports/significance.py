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
    """Add ``ci = {macro: Interval, micro, head, tail}``, ``domain_ci = {domain: Interval}`` (or None)
    and ``n_items`` to every score row."""
    for s in scores:
        items = items_of(conn, s)
        s["n_items"] = len(items)
        if not items:
            s["ci"] = s["domain_ci"] = None
            continue
        head, tail = _groups(conn, s["dataset"])
        s["ci"] = uncertainty.confidence_intervals(items, s["metric"], head=head, tail=tail, n_boot=n_boot, seed=seed)
        s["domain_ci"] = uncertainty.domain_intervals(items, s["metric"], n_boot=n_boot, seed=seed)
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
    from baldistill_core.selection.methods import label as method_label

    name, method = score.get("name") or score["run_id"], score.get("method") or ""
    return name if not method or method in name or method_label(method) in name else f"{name} ({method_label(method)})"


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


def group_summary(conn: sqlite3.Connection, sid: str, *, reference: str | None = None, n_boot: int = N_BOOT,
                  seed: int = SEED) -> dict:
    """A sweep as mean ± CI over seeds and items per method, and each method minus ``reference``
    (default Random FT CoT when the sweep has it) paired by seed:
    ``{sweep, metric, rows: [{method, seeds, runs, ci}], diffs: {method: {stat: Interval}}, verdicts}``."""
    from baldistill_core.reports import compare
    from baldistill_core.runs import sweeps

    sw = sweeps.get(conn, sid)
    head, tail = _groups(conn, sw["dataset"])
    by_method: dict[str, dict[int, list[dict]]] = {}
    metric = None
    for m in sweeps.members(conn, sid):
        s = compare.run_scores(conn, m["run_id"])
        items = items_of(conn, s) if s["split"] == "test" else []
        if items:
            by_method.setdefault(m["method"], {})[m["seed"]] = items
            metric = s["metric"]
    rows = [dict(method=meth, seeds=sorted(per), runs=len(per),
                 ci=uncertainty.group_intervals([per[k] for k in sorted(per)], metric, head=head, tail=tail,
                                                n_boot=n_boot, seed=seed))
            for meth, per in by_method.items()]
    reference = reference or ("random_ft_cot" if "random_ft_cot" in sw["methods"] else None)
    diffs, verdicts = {}, {}
    ref = by_method.get(reference or "", {})
    for meth, per in by_method.items():
        common = sorted(set(per) & set(ref))
        if meth == reference or not common:
            continue
        diffs[meth] = uncertainty.group_paired([(per[k], ref[k]) for k in common], metric, head=head, tail=tail,
                                               n_boot=n_boot, seed=seed)
        verdicts[meth] = {k: uncertainty.verdict(meth, reference, k, iv) for k, iv in diffs[meth].items()}
    return dict(sweep=sid, name=sw["name"], metric=metric, reference=reference, rows=rows, diffs=diffs,
                verdicts=verdicts, methods=sw["methods"], seeds=sw["seeds"])


def format_group(summary: dict) -> str:
    lines = [f"sweep {summary['sweep']} ({summary['metric']}): mean over seeds [95% CI over seeds and items]"]
    for r in summary["rows"]:
        lines.append(f"  {r['method']:<16} seeds {','.join(map(str, r['seeds']))}: "
                     + "  ".join(f"{uncertainty.LABELS[k]} {iv.points()}" for k, iv in r["ci"].items()))
    for meth, vs in summary["verdicts"].items():
        for k in vs:
            lines.append(f"  {vs[k]}")
    if not summary["rows"]:
        lines.append("  no finished run with a final test evaluation yet")
    return "\n".join(lines)
