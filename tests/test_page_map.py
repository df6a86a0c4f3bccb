"""AppTest of pages/map.py: the shipped map draws at once; a new dataset shows the empty state,
computes with TF-IDF, and can turn its clusters into pseudo-domains."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from baldistill_core import store
from baldistill_core.map import pseudo_domains as pseudo
from baldistill_core.workspace import open_workspace
from _embed_helpers import import_toy

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "map.py")


def run_page(dataset: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=240)
    if dataset:
        at.query_params["dataset"] = dataset
    return at.run()


def charts(at: AppTest) -> list:
    return at.get("bidi_component")   # the canvas scatter (studio_ui/map_canvas.py)


def test_bundled_map_draws_at_once(page_env):
    at = run_page("math_lt")  # (a fresh CPU-only workspace would open on the R52 demo)
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="dataset_picker").value == "math_lt"
    assert len(charts(at)) == 1, "the shipped math_lt bundle should draw without computing"
    assert at.metric[0].value == "4,125"
    assert "bundle" in " ".join(c.value for c in at.caption)
    at.sidebar.radio[1].set_value("cluster").run()  # colour by cluster
    assert not at.exception and len(charts(at)) == 1
    assert not [b for b in at.button if b.label == "Use clusters as domains"]  # math_lt has real domains


def test_empty_state_then_tfidf_compute_then_pseudo_domains(page_env, tmp_path):
    _, conn = open_workspace(page_env)
    import_toy(conn, tmp_path)
    at = run_page("toy")
    assert not at.exception, at.exception
    assert not charts(at)
    assert any("No minilm map" in i.value for i in at.info)
    labels = [b.label for b in at.button]
    assert "Compute embeddings" in labels and "Use TF-IDF instead (about 1 min)" in labels

    next(b for b in at.button if b.label == "Use TF-IDF instead (about 1 min)").click().run()
    assert not at.exception, at.exception
    assert len(charts(at)) == 1
    assert at.metric[0].value == "120" and at.metric[2].value == "3"

    apply = next(b for b in at.button if b.label == "Use clusters as domains")
    assert apply.disabled  # needs the confirmation first
    at.checkbox(key="confirm_pseudo").check().run()
    next(b for b in at.button if b.label == "Use clusters as domains").click().run()
    assert not at.exception, at.exception
    assert any("3 pseudo-domains" in s.value for s in at.success)
    assert pseudo.has_domains(conn, "toy") and len(store.domain_counts(conn, "toy")) == 3
    conn.close()


@pytest.mark.parametrize("event,expected", [
    (None, []),
    ({"selection": {"points": [], "point_indices": []}}, []),
    ({"selection": {"points": [{"curve_number": 1, "point_index": 0, "customdata": 7},
                               {"curve_number": 0, "point_index": 3, "customdata": [2]},
                               {"curve_number": 0, "point_index": 4, "customdata": 7}]}}, [2, 7]),
])
def test_selection_maps_back_through_customdata(event, expected):
    from studio_ui import map_view

    assert map_view.selected_indices(event) == expected


def test_a_canvas_selection_maps_back_to_the_map_and_only_for_its_own_points():
    import numpy as np

    from studio_ui import map_canvas

    x, y = np.arange(10, dtype=float), np.arange(10, dtype=float) * 2
    labels = np.array(["b", "a", "b", "b", "c"], dtype=object)
    shown = np.array([9, 2, 5, 7, 0])                    # a sample of the map, in drawing order
    sc = map_canvas.scatter(x, y, labels, shown, {"a": "#111", "b": "#222"})
    assert [g["name"] for g in sc.groups] == ["b", "a", "c"] and [g["n"] for g in sc.groups] == [3, 1, 1]
    assert sc.points["g"].tolist() == [0, 1, 0, 0, 2]     # group numbers follow the legend's order
    assert sc.points["x"].tolist() == [9, 2, 5, 7, 0] and sc.points["y"].dtype == np.float32
    assert sc.groups[2]["colour"] == "#4c78a8"           # a group without a colour gets the default
    # the browser sends one bit per drawn point (little-endian within a byte), base64
    import base64
    bits = base64.b64encode(bytes([0b00010010])).decode()   # drawn points 1 and 4
    assert map_canvas.decode({"key": sc.key, "bits": bits}, sc) == [0, 2]
    assert map_canvas.decode({"key": "another figure", "bits": bits}, sc) == []
    assert map_canvas.decode(None, sc) == [] and map_canvas.decode({"key": sc.key, "bits": ""}, sc) == []
    every = base64.b64encode(np.packbits(np.ones(5, bool), bitorder="little").tobytes()).decode()
    assert map_canvas.decode({"key": sc.key, "bits": every}, sc) == [0, 2, 5, 7, 9]
    # other points or colours make another key: an old selection never maps onto new points
    assert map_canvas.scatter(x, y, labels, shown[::-1], {"a": "#111", "b": "#222"}).key != sc.key
    assert map_canvas.scatter(x, y, labels, shown, {"a": "#111", "b": "#333"}).key != sc.key


def test_the_selection_mix_lists_the_largest_domains_first_and_counts_the_rest():
    import numpy as np

    from baldistill_core.map import embed
    from studio_ui import map_view

    doms = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"]
    md = embed.MapData("x", "tfidf", "h", "cache", [str(i) for i in range(len(doms))], doms, np.zeros(len(doms)),
                       np.zeros(len(doms)), np.zeros(len(doms), dtype=np.int32), {})
    assert map_view.mix_text(md, [0, 1, 5, 10]).splitlines() == [" 50%  2  a", " 25%  1  b", " 25%  1  d"]
    lines = map_view.mix_text(md, list(range(11)), top=2).splitlines()
    assert lines[:2] == [" 45%  5  a", " 27%  3  b"] and lines[2] == "… and 2 more domains (3 examples)"
