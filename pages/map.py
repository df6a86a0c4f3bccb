"""Map: every training example on a 2-D UMAP of its sentence embedding, coloured by domain or cluster.

Lasso or box-select points to list them with their domain mix. A dataset without a domain field
can turn the clusters into its domains ("pseudo-domains").
"""

import streamlit as st

from baldistill_core.config import MapConfig
from studio_ui import auth, bridge, map_canvas, map_view

st.title("Map")
dataset = bridge.require_dataset()

if flash := st.session_state.pop("map_flash", None):
    st.success(flash)

info = bridge.dataset_info(dataset)
h = info["content_hash"]
fields = MapConfig.model_fields

embedder_key = f"embedder_{dataset}"
if shown := st.session_state.pop("map_show_embedder", None):
    st.session_state[embedder_key] = shown  # set before the radio exists on this run
elif embedder_key not in st.session_state:
    st.session_state[embedder_key] = map_view.default_embedder(dataset, h)

with st.sidebar:
    st.subheader("Map")
    embedder = st.radio("Embedder", list(map_view.EMBEDDER_LABELS), key=embedder_key,
                        format_func=lambda e: map_view.EMBEDDER_LABELS[e], help=fields["embedder"].description)
    color_by = st.radio("Colour by", ["domain", "cluster"], format_func=str.capitalize, horizontal=True,
                        help="Domains come from the dataset; clusters are HDBSCAN groups on the map.")

md = map_view.load_map(dataset, h, embedder)

if md is None:
    n = info["n_train"]
    st.info(
        f"**No {embedder} map for `{dataset}` yet.** The {n:,} training texts are embedded once, laid out "
        "with UMAP and clustered with HDBSCAN; the result is cached on disk, so the map opens at once next time."
    )
    left, right = st.columns(2)
    eta = (f"MiniLM on the CPU embeds roughly 15 texts per second: about {max(1, n // 900)} min for this dataset "
           "(plus UMAP)." if embedder == "minilm" else map_view.EMBEDDER_LABELS[embedder])
    go_selected = left.button("Compute embeddings", type="primary", icon=":material/play_arrow:", help=eta)
    go_tfidf = embedder != "tfidf" and right.button("Use TF-IDF instead (about 1 min)", icon=":material/bolt:",
                                                    help=map_view.EMBEDDER_LABELS["tfidf"])
    st.caption("Estimate: " + (eta if embedder == "minilm" else "")
               + (" TF-IDF: about a minute the first time (UMAP compiles), seconds after that."))
    if go_selected or go_tfidf:
        chosen = embedder if go_selected else "tfidf"
        try:
            map_view.compute_map(dataset, chosen)
        except ValueError as e:
            st.error(str(e))
            st.stop()
        st.session_state["map_show_embedder"] = chosen  # applied before the radio exists on the rerun
        st.rerun()
    st.stop()

n_clusters = len(md.cluster_names)
noise = int((md.cluster == -1).sum())
cols = st.columns(4)
cols[0].metric("Points", f"{len(md):,}")
cols[1].metric("Domains", len(set(md.domains)))
cols[2].metric("Clusters", n_clusters)
cols[3].metric("Unclustered", f"{noise / max(len(md), 1):.0%}", help="HDBSCAN noise: points in no dense group.")
st.caption(f"{embedder} embeddings · UMAP (cosine, {fields['umap_neighbors'].default} neighbours) · "
           f"loaded from the {md.source}. Lasso or box-select points to inspect them; the wheel zooms, "
           "Pan drags, double-click resets.")

max_points = fields["max_points"].default
zoom_key = f"map_zoom_{dataset}_{h}_{embedder}"
box = st.session_state.get(zoom_key)
if box is not None:
    st.caption("Showing the selected region at full detail.")
    if st.button("Back to the whole map", icon=":material/zoom_out:"):
        st.session_state.pop(zoom_key, None)
        st.rerun()
elif len(md) > max_points:
    st.caption(f"Showing a stratified sample of {max_points:,} of {len(md):,} points: every point of the smaller "
               "(tail) domains, a seeded sample of the largest. Counts in the legend are of the drawn points. "
               "Select a region and zoom in to see all of its points.")


@st.fragment
def chart_and_selection() -> None:
    """The chart and what a lasso selects. A fragment: a selection reruns this part only, not the page
    above it. The chart keeps its drawing across the rerun; only the selection's bits come up
    (measured: bench/scale.py, lasso_100k_ms)."""
    sc = map_view.cached_scatter(dataset, h, embedder, color_by, max_points, box)
    picked = map_canvas.show(sc, key=f"map_{dataset}_{embedder}_{color_by}_{box}")
    if picked and box is None and len(md) > max_points:
        if st.button("Show this region at full detail", icon=":material/zoom_in:"):
            st.session_state[zoom_key] = map_view.selection_box(md, picked)
            st.rerun()

    # The listing's tables are on the page before any selection (empty), so a first lasso does not
    # also wait for the browser to load the table code.
    st.subheader(f"{len(picked):,} selected" if picked else "Selection")
    if not picked:
        st.caption("Nothing selected yet. Lasso or box-select points on the map to list them here.")
    left, right = st.columns([1, 2])
    with left:
        st.caption("Domain mix of the selection")
        st.text(map_view.mix_text(md, picked) if picked else "—")   # plain text: a table here cost ~90 ms a lasso
    with right:
        page_size = 50
        n_pages = max(1, -(-len(picked) // page_size))
        page = st.number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, value=1, key="map_sel_page",
                               help="Texts are read for the listed page only.", disabled=n_pages == 1)
        table = map_view.selection_table(md, picked, int(page) - 1, page_size)
        sel = st.dataframe(table, width="stretch", hide_index=True, height=420, on_select="rerun",
                           selection_mode="single-row", key="map_selection_table")
        rows = sel.selection.rows if sel is not None else []
        opened = bool(rows) and rows[0] < len(table)
        if picked:  # after the table: once this is on the page, so are the listed rows
            lo = (int(page) - 1) * page_size
            st.caption(f"Rows {lo + 1:,}–{lo + len(table):,} of {len(picked):,}."
                       + ("" if opened else " Click a row's left edge to open that example in full."))
        if opened:  # the clicked row, in full
            r = table.iloc[rows[0]]
            with st.container(border=True):
                st.caption(f"`{r['id']}` · domain **{r['domain']}** · cluster {r['cluster']}")
                st.text(r["text"])


chart_and_selection()

if not map_view.has_domains(dataset):
    st.subheader("Use clusters as domains")
    st.write(f"`{dataset}` has no domain field (or a single domain value), so every example is in one domain. Its {n_clusters} clusters can "
             "become its domains (named by their top keywords; unclustered points join the nearest cluster). "
             "Balancing then works on these pseudo-domains.")
    st.dataframe(map_view.cluster_preview(md), hide_index=True, width="stretch", height=240)
    sure = st.checkbox("I understand this replaces the domain of every training example", key="confirm_pseudo")
    if st.button("Use clusters as domains", disabled=not (sure and auth.allowed("operator", "change domains")), type="primary"):
        try:
            counts = map_view.use_clusters_as_domains(dataset, embedder)
        except ValueError as e:
            st.error(str(e))
        else:
            st.session_state["map_flash"] = f"{len(counts)} pseudo-domains assigned. The Data page now shows them."
            st.rerun()
