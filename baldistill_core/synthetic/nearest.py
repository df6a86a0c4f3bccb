"""Nearest real examples of a synthetic one: the reviewer's check of originality.

Two indexes over one domain's real training inputs, both answering "which real examples is this
closest to", by cosine similarity:

* ``EmbeddingIndex``: the dataset's cached MiniLM embeddings (the Map page's bundle, shipped for
  the bundled demo data); the synthetic input is encoded with the same model. Used when the
  bundle exists.
* ``NearestIndex``: TF-IDF (word unigrams + bigrams, sublinear tf). Needs no model, builds in
  milliseconds for a domain, and catches the near-copies a reviewer must reject; the fallback.

Indexes are built once per (dataset, domain) by the caller's cache (``st.cache_resource``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baldistill_core import store

COPY_SIMILARITY = 0.9  # at or above: almost certainly a copy of a real example


@dataclass
class NearestIndex:
    ids: list[str]
    inputs: list[str]
    answers: list[str]
    vectorizer: object | None
    matrix: object | None  # sparse (n, vocab), L2-normalised rows

    @classmethod
    def build(cls, conn, dataset: str, domain: str) -> "NearestIndex":
        from sklearn.feature_extraction.text import TfidfVectorizer

        ex = store.examples(conn, dataset, "train", domain=domain)
        ids = [e["id"] for e in ex]
        inputs = [e["input"] for e in ex]
        answers = [e["answer"] for e in ex]
        if not ex:
            return cls(ids, inputs, answers, None, None)
        vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=100_000)
        try:
            m = vec.fit_transform(inputs)
        except ValueError:  # every input empty
            return cls(ids, inputs, answers, None, None)
        return cls(ids, inputs, answers, vec, m)

    def query(self, text: str, k: int = 3) -> list[dict]:
        """The ``k`` most similar real examples: ``{id, input, answer, similarity}``, best first."""
        if self.vectorizer is None or not text.strip():
            return []
        q = self.vectorizer.transform([text])
        sims = (self.matrix @ q.T).toarray().ravel()
        order = np.argsort(-sims, kind="stable")[:k]
        return [dict(id=self.ids[i], input=self.inputs[i], answer=self.answers[i], similarity=float(sims[i]))
                for i in order]


def nearest_real(conn, dataset: str, domain: str, text: str, k: int = 3) -> list[dict]:
    """One-off lookup (builds the index each call; pages use a cached ``NearestIndex``)."""
    return NearestIndex.build(conn, dataset, domain).query(text, k)


def looks_copied(neighbours: list[dict], threshold: float = COPY_SIMILARITY) -> bool:
    """True when the closest real example is nearly identical.

    >>> looks_copied([{"similarity": 0.95}]), looks_copied([{"similarity": 0.3}]), looks_copied([])
    (True, False, False)
    """
    return bool(neighbours) and neighbours[0]["similarity"] >= threshold


@dataclass
class EmbeddingIndex:
    ids: list[str]
    inputs: list[str]
    answers: list[str]
    matrix: np.ndarray  # float32 (n, d), L2-normalised rows

    @classmethod
    def from_bundle(cls, conn, ws, dataset: str, domain: str, embedder: str = "minilm") -> "EmbeddingIndex | None":
        """The domain's rows of the cached embedding bundle, or None when the dataset has no bundle."""
        from baldistill_core.map import embed

        found = embed.load_bundle(conn, ws, dataset, embedder)
        if found is None:
            return None
        bundle, _ = found
        ex = {e["id"]: e for e in store.examples(conn, dataset, "train", domain=domain)}
        rows = [i for i, x in enumerate(bundle.ids) if x in ex]
        ids = [bundle.ids[i] for i in rows]
        m = np.asarray(bundle.embeddings[rows], dtype=np.float32) if rows else np.zeros((0, 1), np.float32)
        return cls(ids, [ex[i]["input"] for i in ids], [ex[i]["answer"] for i in ids], m)

    def query_vector(self, vec: np.ndarray, k: int = 3) -> list[dict]:
        if not self.ids:
            return []
        sims = self.matrix @ np.asarray(vec, dtype=np.float32).ravel()
        order = np.argsort(-sims, kind="stable")[:k]
        return [dict(id=self.ids[i], input=self.inputs[i], answer=self.answers[i], similarity=float(sims[i]))
                for i in order]


def encode(texts: list[str], embedder: str = "minilm") -> np.ndarray:
    """Vectors of ``texts`` with the embedder the bundle was made with (L2-normalised)."""
    from baldistill_core.map import embed

    return embed.get_embedder(embedder).encode(texts)
