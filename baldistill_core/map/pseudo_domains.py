"""Clusters as domains: a dataset imported without a domain field takes its map's clusters as domains.

The workflow sits above both ``map.embed`` (the stored map) and ``map.clusters`` (noise
assignment), so neither imports the other's caller.
"""

from __future__ import annotations

import numpy as np

from baldistill_core import store
from baldistill_core.errors import ConfigError
from baldistill_core.map import embed
from baldistill_core.map.clusters import _WORD, NOISE_NAME, assign_noise


def has_domains(conn, dataset: str) -> bool:
    """False when every training example is in one domain: imported without a domain field
    ("all"), or with a domain column that holds a single value."""
    return len(store.domain_counts(conn, dataset)) > 1


def pseudo_domains(ids: list[str], coords: np.ndarray, labels: np.ndarray,
                   names: dict[int, str]) -> dict[str, str]:
    """Example id -> cluster name; noise joins the nearest cluster (or "other" if none exist)."""
    full = assign_noise(np.asarray(coords), np.asarray(labels))
    return {i: names.get(int(c), NOISE_NAME) for i, c in zip(ids, full.tolist())}


def nearest_domains(train_texts: list[str], train_domains: list[str], texts: list[str], k: int = 5) -> list[str]:
    """Domain of each text by majority of its ``k`` nearest training texts (TF-IDF cosine).

    Used for the test split, which the map does not embed: cheap and needs no model.

    >>> nearest_domains(["oil crude", "crude barrels", "wheat grain"], ["oil", "oil", "grain"],
    ...                 ["grain harvest wheat", "barrels of crude"], k=1)
    ['grain', 'oil']
    """
    if not texts:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    vec = TfidfVectorizer(sublinear_tf=True, token_pattern=_WORD.pattern)
    try:
        x_train = vec.fit_transform(train_texts)
    except ValueError:  # no words at all: fall back to the largest domain
        top = max(set(train_domains), key=train_domains.count)
        return [top] * len(texts)
    k = max(1, min(k, len(train_texts)))
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(x_train)
    _, idx = nn.kneighbors(vec.transform(texts))
    out = []
    for row in idx:
        votes: dict[str, int] = {}
        for j in row:  # nearest first, so ties go to the closest neighbour's domain
            votes[train_domains[j]] = votes.get(train_domains[j], 0) + 1
        out.append(max(votes, key=lambda d: votes[d]))
    return out


def apply_pseudo_domains(conn, ws, dataset: str, embedder: str = "minilm") -> dict[str, int]:
    """Make the map's clusters the domains of a dataset that has none; returns training counts per new domain.

    The map must be computed first (``embed.map_data``). Refuses a dataset with real domains, so a
    labelled dataset is never overwritten by clusters.
    """
    if has_domains(conn, dataset):
        raise ConfigError(
            f"dataset {dataset!r} already has domains; pseudo-domains are only for datasets imported "
            f"without a domain field (re-import it with an empty domain field to use clusters)"
        )
    found = embed.load_bundle(conn, ws, dataset, embedder)
    if found is None:
        raise ConfigError(f"no map computed for {dataset!r} with {embedder}; compute it first on the Map page "
                          f"or with `baldistill embed {dataset} --embedder {embedder}`")
    bundle, _ = found
    mapping = pseudo_domains(bundle.ids, bundle.coords, bundle.clusters, bundle.cluster_names)
    counts: dict[str, int] = {}
    for dom in mapping.values():
        counts[dom] = counts.get(dom, 0) + 1
    # The test split is not on the map: each test example takes the domain of its nearest training texts,
    # so per-domain evaluation sees the same pseudo-domains.
    train = store.examples(conn, dataset, "train")
    test = store.examples(conn, dataset, "test")
    if test:
        doms = nearest_domains([e["input"] for e in train], [mapping[e["id"]] for e in train],
                               [e["input"] for e in test])
        mapping.update({e["id"]: d for e, d in zip(test, doms)})
    store.set_domains(conn, dataset, mapping)
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
