"""2-D layout, clusters and their keyword names (pseudo-domains from them: ``map.pseudo_domains``).

UMAP (umap-learn, cosine, fixed seed) places the sentence embeddings on a plane; scikit-learn's
HDBSCAN finds dense groups on that plane (clustering the 2-D layout is what makes the colours
agree with what the user sees); each cluster is named by its most distinctive words (class-based
TF-IDF: a cluster's words weighted against how common they are in all clusters).

Both scale past a few ten thousand points by sampling: UMAP is fitted on ``umap_fit_sample``
points and places the rest with ``transform``; HDBSCAN (whose spanning tree grows about n²) runs
on ``cluster_sample`` points and every other point takes the label of its nearest sampled point
(a KD-tree query, n log n). Below those sizes (the bundled demos) nothing changes.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import warnings

import numpy as np

from baldistill_core.config import MapConfig

NOISE = -1
NOISE_NAME = "other"


def hover_text(text: str, n: int) -> str:
    """One line of at most ``n`` characters.

    >>> hover_text("a  b\\nc", 10)
    'a b c'
    >>> hover_text("abcdefghij", 5)
    'abcd…'
    """
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def sample_index(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` of ``n`` indices, seeded, sorted (all of them when ``k >= n``)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def check_embedded(emb: np.ndarray, embedder: str, dataset: str) -> None:
    """Refuse to lay out a map where most texts embedded to nothing (all-zero rows): their points would
    all coincide, a picture that says nothing. TF-IDF gives zeros to a text with no word it keeps."""
    n = len(emb)
    empty = int((~np.any(np.asarray(emb) != 0, axis=1)).sum()) if n else 0
    if n >= 50 and empty > n // 2:
        from baldistill_core.errors import DataError

        raise DataError(f"the {embedder} embedder found nothing to go on in {empty:,} of {n:,} texts of "
                        f"{dataset!r} (TF-IDF keeps words of two or more letters, minus English stop words); "
                        "use the MiniLM embedder for this dataset")


_UMAP_IMPORT = threading.Lock()


def import_umap():
    """umap-learn with its numba functions compiled once per machine, not once per process.

    umap-learn (and pynndescent) declare most of their numba functions without ``cache=True``, so a new
    process compiled them again: 13 s of a 2,000-point fit, 87 of 88 s of UMAP for 10k points under load.
    Importing it while ``numba.njit``/``numba.jit`` default to ``cache=True`` keeps the compiled code on
    disk (numba's own cache beside the package, or its user cache dir when that is read-only); the
    layout is identical. A function numba cannot cache is compiled as before.
    """
    import sys

    if "umap" in sys.modules:
        return sys.modules["umap"]
    import numba

    def cached(decorator):
        @functools.wraps(decorator)
        def wrap(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)
        return wrap

    with _UMAP_IMPORT:
        plain = {name: getattr(numba, name) for name in ("njit", "jit")}
        try:
            for name, decorator in plain.items():
                setattr(numba, name, cached(decorator))
            import umap
        finally:
            for name, decorator in plain.items():
                setattr(numba, name, decorator)
    return umap


def umap_layout(emb: np.ndarray, cfg: MapConfig | None = None, workers: int | None = None) -> np.ndarray:
    """(n, 2) float32 UMAP coordinates; tiny inputs (< 4 points) get a trivial layout. Above
    ``cfg.umap_fit_sample`` points the layout is fitted on a seeded sample and the rest transformed,
    in ``workers`` processes (default: one per core; the coordinates do not depend on it)."""
    cfg = cfg or MapConfig()
    emb = np.asarray(emb, dtype=np.float32)
    n = emb.shape[0]
    if n < 4:
        return np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    umap = import_umap()

    fit_idx = sample_index(n, cfg.umap_fit_sample, cfg.random_state)
    m = len(fit_idx)
    reducer = umap.UMAP(n_neighbors=min(cfg.umap_neighbors, m - 1), n_components=2, metric="cosine",
                        min_dist=cfg.umap_min_dist, random_state=cfg.random_state,
                        init="spectral" if m > 10 else "random")
    with warnings.catch_warnings():
        # "n_jobs overridden to 1 by setting random_state": expected, the seed makes the map reproducible.
        warnings.simplefilter("ignore", UserWarning)
        if m == n:
            return reducer.fit_transform(emb).astype(np.float32)
        out = np.empty((n, 2), dtype=np.float32)
        out[fit_idx] = reducer.fit_transform(emb[fit_idx])
        rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
        parts = [rest[i:i + TRANSFORM_CHUNK] for i in range(0, len(rest), TRANSFORM_CHUNK)]  # bounded memory
        for part, xy in zip(parts, _transform_parts(reducer, emb, parts, workers)):
            out[part] = xy
        return out


TRANSFORM_CHUNK = 50_000


def _transform_parts(reducer, emb: np.ndarray, parts: list[np.ndarray], workers: int | None):
    """``reducer.transform`` of each part, in order. The parts are independent, and each transform
    seeds itself from the reducer's ``transform_seed``, so worker processes give the same coordinates
    as one process (tested); ``workers`` None = one per core.

    The workers are fresh interpreters (``python -m baldistill_core.map.umap_worker``) that read the
    pickled reducer and their parts from a temporary folder: not ``multiprocessing``, whose spawned
    children re-run the parent's ``__main__``, and under Streamlit that is the page script."""
    workers = min(len(parts), os.cpu_count() or 1) if workers is None else min(workers, len(parts))
    if workers <= 1:
        for part in parts:
            yield reducer.transform(emb[part])
        return
    import pickle
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="baldistill-umap-") as tmp:
        folder = Path(tmp)
        (folder / "reducer.pkl").write_bytes(pickle.dumps(reducer))
        for i, part in enumerate(parts):
            np.save(folder / f"in{i}.npy", emb[part])
        root = str(Path(__file__).resolve().parents[2])   # this checkout, importable in the worker
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        procs = []
        for w in range(workers):   # stderr to a file: a full pipe would stall a worker until its turn to be read
            with open(folder / f"err{w}.txt", "wb") as err:
                procs.append(subprocess.Popen([sys.executable, "-m", "baldistill_core.map.umap_worker", tmp, str(w),
                                               str(workers), str(len(parts))], env=env, stdout=subprocess.DEVNULL,
                                              stderr=err))
        failed = [w for w, p in enumerate(procs) if p.wait()]
        if failed:
            text = (folder / f"err{failed[0]}.txt").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"a UMAP transform worker failed (exit {procs[failed[0]].returncode}): {text}")
        for i in range(len(parts)):
            yield np.load(folder / f"out{i}.npy")


MAX_AUTO_MIN_CLUSTER = 200


def min_cluster_size(n: int, cfg: MapConfig | None = None) -> int:
    """About 1% of the points, at least 10 and at most ``MAX_AUTO_MIN_CLUSTER`` (capped by n).

    The cap keeps tail topics apart in a large pool: at 100k points 1% is 1000, larger than the
    smallest of 50 Zipf-sized domains, which HDBSCAN would then fold into a neighbour. Pools up to
    20k points (the bundled demos) get the same value as before.
    """
    cfg = cfg or MapConfig()
    if cfg.min_cluster_size is not None:
        return max(2, min(cfg.min_cluster_size, n))
    return max(2, min(n, max(10, min(n // 100, MAX_AUTO_MIN_CLUSTER))))


def hdbscan_clusters(coords: np.ndarray, cfg: MapConfig | None = None) -> np.ndarray:
    """HDBSCAN labels on the 2-D layout; -1 marks noise. Above ``cfg.cluster_sample`` points HDBSCAN
    runs on a seeded sample (``min_cluster_size`` scaled to it) and the rest take their nearest
    sampled point's label. A cluster with most of the points is split (``split_majority``)."""
    cfg = cfg or MapConfig()
    coords = np.asarray(coords, dtype=np.float64)
    n = coords.shape[0]
    if n < 3:
        return np.full(n, NOISE, dtype=np.int32)
    m = min_cluster_size(n, cfg)
    idx = sample_index(n, cfg.cluster_sample, cfg.random_state)
    if len(idx) < n:
        m = max(5, round(m * len(idx) / n))
    labels = split_majority(coords[idx], _hdbscan(coords[idx], m), m)
    if len(idx) == n:
        return labels
    out = np.empty(n, dtype=np.int32)
    out[idx] = labels
    rest = np.setdiff1d(np.arange(n), idx, assume_unique=True)
    out[rest] = labels[_nearest(coords[idx], coords[rest])]
    return out


def _nearest(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each ``query`` point, the index of its nearest ``known`` point (a KD-tree, n log n)."""
    from sklearn.neighbors import KDTree

    return KDTree(known).query(query, k=1, return_distance=False)[:, 0]


MAJORITY = 0.5
MIN_PART = 0.25


def _hdbscan(coords: np.ndarray, m: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=m, min_samples=max(2, min(m, 10)), copy=True).fit_predict(coords).astype(np.int32)


def split_majority(coords: np.ndarray, labels: np.ndarray, m: int, passes: int = 3) -> np.ndarray:
    """A cluster holding more than ``MAJORITY`` of the points is clustered again on its own points.

    HDBSCAN's excess-of-mass choice keeps two big groups joined by a thin bridge as one cluster when
    the joined cluster is more stable than its halves (on the bundled R52 map, earn and acq: 55% of
    the points in one cluster). On its own points HDBSCAN must split it (it never returns the whole
    input as one cluster), so the halves come apart; points that the second pass calls noise join
    the nearest of the new clusters, so no point that was clustered becomes noise.

    The split is kept only when it has two parts of at least ``MIN_PART`` of the cluster each: two
    groups under one name. Forced to split one round blob (a real domain with half the pool),
    HDBSCAN peels off a small rim instead (a 16% part, in the test of a 6,000-point blob), and the
    cluster stays whole. On R52 the parts are 50% and 40% of the joined cluster.
    """
    labels = np.asarray(labels, dtype=np.int32).copy()
    n = len(labels)
    for _ in range(passes):
        sizes = np.bincount(labels[labels >= 0])
        big = np.flatnonzero(sizes > MAJORITY * n)
        if not len(big):
            break
        idx = np.flatnonzero(labels == big[0])
        sub = _hdbscan(coords[idx], m)
        kept = sub >= 0
        parts = np.sort(np.bincount(sub[kept]))[::-1]
        if len(parts) < 2 or parts[1] < MIN_PART * len(idx):
            break
        if not kept.all():
            sub[~kept] = sub[kept][_nearest(coords[idx][kept], coords[idx][~kept])]
        top = labels.max() + 1
        labels[idx] = np.where(sub == 0, big[0], top + sub - 1)
    return labels


_WORD = re.compile(r"[^\W\d_]{3,}")


def cluster_keywords(texts: list[str], labels: np.ndarray, k: int = 3) -> dict[int, str]:
    """Name each cluster by its ``k`` most distinctive words (class-based TF-IDF), e.g.
    ``"oil · crude · barrels"``; names are made unique. Noise (-1) is not named.

    Words that occur in most clusters (more than half of them, with 3 clusters or more) are the
    dataset's format ("question", "choice", "answer") rather than a topic: they never name a cluster.

    >>> cluster_keywords(["oil price crude", "crude oil barrels", "wheat grain crop", "grain wheat tonnes"],
    ...                  np.array([0, 0, 1, 1]), k=2)
    {0: 'crude · oil', 1: 'grain · wheat'}
    >>> cluster_keywords(["question choice oil crude", "question choice wheat grain", "question choice gold ore"],
    ...                  np.array([0, 1, 2]), k=2)
    {0: 'crude · oil', 1: 'grain · wheat', 2: 'gold · ore'}
    """
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    ids = sorted(int(c) for c in set(labels.tolist()) if c != NOISE)
    if not ids:
        return {}
    docs = [" ".join(texts[i] for i in np.flatnonzero(labels == c)) for c in ids]
    try:
        cv = CountVectorizer(stop_words="english", token_pattern=_WORD.pattern, lowercase=True)
        counts = cv.fit_transform(docs).astype(np.float64).toarray()
    except ValueError:  # no words at all
        return {c: f"cluster {c}" for c in ids}
    vocab = np.array(cv.get_feature_names_out())
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    avg_words = counts.sum() / len(ids)
    idf = np.log1p(avg_words / np.maximum(counts.sum(axis=0), 1.0))
    score = tf * idf
    if len(ids) >= 3:  # format words: present in more than half of the clusters
        score[:, (counts > 0).sum(axis=0) > len(ids) / 2] = 0.0
    names: dict[int, str] = {}
    used: set[str] = set()
    for row, c in enumerate(ids):
        top = [vocab[j] for j in np.argsort(-score[row], kind="stable")[:k] if score[row, j] > 0]
        name = " · ".join(top) if top else f"cluster {c}"
        if name in used:
            name = f"{name} ({c})"
        used.add(name)
        names[c] = name
    return names


def assign_noise(coords: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give each noise point the cluster whose centroid is nearest on the map."""
    labels = np.asarray(labels).copy()
    ids = sorted(int(c) for c in set(labels.tolist()) if c != NOISE)
    noise = labels == NOISE
    if not ids or not noise.any():
        return labels
    centroids = np.stack([coords[labels == c].mean(axis=0) for c in ids])
    d = ((coords[noise][:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    labels[noise] = np.asarray(ids)[d.argmin(axis=1)]
    return labels
