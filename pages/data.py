"""Data: the domain distribution, head vs tail for a budget, stage quotas, and an example browser."""

import streamlit as st

from baldistill_core.config import RunConfig
from baldistill_core.selection.methods import METHODS, label as method_label
from baldistill_core.selection.policy import POLICIES
from studio_ui import admin, bridge, charts, estimate_view, settings, teacher_import

FILL_WORDS = {"synthesize": "teacher-synthesized examples a person approves", "duplicate": "repeating real examples",
              "redistribute": "moving the gap to domains with spare examples"}

st.title("Data")
dataset = bridge.current_dataset()

charts.show_upload_flash()
admin.show_flash()
with st.expander("Upload a dataset", expanded=dataset is None):
    charts.upload_form(bridge)

if dataset is None:
    st.info("No dataset in this workspace yet. Upload one above, or restart with the bundled demos.")
    st.stop()

with st.expander("Bring your own teacher outputs (rationales, synthetic examples)"):
    teacher_import.import_form(bridge, dataset)

info = bridge.dataset_info(dataset)
h = info["content_hash"]
s = bridge.domain_stats(dataset, h)

cols = st.columns(5)
cols[0].metric("Training examples", f"{s.total:,}")
cols[1].metric("Domains", s.n_domains)
cols[2].metric("Imbalance (max/min)", f"{s.imbalance_ratio:,.1f}×")
cols[3].metric("Gini", f"{s.gini:.3f}")
cols[4].metric("Zipf exponent", "—" if s.zipf_exponent is None else f"{s.zipf_exponent:.2f}")

defaults = RunConfig.model_fields
with st.sidebar:
    st.subheader("Budget and method")
    start = estimate_view.cpu_default(dataset)  # the same starting config as Plan and Training
    for name in settings.SHARED:  # the same values as on Plan and Training (kept in the URL too)
        settings.seed_widget(f"data_{name}", name, start.get(name))
    methods = [n for n, m in METHODS.items() if m.policy]
    if st.session_state["data_method"] not in methods:  # zero-shot has no allocation to show
        st.session_state["data_method"] = settings.default("method")
    method = st.selectbox("Method", methods, key="data_method", format_func=method_label,
                          help=defaults["method"].description + " Its policy decides how each stage's budget is "
                                                                "shared.")
    m = METHODS[method]
    budget = st.number_input("Budget B (examples)", min_value=1, key="data_budget",
                             help=defaults["budget"].description)
    stages = st.number_input("Stages K", min_value=1, max_value=50, key="data_stages", disabled=m.ignores_stages(),
                             help=defaults["stages"].description)
    settings.remember(method=method, budget=int(budget), stages=int(stages))
    if m.ignores_stages():
        st.caption(f"**K is ignored by {m.label}**: it spends the whole budget in one stage.")
    st.caption(f"Policy: **{POLICIES[m.policy].label}**. {POLICIES[m.policy].help}")

try:
    plans = bridge.stage_plan(dataset, h, m.policy, int(budget), m.stages(int(stages)), m.fill)
except ValueError as e:
    st.error(str(e))
    plans = None

log_scale = st.toggle("Log scale", value=s.imbalance_ratio > 20, help="Long tails read better on a log axis.")
st.plotly_chart(charts.distribution_chart(s, plans, log_scale), width="stretch", key="distribution")

if plans:
    st.subheader("Quota per stage")
    st.caption("Bars are each domain's quota; hatched ones are tail at that stage (the pool is short, so the gap is "
               f"filled by {FILL_WORDS[m.fill]}). Every stage's quotas sum to its share of B.")
    st.plotly_chart(charts.quota_chart(plans), width="stretch", key="quota")

st.subheader("Domains")
st.dataframe(charts.domain_table(s, plans), width="stretch", hide_index=True)

st.subheader("Examples")
left, right = st.columns([1, 3])
domain = left.selectbox("Domain", list(s.counts), key="browse_domain")
page_size = 10
n_pages = max(1, -(-s.counts[domain] // page_size))
page = left.number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, value=1)
for ex in bridge.examples(dataset, domain, page_size, (page - 1) * page_size):
    with right.container(border=True):
        st.caption(f"`{ex['id']}` · answer: **{ex['answer']}**")
        if info["spec"].get("task_type") == "math":  # LaTeX rendered, the rest shown literally
            st.markdown(charts.math_markdown(ex["input"][:1500]))
        else:
            st.text(ex["input"][:1500])

admin.dataset_panel(dataset)

if info["spec"].get("licence"):
    st.caption(f"Source: {info['spec'].get('source') or 'uploaded'} · Licence: {info['spec']['licence']}")
if info.get("readme"):
    with st.expander("Source and licence of this dataset"):
        st.markdown(info["readme"])
