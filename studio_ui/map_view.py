"""Streamlit side of the Map page: cached map loads, the compute-with-progress action, the WebGL
scatter, and the selection summary. The computing lives in ``baldistill_core.map.embed``/``clusters``."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from baldistill_core.map import clusters

from baldistill_core.map import pseudo_domains as pseudo
from baldistill_core.map import embed
from baldistill_core.config import MapConfig
from studio_ui import bridge, map_canvas

EMBEDDER_LABELS = {
    "minilm": "MiniLM sentence embeddings (best map; minutes on a CPU for thousands of texts)",
    "tfidf": "TF-IDF + SVD (no model to load; word overlap only; the first map of a server takes about a minute "
             "while UMAP compiles, later ones seconds)",
}
# Long palette: R52 has 52 topics; colours repeat only after 60 groups.
PALETTE = qualitative.Dark24 + qualitative.Light24 + qualitative.Set1 + qualitative.Pastel1[:3]
NOISE_COLOUR = "#c8c8c8"


@st.cache_resource(show_spinner="Loading the map…", max_entries=4)
def load_map(dataset: str, content_hash: str, embedder: str) -> embed.MapData | None:
    # content_hash keys the cache: a re-import shows the new data's map (or the empty state). A
    # resource, not data: the ids and coordinates are shared read-only, never copied per rerun.
    return embed.map_data(bridge.conn(), bridge.workspace(), dataset, embedder, compute=False)


def cached_embedders(dataset: str, content_hash: str) -> list[str]:
    ws = bridge.workspace()
    return [e for e in embed.EMBEDDERS if embed.find_cached(ws, dataset, content_hash, e) is not None]


def compute_map(dataset: str, embedder: str) -> embed.MapData:
    """Compute with a visible progress bar (embedding), then status lines for UMAP and clustering."""
    bar = st.progress(0.0, text=f"Embedding with {embedder}…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Embedded {done:,} of {total:,} texts")

    def status(msg: str) -> None:
        bar.progress(1.0 if "Embedding" not in msg else 0.0, text=msg)

    md = embed.map_data(bridge.conn(), bridge.workspace(), dataset, embedder, progress=progress, status=status)
    bar.empty()
    load_map.clear()
    cached_scatter.clear()
    return md


def use_clusters_as_domains(dataset: str, embedder: str) -> dict[str, int]:
    counts = pseudo.apply_pseudo_domains(bridge.conn(), bridge.workspace(), dataset, embedder)
    st.cache_data.clear()  # domain counts and maps cached under the unchanged content hash
    load_map.clear()
    cached_scatter.clear()
    return counts


def has_domains(dataset: str) -> bool:
    return pseudo.has_domains(bridge.conn(), dataset)


def group_labels(md: embed.MapData, color_by: str) -> list[str]:
    if color_by == "cluster":
        return [md.cluster_label(c) for c in md.cluster.tolist()]
    return md.domains


def group_colours(color_by: str, labels) -> tuple[dict[str, str], dict[str, float]]:
    """Colours (largest group first, as the legend lists them) and opacities; noise is grey."""
    names, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
    colours, opacity, i = {}, {}, 0
    for k in sorted(range(len(names)), key=lambda k: (-counts[k], names[k])):
        name = str(names[k])
        noise = color_by == "cluster" and name == clusters.NOISE_NAME
        colours[name] = NOISE_COLOUR if noise else PALETTE[i % len(PALETTE)]
        opacity[name] = 0.5 if noise else 0.8
        i += 0 if noise else 1
    return colours, opacity


@st.cache_resource(show_spinner="Drawing the map…", max_entries=4)
def cached_scatter(dataset: str, content_hash: str, embedder: str, color_by: str, max_points: int,
                   box: tuple[float, float, float, float] | None = None) -> map_canvas.Scatter:
    """The page's chart data, built once per map content + colouring (+ zoomed region)."""
    md = load_map(dataset, content_hash, embedder)
    shown = md.display_sample(max_points) if box is None else md.region(box, max_points)
    labels = np.asarray(group_labels(md, color_by), dtype=object)[shown]
    colours, opacity = group_colours(color_by, labels)
    return map_canvas.scatter(md.x, md.y, labels, shown, colours, opacity)


def selection_box(md: embed.MapData, idx: list[int]) -> tuple[float, float, float, float]:
    """The bounding box of the selected points (the region a zoom shows at full detail)."""
    x, y = np.asarray(md.x)[idx], np.asarray(md.y)[idx]
    return float(x.min()), float(x.max()), float(y.min()), float(y.max())


def build_figure(md: embed.MapData, color_by: str = "domain", height: int = 640,
                 shown: np.ndarray | None = None) -> go.Figure:
    """One WebGL trace per domain (or cluster), largest first. The payload is coordinates (float32)
    and each point's index in ``md`` (int32, the customdata a selection maps back through) — no text:
    hover names the group, and the rows of a selection are read by id below the chart."""
    shown = np.arange(len(md)) if shown is None else np.asarray(shown)
    labels = np.asarray(group_labels(md, color_by), dtype=object)[shown]
    x, y = np.asarray(md.x, dtype=np.float32)[shown], np.asarray(md.y, dtype=np.float32)[shown]
    groups, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = sorted(range(len(groups)), key=lambda g: (-counts[g], groups[g]))
    colours, opacity = group_colours(color_by, labels)
    fig = go.Figure()
    for g in order:
        name = str(groups[g])
        idx = np.flatnonzero(inverse == g)
        fig.add_trace(go.Scattergl(
            x=x[idx], y=y[idx], mode="markers", name=f"{name} ({len(idx)})",
            marker=dict(size=4 if len(shown) > 2000 else 6, color=colours[name], opacity=opacity[name]),
            customdata=shown[idx].astype(np.int32),
            hovertemplate=f"<b>{_escape(name)}</b><extra></extra>",
        ))
    fig.update_layout(
        height=height, margin=dict(l=0, r=0, t=30, b=0), dragmode="lasso",
        legend=dict(itemsizing="constant", font=dict(size=11), title=color_by.capitalize()),
        xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white",
    )
    return fig


def _escape(s: str) -> str:
    # A group name goes into the hover template itself: neutralize template and HTML syntax.
    return html.escape(s, quote=False).replace("{", "(").replace("}", ")")


def selected_indices(event) -> list[int]:
    """Indices into MapData of the lasso/box-selected points (read from each point's customdata)."""
    if event is None:
        return []
    sel = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if not sel:
        return []
    out = []
    for p in sel.get("points", []):
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            out.append(int(cd))
    return sorted(set(out))


def selection_table(md: embed.MapData, idx: list[int], page: int = 0, page_size: int = 50) -> pd.DataFrame:
    """One page of the selected rows; only that page's texts are read (by id). The page opens a clicked
    row in full below the table."""
    part = idx[page * page_size:(page + 1) * page_size]
    return pd.DataFrame({
        "id": [md.ids[i] for i in part],
        "domain": [md.domains[i] for i in part],
        "cluster": [md.cluster_label(md.cluster[i]) for i in part],
        "text": md.texts(bridge.conn(), part),
    })


def mix_text(md: embed.MapData, idx: list[int], top: int = 20) -> str:
    """The selection's domains, largest first, one per line: share, count, name (the first ``top``)."""
    mix = list(md.domain_mix(idx).items())
    width = len(f"{mix[0][1]:,}") if mix else 1
    lines = [f"{v / len(idx):>4.0%}  {v:>{width},}  {d}" for d, v in mix[:top]]
    if len(mix) > top:
        lines.append(f"… and {len(mix) - top} more domains ({sum(v for _, v in mix[top:]):,} examples)")
    return "\n".join(lines)


def cluster_preview(md: embed.MapData) -> pd.DataFrame:
    """What "Use clusters as domains" will produce: one row per pseudo-domain with its size."""
    mapping = pseudo.pseudo_domains(md.ids, np.column_stack([md.x, md.y]), md.cluster, md.cluster_names)
    counts = pd.Series(list(mapping.values())).value_counts()
    return pd.DataFrame({"pseudo-domain": counts.index, "examples": counts.values})


def default_embedder(dataset: str, content_hash: str) -> str:
    """The configured embedder, unless only another one has a map for this dataset already."""
    preferred = MapConfig.model_fields["embedder"].default
    have = cached_embedders(dataset, content_hash)
    return preferred if preferred in have or not have else have[0]
