"""Compare: macro / micro / large- / small-domain scores of several runs, per-domain bars, large vs small, budget."""

import streamlit as st

from baldistill_core.evaluation.evaluate import SIZE_GROUPS_HELP
from baldistill_core.reports import compare, significance
from baldistill_core.selection.methods import label as method_label
from baldistill_core.runs import records as runs
from studio_ui import bridge, run_views, significance_views

st.title("Compare runs")
dataset = bridge.require_dataset()
conn = bridge.conn()
available = compare.comparable_runs(conn, dataset)
if not available:
    st.info(f"No evaluated runs on **{dataset}** yet. Launch runs on the Training page (for instance "
            f"{method_label('baldistill_a')} and {method_label('random_ft_cot')} at the same budget); they appear "
            "here after their first evaluation.")
    run_views.nav_link("pages/training.py", "Go to Training", ":material/model_training:")
    st.stop()

labels = {r["id"]: f"{r['name']} · {method_label(r['method'])} · {r['state']} · {r['id']}" for r in available}
wanted = [r for r in (st.query_params.get_all("runs") or []) if r in labels]
chosen = st.multiselect("Runs", list(labels), default=wanted or list(labels)[:4], format_func=labels.get,
                        key="compare_runs")
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
try:
    scores = compare.compare(conn, chosen)
except runs.RunError as e:
    st.error(str(e))
    st.stop()

metric = scores[0]["metric"]
if any(s["split"] == "live" for s in scores):
    st.caption("Runs without a final test evaluation are scored on their latest live (small stratified) "
               "evaluation — marked 'live' in the split column.")
scores = significance.add_intervals(conn, scores)
st.dataframe(significance_views.interval_columns(scores), hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.3f", help=SIZE_GROUPS_HELP if "domains" in c
                                                               else None)
                            for c in ("macro", "micro", "large domains", "small domains")})
st.caption(SIZE_GROUPS_HELP)
if any(s["ci"] for s in scores):
    st.plotly_chart(significance_views.headline_bars(scores, metric), width="stretch", key="cmp_ci")
    significance_views.render_paired(conn, scores)

bars = run_views.grouped_bars(scores, metric)
scatter = run_views.size_groups_scatter(scores, metric)
spend = run_views.spend_bars(scores)
st.plotly_chart(bars, width="stretch", key="cmp_bars")
c1, c2 = st.columns(2)
c1.plotly_chart(scatter, width="stretch", key="cmp_scatter")
c2.plotly_chart(spend, width="stretch", key="cmp_spend")

significance_views.render_sweeps(conn, dataset)

st.subheader("Download")
d1, d2 = st.columns(2)
d1.download_button("Comparison (CSV)", compare.to_csv(scores), file_name=f"compare-{dataset}.csv",
                   mime="text/csv", key="dl_csv")
if d2.button("Prepare PNG of the per-domain chart", key="make_png"):
    with st.spinner("Rendering the PNG…"):
        st.session_state["compare_png"] = run_views.figure_png(bars) or b""
png = st.session_state.get("compare_png")
if png:
    d2.download_button("Per-domain chart (PNG)", png, file_name=f"compare-{dataset}.png", mime="image/png",
                       key="dl_png")
elif png is not None:
    d2.caption("PNG export needs kaleido and a Chrome/Chromium, which are not available here; download the "
               "chart as HTML instead (its toolbar's camera button saves a PNG).")
    d2.download_button("Per-domain chart (HTML, interactive)", run_views.figure_html(bars),
                       file_name=f"compare-{dataset}.html", mime="text/html", key="dl_html")
