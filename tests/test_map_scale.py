"""A map that scales: coordinates without text, texts read by id for the listed rows, a stratified sample
that keeps every domain, and clustering/layout on a sample for large pools. Real SQLite, bundled maps."""

from __future__ import annotations

import re

import numpy as np
import plotly.io as pio
import pytest
from sklearn.metrics import adjusted_rand_score

from baldistill_core import store
from baldistill_core.config import MapConfig
from baldistill_core.map import clusters, embed


def _traced(conn):
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def test_the_map_loads_no_text_and_reads_text_only_for_requested_ids(ws):
    w, conn = ws
    seen = _traced(conn)
    md = embed.map_data(conn, w, "r52", "minilm", compute=False)
    conn.set_trace_callback(None)
    assert md is not None and len(md) == store.get_dataset(conn, "r52")["n_train"]
    assert "texts" not in embed.MapData.__dataclass_fields__      # the page state holds no text
    assert not [q for q in seen if re.search(r"\binput\b", q)], "map_data must not read any text"
    seen = _traced(conn)
    got = md.texts(conn, [5, 17, 3])
    conn.set_trace_callback(None)
    text_reads = [q for q in seen if re.search(r"\binput\b", q)]
    assert len(text_reads) == 1 and text_reads[0].count("'r52-") == 3
    want = store.inputs_by_id(conn, "r52", [md.ids[5], md.ids[17], md.ids[3]])
    assert got == [clusters.hover_text(want[md.ids[i]], MapConfig().hover_chars) for i in (5, 17, 3)]


def test_the_figure_ships_coordinates_and_indices_not_text(ws):
    from studio_ui import map_view

    w, conn = ws
    md = embed.map_data(conn, w, "r52", "minilm", compute=False)
    payload = pio.to_json(map_view.build_figure(md, "domain"), validate=False)
    sample = store.examples(conn, "r52", limit=50)
    assert not [e for e in sample if " ".join(e["input"].split()[:6]) in payload]
    assert '"bdata"' in payload                         # typed arrays, not decimal text
    # x, y (float32) and the index (int32), base64: about 16 bytes a point, plus the legend
    assert len(payload) / len(md) < 24, len(payload) / len(md)
    idx = np.concatenate([np.asarray(t.customdata) for t in map_view.build_figure(md, "cluster").data])
    assert sorted(idx.tolist()) == list(range(len(md)))


def _md(sizes: dict[str, int], seed: int = 0) -> embed.MapData:
    rng = np.random.default_rng(seed)
    doms = [d for d, n in sizes.items() for _ in range(n)]
    n = len(doms)
    return embed.MapData("x", "tfidf", "h", "cache", [f"e{i}" for i in range(n)], doms, rng.normal(size=n),
                         rng.normal(size=n), np.zeros(n, dtype=np.int32), {})


def test_the_display_sample_keeps_every_domain_and_every_tail_point():
    sizes = {f"d{r}": max(3, int(20_000 / r ** 1.1)) for r in range(1, 51)}   # 50 Zipf-sized domains
    md = _md(sizes)
    shown = md.display_sample(5000, seed=1)
    assert len(shown) <= 5000 and len(shown) > 4900
    kept = {}
    for i in shown:
        kept[md.domains[i]] = kept.get(md.domains[i], 0) + 1
    assert set(kept) == set(sizes)
    cap = max(kept.values())
    assert all(kept[d] == n for d, n in sizes.items() if n <= cap)      # small domains: every point
    assert kept["d1"] == cap < sizes["d1"]                                # the head is sampled down
    assert np.array_equal(shown, md.display_sample(5000, seed=1))
    assert np.array_equal(_md({"a": 10, "b": 5}).display_sample(5000), np.arange(15))


def test_min_cluster_size_is_unchanged_for_small_pools_and_capped_for_large_ones():
    assert clusters.min_cluster_size(6532) == 65          # R52: as before
    assert clusters.min_cluster_size(4125) == 41          # math_lt: as before
    assert clusters.min_cluster_size(100_000) == 200      # was 1000: larger than a Zipf tail domain
    assert clusters.min_cluster_size(500) == 10
    assert clusters.min_cluster_size(100_000, MapConfig(min_cluster_size=50)) == 50


def _blobs(sizes, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-40, 40, size=(len(sizes), 2))
    pts = np.concatenate([rng.normal(c, 0.6, size=(n, 2)) for c, n in zip(centres, sizes)])
    truth = np.concatenate([np.full(n, k) for k, n in enumerate(sizes)])
    return pts, truth


def test_sampled_hdbscan_finds_the_same_groups_as_the_full_run_tail_included():
    sizes = [6000, 3000, 1500, 800, 400, 250, 150, 120]       # long-tailed, the smallest ~1% of the points
    pts, truth = _blobs(sizes)
    full = clusters.hdbscan_clusters(pts, MapConfig(cluster_sample=100_000))
    sampled = clusters.hdbscan_clusters(pts, MapConfig(cluster_sample=3000))
    assert adjusted_rand_score(truth, full) > 0.95
    assert adjusted_rand_score(truth, sampled) > 0.95
    tail = sampled[truth == len(sizes) - 1]
    assert (tail == np.bincount(tail[tail >= 0]).argmax()).mean() > 0.9    # the smallest blob is one cluster
    assert len(set(sampled[truth == len(sizes) - 1]) - {-1}) == 1
    assert set(sampled[truth == 0]).isdisjoint(set(tail) - {-1})         # ... not merged into the head


def test_a_cluster_holding_most_of_the_points_is_split_at_its_bridge():
    rng = np.random.default_rng(0)
    big = [rng.normal((0, 0), 1.0, size=(1500, 2)), rng.normal((6, 0), 1.0, size=(1200, 2))]
    t = rng.uniform(0, 6, size=300)
    small = [rng.normal(c, 0.5, size=(150, 2)) for c in [(-15, 10), (20, 12), (3, -15)]]
    pts = np.concatenate([*big, np.c_[t, rng.normal(0, 0.3, size=300)], *small])
    truth = np.r_[np.zeros(1500), np.ones(1200), np.full(300, -1), np.repeat([2, 3, 4], 150)]
    m = clusters.min_cluster_size(len(pts))
    once = clusters._hdbscan(pts, m)
    assert np.bincount(once[once >= 0]).max() == 3000          # HDBSCAN alone: both blobs and the bridge, one cluster
    got = clusters.hdbscan_clusters(pts)
    a, b = (np.bincount(got[truth == k][got[truth == k] >= 0]).argmax() for k in (0, 1))
    assert a != b
    assert (got[truth == 0] == a).mean() > 0.9 and (got[truth == 1] == b).mean() > 0.9
    assert (got == clusters.NOISE).sum() <= (once == clusters.NOISE).sum()      # nobody clustered became noise
    assert np.bincount(got[got >= 0]).max() <= clusters.MAJORITY * len(pts)


def test_on_the_bundled_r52_map_earn_and_acq_are_two_clusters(ws):
    w, conn = ws
    md = embed.map_data(conn, w, "r52", "minilm", compute=False)
    doms = np.asarray(md.domains)
    got = clusters.hdbscan_clusters(np.c_[md.x, md.y])
    top = {d: np.bincount(got[doms == d][got[doms == d] >= 0]).argmax() for d in ("earn", "acq")}
    assert top["earn"] != top["acq"]
    assert adjusted_rand_score(doms, got) > 0.5                   # 0.375 with earn and acq as one cluster
    assert np.array_equal(got, md.cluster)                        # the shipped map carries these clusters


def test_umap_fitted_on_a_sample_places_the_rest_with_transform(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    emb = np.concatenate([rng.normal(c, 0.3, size=(150, 16)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), 150)
    cfg = MapConfig(umap_fit_sample=150, umap_neighbors=10)
    monkeypatch.setattr(clusters, "TRANSFORM_CHUNK", 100)   # 300 points to place: 3 parts
    xy = clusters.umap_layout(emb, cfg, workers=1)
    assert xy.shape == (450, 2) and np.isfinite(xy).all()
    from sklearn.neighbors import KNeighborsClassifier

    purity = KNeighborsClassifier(5).fit(xy, truth).score(xy, truth)
    assert purity > 0.95
    # the same parts transformed in two worker processes: the very same coordinates, even while the
    # process's __main__ is a script that must not run again (Streamlit and AppTest run pages as __main__)
    import sys
    import types

    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('a worker ran the page script again')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert np.array_equal(clusters.umap_layout(emb, cfg, workers=2), xy)


def test_a_region_of_a_sampled_map_shows_all_its_points():
    md = _md({f"d{r}": max(3, int(20_000 / r ** 1.1)) for r in range(1, 51)})
    box = (-0.5, 0.5, -0.5, 0.5)
    inside = np.flatnonzero((md.x >= -0.5) & (md.x <= 0.5) & (md.y >= -0.5) & (md.y <= 0.5))
    assert 5000 < len(inside) < 20_000
    assert np.array_equal(md.region(box, 20_000), inside)              # full detail inside the box
    assert len(md.display_sample(5000)) <= 5000                          # while the whole map is sampled
    capped = md.region(box, 3000)                                       # a region larger than the cap
    assert len(capped) <= 3000 and set(capped.tolist()) <= set(inside.tolist())
    assert {md.domains[i] for i in capped} == {md.domains[i] for i in inside}


class _NotInTheWorker:
    """Pickled by reference to this test module, which a worker interpreter cannot import."""

    def transform(self, x):
        return x


def test_a_failing_transform_worker_raises_with_its_error():
    parts = [np.arange(3), np.arange(3, 6)]
    with pytest.raises(RuntimeError, match=r"(?s)UMAP transform worker failed \(exit 1\).*ModuleNotFoundError"):
        list(clusters._transform_parts(_NotInTheWorker(), np.zeros((6, 2), np.float32), parts, 2))
