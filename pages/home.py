"""Home: what the tool does, the bundled datasets with source and licence, and the demo tour."""

import streamlit as st

from studio_ui import bridge, run_views

st.title("BalDistill Studio")
st.markdown(
    "Distil a large **teacher** LLM into a small **student** on long-tailed, multi-domain data. "
    "Each of K stages spends part of a fixed teacher budget: head domains send the student's hardest examples "
    "(by its own IFD score) to the teacher for rationales, tail domains get teacher-synthesized examples that "
    "a person approves here. The student is fine-tuned after every stage and measured per domain, so you see "
    "whether the tail improved — not just the average."
)

st.subheader("Datasets in this workspace")
for d in bridge.datasets():
    spec = bridge.dataset_info(d["name"])["spec"]
    with st.container(border=True):
        c1, c2 = st.columns([5, 1])
        c1.markdown(f"**{d['name']}** · {spec['task_type']} · {d['n_train']:,} train / {d['n_test']:,} test"
                    + (" · bundled demo" if d["bundled"] else ""))
        if spec.get("source"):
            c1.caption(f"Source: {spec['source']}")
        if spec.get("licence"):
            c1.caption(f"Licence: {spec['licence']}")
        if c2.button("Open", key=f"open_{d['name']}"):
            st.session_state["dataset"] = d["name"]
            st.query_params["dataset"] = d["name"]
            st.switch_page("pages/data.py")

st.subheader("Demo tour")
st.caption("Six steps on the bundled data with the recorded teacher (offline, free); the tiny run finishes in "
           "minutes on a laptop CPU.")
TOUR = [
    ("pages/data.py", "1 · Data", ":material/bar_chart:",
     "See how long-tailed the domains are and how a budget splits into head and tail quotas per stage."),
    ("pages/map.py", "2 · Map", ":material/scatter_plot:",
     "Explore the examples on an embedding map: domains, clusters, and where the tail sits."),
    ("pages/plan.py", "3 · Plan", ":material/checklist:",
     "Preview a stage before spending: which head examples the teacher would annotate, which tail gaps need "
     "synthetic data."),
    ("pages/review.py", "4 · Review", ":material/fact_check:",
     "Load the teacher's recorded synthetic tail examples and approve or reject a few — only approved ones train."),
    ("pages/training.py", "5 · Training", ":material/model_training:",
     "Launch a tiny run (student 'tiny-llama-test', preset 'test-tiny', K=2, auto-approve) and watch the "
     "per-domain curves."),
    ("pages/compare.py", "6 · Compare", ":material/compare_arrows:",
     "Put runs side by side: macro, micro, head and tail scores, per-domain bars, budget spent."),
]
for path, label, icon, sentence in TOUR:
    c1, c2 = st.columns([1, 4])
    with c1:
        run_views.nav_link(path, label, icon)
    c2.write(sentence)
