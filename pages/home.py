"""Home: what the tool does, the bundled datasets with source and licence, and the demo tour."""

import streamlit as st

from studio_ui import bridge

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
