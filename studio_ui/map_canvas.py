"""The Map page's scatter as a Streamlit v2 component (``assets/map_canvas.js``).

Why not ``st.plotly_chart``: a lasso there sends every selected point back as JSON (2.3 MB for 18k of
100k points) and reruns the fragment, which sends the whole figure again; measured 1.3 s from the end
of a lasso to the listed rows (bench/scale.py, lasso_100k_ms). Here the points go to the browser as
Arrow columns (10 bytes a point), are drawn on a canvas, and a selection comes back as one bit per
drawn point, whatever its size. The browser keeps the drawing across reruns while the points are the
same (``Scatter.key``), and the rerun a selection causes does not send the points again (``show``), so a
selection costs a small message each way.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

_JS = (Path(__file__).resolve().parent.parent / "assets" / "map_canvas.js").read_text(encoding="utf-8")
_HTML = """
<div class="bd-map">
  <div class="bd-bar">
    <button data-mode="lasso" class="bd-on" title="Draw around points to select them">Lasso</button>
    <button data-mode="box" title="Drag a rectangle to select points">Box</button>
    <button data-mode="pan" title="Drag to move; the mouse wheel zooms">Pan</button>
    <button class="bd-home" title="Back to the whole map (or double-click the chart)">Reset view</button>
    <button class="bd-clear" title="Select nothing">Clear selection</button>
    <span class="bd-info"></span>
  </div>
  <div class="bd-body">
    <div class="bd-wrap"><canvas class="bd-points"></canvas><canvas class="bd-overlay"></canvas>
      <div class="bd-tip"></div></div>
    <div class="bd-legend"></div>
  </div>
</div>
"""
_CSS = """
.bd-map { font-family: var(--st-font, sans-serif); font-size: 13px; color: var(--st-text-color, #222); }
.bd-bar { display: flex; gap: 6px; align-items: center; margin-bottom: 6px; flex-wrap: wrap; }
.bd-bar button { border: 1px solid #c9ccd3; background: #fff; border-radius: 6px; padding: 3px 10px;
  cursor: pointer; font-size: 13px; color: #222; }
.bd-bar button.bd-on { background: #1f4e8c; color: #fff; border-color: #1f4e8c; }
.bd-info { margin-left: auto; color: #555; }
.bd-body { display: flex; gap: 10px; }
.bd-wrap { position: relative; flex: 1 1 auto; min-width: 200px; background: #fff; border: 1px solid #eee; }
.bd-wrap canvas { position: absolute; left: 0; top: 0; }
.bd-overlay { cursor: crosshair; touch-action: none; }
.bd-tip { position: absolute; display: none; pointer-events: none; background: rgba(30, 30, 30, 0.88);
  color: #fff; padding: 2px 6px; border-radius: 4px; white-space: nowrap; }
.bd-legend { flex: 0 0 210px; overflow-y: auto; }
.bd-item { display: flex; gap: 6px; align-items: center; cursor: pointer; padding: 1px 0; }
.bd-item.bd-off { opacity: 0.35; }
.bd-swatch { width: 10px; height: 10px; border-radius: 2px; flex: 0 0 10px; }
"""

_component = st.components.v2.component("baldistill_map", html=_HTML, css=_CSS, js=_JS)


@dataclass(frozen=True)
class Scatter:
    """What the browser draws: ``points`` (x, y float32; g = group number), ``groups`` (name, colour,
    opacity, count; largest first) and ``shown`` (each drawn point's index in the map data)."""
    key: str
    points: pd.DataFrame
    groups: list[dict]
    shown: np.ndarray

    @property
    def payload_bytes(self) -> int:
        return int(self.points.memory_usage(index=False).sum())


def scatter(x: np.ndarray, y: np.ndarray, labels: np.ndarray, shown: np.ndarray, colours: dict[str, str],
            opacity: dict[str, float] | None = None) -> Scatter:
    """The points ``shown`` (indices into the map's arrays) grouped by ``labels`` (one per shown point)."""
    shown = np.asarray(shown, dtype=np.int64)
    names, inverse, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True,
                                       return_counts=True)
    order = sorted(range(len(names)), key=lambda g: (-counts[g], names[g]))
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    g = rank[inverse].astype(np.uint16 if len(names) < 65535 else np.uint32)
    points = pd.DataFrame({"x": np.asarray(x, dtype=np.float32)[shown], "y": np.asarray(y, dtype=np.float32)[shown],
                           "g": g})
    groups = [{"name": str(names[k]), "colour": colours.get(str(names[k]), "#4c78a8"), "n": int(counts[k]),
               "opacity": (opacity or {}).get(str(names[k]), 0.8)} for k in order]
    digest = hashlib.sha1(points.to_numpy().tobytes())
    digest.update(repr([(d["name"], d["colour"]) for d in groups]).encode())
    return Scatter(digest.hexdigest()[:16], points, groups, shown)


def decode(selection, sc: Scatter) -> list[int]:
    """The map indices a browser selection names; nothing when it belongs to other points (a
    selection made before the colouring or the zoom changed)."""
    if not isinstance(selection, dict) or selection.get("key") != sc.key or not selection.get("bits"):
        return []
    raw = np.frombuffer(base64.b64decode(selection["bits"]), dtype=np.uint8)
    flags = np.unpackbits(raw, bitorder="little")[:len(sc.shown)].astype(bool)
    return sorted(sc.shown[flags].tolist())


def show(sc: Scatter, *, key: str, height: int = 640) -> list[int]:
    """Mount the chart; returns the selected points' map indices (sorted).

    The points go to the browser only when it may not have them: a rerun that a selection of these
    very points caused (the selection carries their key) sends the groups alone, and the browser
    keeps its drawing and its selection. Should it have lost the points after all (a remount), it asks
    for them once (the ``need_points`` trigger) and this sends them on that rerun.
    """
    held = st.session_state.get(key)
    held_sel = _get(held, "selection")
    has_points = isinstance(held_sel, dict) and held_sel.get("key") == sc.key and not _get(held, "need_points")
    data = {"key": sc.key, "groups": sc.groups, "height": height}
    if not has_points:  # with the points, the selection to restore (a browser that holds them holds it too)
        data["points"] = sc.points
        data["selection"] = held_sel if isinstance(held_sel, dict) else None
    result = _component(data=data, key=key, on_selection_change=lambda: None, on_need_points_change=lambda: None,
                        default={"selection": None})
    return decode(_get(result, "selection"), sc)


def _get(result, name: str):
    if result is None:
        return None
    if isinstance(result, dict):
        return result.get(name)
    return getattr(result, name, None)
