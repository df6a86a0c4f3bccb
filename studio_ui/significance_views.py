"""The Compare page's uncertainty: scores with 95% bootstrap intervals (error bars), and whether
one run really beats another (paired difference, plain verdict, per-domain differences)."""

from __future__ import annotations

from baldistill_core.selection.methods import label as method_label

import plotly.graph_objects as go
import streamlit as st

from baldistill_core.evaluation.uncertainty import LABELS, STATS
from baldistill_core.reports import significance


def interval_columns(scores: list[dict]) -> list[dict]:
    """``compare.table`` rows get a ``<stat> 95% CI`` text column per score."""
    from baldistill_core.reports import compare

    rows = compare.table(scores)
    for row, s in zip(rows, scores):
        for stat in STATS:
            iv = (s.get("ci") or {}).get(stat)
            row[f"{stat} 95% CI"] = f"[{iv.low:.3f}, {iv.high:.3f}]" if iv else ""
        row["items"] = s.get("n_items", 0)
    return rows


def headline_bars(scores: list[dict], metric: str) -> go.Figure:
    """Macro / micro / head / tail of every run, with asymmetric 95% error bars."""
    fig = go.Figure()
    for s in scores:
        ci = s.get("ci") or {}
        stats = [k for k in STATS if k in ci]
        fig.add_bar(name=f"{s['name']} ({method_label(s['method'])}) · {s['run_id'][-4:]}", x=[LABELS[k] for k in stats],
                    y=[ci[k].value for k in stats],
                    error_y=dict(type="data", symmetric=False, array=[ci[k].high - ci[k].value for k in stats],
                                 arrayminus=[ci[k].value - ci[k].low for k in stats]),
                    hovertemplate="%{x}: %{y:.3f}<extra></extra>")
    fig.update_layout(barmode="group", height=380, margin=dict(l=10, r=10, t=40, b=10),
                      title=f"{metric} with 95% bootstrap intervals (resampled within each domain)",
                      yaxis=dict(title=metric, range=[0, 1.05]), legend=dict(orientation="h"))
    return fig


def difference_bars(pair: dict) -> go.Figure:
    """A − B in points per score, with the paired interval; the zero line is 'no difference'."""
    stats = list(pair["diffs"])
    d = pair["diffs"]
    colors = ["#2b8a3e" if d[k].low > 0 else ("#c92a2a" if d[k].high < 0 else "#868e96") for k in stats]
    fig = go.Figure(go.Bar(
        x=[LABELS[k] for k in stats], y=[100 * d[k].value for k in stats], marker_color=colors,
        error_y=dict(type="data", symmetric=False, array=[100 * (d[k].high - d[k].value) for k in stats],
                     arrayminus=[100 * (d[k].value - d[k].low) for k in stats]),
        hovertemplate="%{x}: %{y:+.1f} points<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot", line_color="#495057")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="points (A − B)",
                      title=f"{pair['name_a']} − {pair['name_b']}, paired over {pair['shared']} items")
    return fig


def _baseline_index(scores: list[dict]) -> int:
    """Random FT CoT is the natural reference when it is among the runs; else the last one."""
    for i, s in enumerate(scores):
        if s["method"] == "random_ft_cot":
            return i
    return len(scores) - 1


def render_paired(conn, scores: list[dict]) -> None:
    """The 'is the difference real?' section: each run against a chosen reference run."""
    with_items = [s for s in scores if s.get("ci")]
    if len(with_items) < 2:
        st.caption("Paired differences need two runs whose per-item outcomes were kept "
                   "(runs evaluated by this version of the studio).")
        return
    st.subheader("Is the difference real?")
    names = {s["run_id"]: f"{s['name']} · {method_label(s['method'])} · {s['run_id'][-4:]}" for s in with_items}
    ref_id = st.selectbox("Against the reference run", list(names), index=_baseline_index(with_items),
                          format_func=names.get, key="compare_reference")
    ref = next(s for s in with_items if s["run_id"] == ref_id)
    for s in with_items:
        if s["run_id"] == ref_id:
            continue
        try:
            pair = significance.paired(conn, s, ref)
        except ValueError as e:
            st.warning(str(e))
            continue
        for stat in pair["diffs"]:
            st.text(pair["verdicts"][stat])
        st.plotly_chart(difference_bars(pair), width="stretch", key=f"cmp_diff_{s['run_id']}")
        rows = [dict(domain=r["domain"], group=r["group"], items=r["n"], A=r["a"], B=r["b"],
                     difference_points=round(100 * r["diff"], 1), one_item_decides=r["one_item"])
                for r in pair["per_domain"]]
        one = sum(r["one_item"] for r in pair["per_domain"])
        st.caption(f"Per domain (A = {pair['name_a']}, B = {pair['name_b']}): {one} of {len(rows)} domains differ "
                   "by at most one item's outcome — those differences are flagged and say nothing alone.")
        st.dataframe(rows, hide_index=True, width="stretch", key=f"cmp_dom_{s['run_id']}",
                     column_config={"A": st.column_config.NumberColumn(format="%.3f"),
                                    "B": st.column_config.NumberColumn(format="%.3f")})


def group_bars(summary: dict) -> go.Figure:
    """A sweep's mean score per method, with the 95% interval over seeds and items."""
    fig = go.Figure()
    for r in summary["rows"]:
        ci = r["ci"]
        stats = [k for k in STATS if k in ci]
        fig.add_bar(name=f"{r['method']} ({r['runs']} seeds)", x=[LABELS[k] for k in stats], y=[ci[k].value for k in stats],
                    error_y=dict(type="data", symmetric=False, array=[ci[k].high - ci[k].value for k in stats],
                                 arrayminus=[ci[k].value - ci[k].low for k in stats]))
    fig.update_layout(barmode="group", height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"),
                      title=f"Sweep: mean {summary['metric']} over seeds, 95% interval over seeds and items",
                      yaxis=dict(title=summary["metric"], range=[0, 1.05]))
    return fig


def render_sweeps(conn, dataset: str) -> None:
    """Seed sweeps of this dataset (``baldistill sweep``): each method as mean ± CI over its seeds."""
    from baldistill_core.runs import sweeps

    found = sweeps.list_sweeps(conn, dataset)
    if not found:
        return
    st.subheader("Seed sweeps")
    names = {s["id"]: f"{s['name']} · {', '.join(s['methods'])} · seeds {','.join(map(str, s['seeds']))}"
             for s in found}
    sid = st.selectbox("Sweep", list(names), format_func=names.get, key="compare_sweep")
    summary = significance.group_summary(conn, sid)
    if not summary["rows"]:
        st.info("No run of this sweep has a final test evaluation yet; continue it with "
                f"`baldistill sweep --id {sid}`.")
        return
    rows = []
    for r in summary["rows"]:
        row = dict(method=r["method"], seeds=",".join(map(str, r["seeds"])))
        for k, iv in r["ci"].items():
            row[k] = round(iv.value, 3)
            row[f"{k} 95% CI"] = f"[{iv.low:.3f}, {iv.high:.3f}]"
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch", key="cmp_sweep_table")
    st.plotly_chart(group_bars(summary), width="stretch", key="cmp_sweep_bars")
    for vs in summary["verdicts"].values():
        for text in vs.values():
            st.text(text)
