"""Review: approve, reject or edit the teacher's synthetic tail examples before they reach training.

Only approved (or edited) examples are used by a run. Decisions are saved at once, with the
reviewer's name and time, and every tab sees them on its next refresh.
"""

import streamlit as st

from baldistill_core.data import loading as data
from baldistill_core.map import embed
from baldistill_core.synthetic import review
from baldistill_core.synthetic import synthesis
from baldistill_core.synthetic.facets import facets
from baldistill_core.selection.methods import METHODS
from studio_ui import auth, bridge, review_views as rv

PAGE_SIZE = 10
ALL = "(all)"

st.title("Review synthetic examples")
dataset = bridge.require_dataset()
reviewer = rv.reviewer_name()
conn = bridge.conn()
info = bridge.dataset_info(dataset)
spec = data.dataset_spec(conn, dataset)
f = facets(conn, dataset)


def _load_recorded(n: int) -> None:
    if not auth.can("reviewer"):
        rv.message("error", "Loading examples into the queue needs the reviewer role.")
        return
    try:
        rep = synthesis.import_recorded_synthetic_report(bridge.conn(), spec, per_domain=n)
    except ValueError as e:
        rv.message("error", str(e))
    else:
        rv.message("ok", rv.loaded_text(rep))


if f["total"] == 0:
    rv.show_message()
    st.info(f"No synthetic examples for **{dataset}** yet. They appear here when a run's tail domains need more "
            "data than the pool holds: the teacher writes new examples, and a person approves them before "
            "training uses them (unless the run auto-approves).")
    if spec.recorded_synthetic:
        st.write("This dataset ships the teacher's recorded synthetic tail examples: load some to review now.")
        n = st.number_input("Examples per domain", min_value=1, max_value=500, value=5, key="load_per_domain")
        st.button("Load recorded synthetic examples", type="primary", on_click=_load_recorded, args=(int(n),),
                  key="load_recorded")
    else:
        st.caption("Launch a run of a method that synthesizes tail examples ("
                   + ", ".join(m.label for m in METHODS.values() if m.synth) + ") on the Training page.")
    st.stop()

if not reviewer:
    st.warning("Enter your name in the sidebar first: every decision records who made it.")

# ---------------------------------------------------------------- filters
c = st.columns(4)
FILTER_OPTIONS = {"f_status": ["pending", *[s for s in review.STATUSES if s != "pending"], ALL],
                  "f_domain": [ALL, *f["domains"]], "f_run": [ALL, *f["runs"]], "f_stage": [ALL, *f["stages"]]}
rv.restore_filters(FILTER_OPTIONS)  # the filters live in the URL too, so a reload keeps them
status = c[0].selectbox("Status", FILTER_OPTIONS["f_status"], key="f_status")
domain = c[1].selectbox("Domain", FILTER_OPTIONS["f_domain"], key="f_domain")
run_labels = {ALL: ALL, review.IMPORTED: "imported recordings"}
run = c[2].selectbox("Run", FILTER_OPTIONS["f_run"], format_func=lambda r: run_labels.get(r, r), key="f_run")
stage = c[3].selectbox("Stage", FILTER_OPTIONS["f_stage"], key="f_stage")
rv.keep_filters(FILTER_OPTIONS)
filters = dict(status=None if status == ALL else status, domain=None if domain == ALL else domain,
               run_id=None if run == ALL else run, stage=None if stage == ALL else stage)


@st.fragment(run_every=5)
def progress_panel() -> None:
    """Counts refresh on their own so decisions from another tab show up without a click."""
    rv.progress_bars(review.progress(bridge.conn(), dataset, None if run == ALL else run))


progress_panel()
rv.show_message()

with st.sidebar:
    st.button("Undo my last decision", on_click=rv.undo_last, shortcut="U",
              disabled=not st.session_state.get("review_undo"), key="undo_last",
              help="Keyboard: U. Restores the example's state before your latest decision in this session.")
    st.caption("Keyboard on the first item of the page: A approve, X reject (with the chosen reason).")
    st.radio("Nearest real examples by", ["embedding", "tfidf"], key="nearest_by", horizontal=True,
             format_func={"embedding": "MiniLM embedding", "tfidf": "TF-IDF"}.get,
             help="Embedding uses the dataset's cached map embeddings (compute them on the Map page); "
                  "without them TF-IDF is used.")
    if spec.recorded_synthetic:
        with st.expander("More recorded examples"):
            n = st.number_input("Per domain", min_value=1, max_value=500, value=10, key="more_per_domain")
            st.button("Load", on_click=_load_recorded, args=(int(n),), key="load_more")

if st.session_state.get("nearest_by", "embedding") == "embedding" and not embed.embedder_loaded("minilm"):
    st.caption("First visit on this server: the nearest-real-example search loads the MiniLM embedder, about 30 s "
               "on this CPU (TF-IDF in the sidebar needs no model).")

total = review.queue_count(conn, dataset, **filters)
if total == 0:
    st.info("No example matches these filters." + (" Everything here is decided — well done." if status == "pending"
                                                   else ""))
    st.stop()

# ---------------------------------------------------------------- bulk actions on the filtered selection
with st.expander(f"Bulk action on all {total} filtered examples"):
    b1, b2 = st.columns(2)
    action = b1.radio("Action", ["approve", "reject"], horizontal=True, key="bulk_action")
    reason = b2.selectbox("Reason (reject)", rv.REJECT_REASONS, accept_new_options=True, key="bulk_reason", index=None,
                          placeholder="Pick or type a reason…")
    sure = st.checkbox(f"Yes, {action} all {total} examples matching the filters", key=f"bulk_confirm_{st.session_state.get('bulk_round', 0)}")
    if st.button(f"Bulk {action}", disabled=not (sure and reviewer and auth.allowed("reviewer", "bulk decisions")),
                 key="bulk_go"):
        try:
            n = review.bulk(conn, review.queue_ids(conn, dataset, **filters), action, reviewer,
                            reason if action == "reject" else None)
        except review.ReviewError as e:
            st.error(str(e))
        else:
            rv.message("ok", f"Bulk {action}: {n} examples changed.")
            st.session_state["bulk_round"] = st.session_state.get("bulk_round", 0) + 1
            st.rerun()

# ---------------------------------------------------------------- the queue
n_pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {n_pages}; {total} examples)", min_value=1, max_value=n_pages, value=1,
                       key="review_page")
items = review.queue(conn, dataset, **filters, limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE)
for i, item in enumerate(items):
    rv.item_card(item, dataset, info["content_hash"], focused=i == 0)
