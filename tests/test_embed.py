"""The embedding map: embedders, UMAP + HDBSCAN + keyword names, the disk cache, pseudo-domains, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baldistill_core import store
from baldistill_core.map import clusters
from baldistill_core.map import pseudo_domains as pseudo
from baldistill_core.data import loading as data
from baldistill_core.map import embed
from baldistill_core.config import MapConfig

from _embed_helpers import TOPICS, import_toy, toy_rows


def test_tfidf_embedder_normalized_and_topical():
    rows = toy_rows(30)
    emb = embed.get_embedder("tfidf").encode([r["input"] for r in rows])
    assert emb.dtype == np.float32 and emb.shape[0] == 90
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    topic = np.array([r["answer"] for r in rows])
    sims = emb @ emb.T
    same = sims[topic[:, None] == topic[None, :]].mean()
    other = sims[topic[:, None] != topic[None, :]].mean()
    assert same > other + 0.3


def test_tfidf_embedder_degenerate_inputs():
    e = embed.get_embedder("tfidf")
    assert e.encode([]).shape[0] == 0
    out = e.encode(["the a", "of the"])  # stop words only: no vocabulary
    assert out.shape[0] == 2 and np.isfinite(out).all()


def test_unknown_embedder_names_the_choices():
    with pytest.raises(ValueError, match="minilm.*tfidf|tfidf.*minilm"):
        embed.get_embedder("word2vec")


def test_progress_callback_reaches_total():
    calls = []
    embed.get_embedder("tfidf").encode(["oil crude", "wheat grain", "bank loans"], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)


def test_cluster_keywords_name_each_topic():
    rows = toy_rows(20)
    labels = np.array([list(TOPICS).index(r["answer"]) for r in rows])
    names = clusters.cluster_keywords([r["input"] for r in rows], labels, k=3)
    assert set(names) == {0, 1, 2}
    for c, topic in enumerate(TOPICS):
        assert set(names[c].split(" · ")) <= set(TOPICS[topic]), names[c]
    assert len(set(names.values())) == 3


def test_assign_noise_joins_nearest_cluster():
    coords = np.array([[0, 0], [0, 1], [10, 10], [10, 11], [9, 9], [1, 0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, -1, -1])
    assert clusters.assign_noise(coords, labels).tolist() == [0, 0, 1, 1, 1, 0]
    assert clusters.assign_noise(coords, np.full(6, -1)).tolist() == [-1] * 6


def test_map_cache_round_trip_and_invalidation(empty_ws, tmp_path):
    ws, conn = empty_ws
    rows = import_toy(conn, tmp_path)
    assert embed.map_data(conn, ws, "toy", "tfidf", compute=False) is None

    seen = []
    md = embed.map_data(conn, ws, "toy", "tfidf", progress=lambda d, t: seen.append((d, t)))
    assert md.source == "computed" and len(md) == len(rows) and seen[-1] == (120, 120)
    assert md.ids == [r["id"] for r in rows]  # file order kept
    # three well separated topics -> three clusters whose names come from their topic words
    assert len(md.cluster_names) == 3, md.cluster_names
    folder = embed.cache_folder(ws, store.get_dataset(conn, "toy")["content_hash"], "tfidf")
    assert np.load(folder / "embeddings.npy").dtype == np.float16
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["embedder"] == "tfidf" and meta["n"] == 120

    warm = embed.map_data(conn, ws, "toy", "tfidf", compute=False)
    assert warm.source == "cache"
    np.testing.assert_array_equal(warm.x, md.x)
    np.testing.assert_array_equal(warm.cluster, md.cluster)
    assert embed.map_data(conn, ws, "toy", "minilm", compute=False) is None  # keyed by embedder too

    # Changing one text changes the content hash: the old map is not served for the new data.
    rows[0] = dict(rows[0], input=rows[0]["input"] + " pipeline")
    import_toy(conn, tmp_path, rows=rows)
    assert embed.map_data(conn, ws, "toy", "tfidf", compute=False) is None


def test_corrupt_cache_is_ignored(empty_ws, tmp_path):
    ws, conn = empty_ws
    import_toy(conn, tmp_path, rows=toy_rows(5))
    h = store.get_dataset(conn, "toy")["content_hash"]
    folder = embed.cache_folder(ws, h, "tfidf")
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{not json")
    assert embed.find_cached(ws, "toy", h, "tfidf") is None


def test_pseudo_domains_from_clusters(empty_ws, tmp_path):
    ws, conn = empty_ws
    test_rows = [dict(r, id=f"t-{r['id']}") for r in toy_rows(4, seed=1)]
    rows = import_toy(conn, tmp_path, test_rows=test_rows)
    assert not pseudo.has_domains(conn, "toy")
    with pytest.raises(ValueError, match="compute it first on the Map page"):
        pseudo.apply_pseudo_domains(conn, ws, "toy", "tfidf")
    embed.map_data(conn, ws, "toy", "tfidf")
    counts = pseudo.apply_pseudo_domains(conn, ws, "toy", "tfidf")
    assert sum(counts.values()) == len(rows) and len(counts) == 3
    assert pseudo.has_domains(conn, "toy")
    # every example landed in the pseudo-domain named after its own topic's words
    by_id = {e["id"]: e["domain"] for e in store.examples(conn, "toy")}
    for r in rows:
        assert set(by_id[r["id"]].split(" · ")) <= set(TOPICS[r["answer"]])
    # the test split (not on the map) follows its nearest training texts
    test_dom = {e["id"]: e["domain"] for e in store.examples(conn, "toy", "test")}
    for r in test_rows:
        assert set(test_dom[r["id"]].split(" · ")) <= set(TOPICS[r["answer"]])
    with pytest.raises(ValueError, match="already has domains"):
        pseudo.apply_pseudo_domains(conn, ws, "toy", "tfidf")


def test_missing_dataset_error_lists_datasets(empty_ws, tmp_path):
    ws, conn = empty_ws
    import_toy(conn, tmp_path, rows=toy_rows(3))
    with pytest.raises(data.DataError, match="toy"):
        embed.map_data(conn, ws, "nope", "tfidf")


def test_cli_embed_and_pseudo_domains(empty_ws, tmp_path, capsys):
    from baldistill_core.cli import main

    ws, conn = empty_ws
    import_toy(conn, tmp_path)
    assert main(["embed", "toy", "--embedder", "tfidf", "-w", str(ws.root), "--pseudo-domains"]) == 0
    out = capsys.readouterr().out
    assert "toy: 120 points, 3 clusters" in out and "3 pseudo-domains" in out
    assert main(["embed", "nope", "--embedder", "tfidf", "-w", str(ws.root)]) == 2


@pytest.mark.parametrize("name", sorted(data.bundled_specs()))
def test_shipped_bundle_matches_bundled_dataset(ws, name):
    """The demos' precomputed maps load warm and belong to the data as shipped."""
    w, conn = ws
    d = store.get_dataset(conn, name)
    folder = embed.bundle_folder(name, "minilm")
    if not folder.exists():
        pytest.fail(f"{folder} is missing: run `baldistill embed {name} --bundle`")
    meta = embed.read_meta(folder)
    assert meta and meta["content_hash"] == d["content_hash"], "bundle is stale: rerun `baldistill embed --bundle --force`"
    md = embed.map_data(conn, w, name, "minilm", compute=False)
    assert md.source == "bundle" and len(md) == d["n_train"]
    assert np.isfinite(md.x).all() and len(md.cluster_names) >= 2


def test_clip_words_never_cuts_within_the_model_window():
    long = " ".join(f"w{i}" for i in range(1000))
    assert embed.clip_words(long, 256).split() == long.split()[:256]


@pytest.mark.slow
def test_minilm_offline_384d_and_matches_raw_encode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = embed.get_embedder("minilm", MapConfig(batch_size=4))
    texts = ["The cat sits on the mat.", "A kitten is sitting on a rug.", "Crude oil prices rose sharply today.",
             "word " * 600, "Interest rates were cut by the central bank."]
    out = e.encode(texts)
    assert out.shape == (5, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert out[0] @ out[1] > out[0] @ out[2] + 0.3
    # Our length sorting, chunking and word clipping change nothing vs. the library call.
    raw = e.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(out, raw, atol=2e-5)


def test_cluster_names_skip_format_words_shared_by_most_clusters():
    from baldistill_core.map import clusters
    import numpy as np

    topics = ["oil crude barrels", "wheat grain tonnes", "gold bullion ounces", "coffee beans arabica"]
    texts = [f"Question: which choice fits? Choices: A B C D. {t} {t}" for t in topics for _ in range(3)]
    labels = np.repeat(np.arange(4), 3)
    names = clusters.cluster_keywords(texts, labels, k=2)
    words = {w for n in names.values() for w in n.split(" · ")}
    assert not words & {"question", "choice", "choices", "fits"}, names
    assert names[0] in ("barrels · crude", "crude · oil", "barrels · oil", "crude · barrels")


def test_umap_compiles_once_per_machine_not_per_process(tmp_path):
    """umap-learn's numba functions are imported with numba's disk cache on, so a new process (each
    `baldistill embed`, each server start) loads them instead of compiling them again; the numba
    decorators are left as they were, and the layout is the same in a second process."""
    import subprocess
    import sys

    import numba

    before = (numba.njit, numba.jit)
    umap = clusters.import_umap()
    import umap.distances

    assert type(umap.distances.euclidean._cache).__name__ == "FunctionCache"   # not NullCache
    assert (numba.njit, numba.jit) == before
    code = ("import numpy as np; from baldistill_core.map import clusters; from baldistill_core.config import MapConfig;"
            "x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32);"
            "print(clusters.umap_layout(x, MapConfig()).round(4).tobytes().hex())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                           check=True).stdout.strip() for _ in range(2)}
    assert len(outs) == 1 and outs != {""}


def test_a_map_with_nothing_to_embed_says_so(empty_ws, tmp_path):
    """Texts TF-IDF finds no words in (numbers, codes) would be laid out as identical points: the map is
    refused with the fix (MiniLM) instead of drawing a meaningless picture."""
    from baldistill_core.errors import DataError

    _, conn = empty_ws
    rows = [dict(id=f"n{i}", input=f"{i * 7} {i % 13} 42", answer="x") for i in range(60)]
    import_toy(conn, tmp_path, name="codes", rows=rows)
    with pytest.raises(DataError, match="nothing to go on in 60 of 60 texts.*MiniLM"):
        embed.compute_bundle(conn, "codes", "tfidf")
