"""Home: what the tool does, the bundled datasets with source and licence, and the demo tour."""

import streamlit as st

from studio_ui import bridge, run_views

TOUR_DATASET = "r52"

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
st.markdown(
    "Six steps on **Reuters R52** (52 topics, from 2,840 stories down to 1) with the recorded teacher (offline, "
    "free) and the real bundled student, SmolLM2-135M. The tour's run is **BalDistill-N, B=40, K=4** "
    "(`assets/configs/r52-tour.yaml`): equal quotas come back to the small topics every stage, so by stage 3 the "
    "topic *cpu* has no real story left and a synthetic one fills its gap. The links below carry these settings."
)
TOUR_QUERY = dict(dataset=TOUR_DATASET, method="baldistill_n", budget="40", stages="4")
TOUR = [
    ("pages/data.py", "1 · Data", ":material/bar_chart:", TOUR_QUERY,
     "**Look for** the long tail (log axis), then the quota chart: hatched bars are tail at that stage — *cpu* "
     "at stage 3. Here *tail* is the method's word: a domain whose remaining pool cannot cover its quota."),
    ("pages/map.py", "2 · Map", ":material/scatter_plot:", dict(dataset=TOUR_DATASET),
     "**Look for** topics that share a region of the map and the clusters named by their keywords. The bundled "
     "map opens at once; computing a new one takes a while the first time (MiniLM: minutes; TF-IDF: about a "
     "minute while UMAP compiles) — the page says so before you start."),
    ("pages/plan.py", "3 · Plan", ":material/checklist:", {**TOUR_QUERY},
     "Pick **stage 3**: *cpu* shows 0 real + a gap of 1 under *Tail gaps*, and which approved synthetic example "
     "would fill it. No teacher money is spent to see this."),
    ("pages/review.py", "4 · Review", ":material/fact_check:", dict(dataset=TOUR_DATASET, f_domain="cpu"),
     "Load the teacher's recorded synthetic examples and approve or reject a few (a reject needs a reason). "
     "**Slow the first time:** the nearest-real-example search loads the MiniLM embedder, about 30 s."),
    ("pages/training.py", "5 · Training", ":material/model_training:", dict(dataset=TOUR_DATASET, config="r52-tour"),
     "The form is filled from the tour config: press **Launch**. It takes about 15 minutes on a free 2-core CPU "
     "(longer when the machine is busy; the ETA says so): each stage annotates 10 stories, fine-tunes the student "
     "and evaluates it on 52 stories. **Look for** the curves leaving the base student (stage -1, about 4%) and the "
     "stage-3 row of the table picking a *synthetic* example. The run auto-approves synthetic examples the "
     "teacher's own answer confirms."),
    ("pages/compare.py", "6 · Compare", ":material/compare_arrows:", dict(dataset=TOUR_DATASET),
     "**Look for** per-domain bars above zero and the large- vs small-domain scores (the evaluation's groups by "
     "training size, not the method's head/tail). Launch Random FT CoT at the same budget to compare."),
]
for path, label, icon, query, sentence in TOUR:
    c1, c2 = st.columns([1, 4])
    with c1:
        run_views.nav_link(path, label, icon, query_params=query)
    c2.markdown(sentence)
