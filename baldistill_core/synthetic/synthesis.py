"""Synthetic tail examples: store with dedup, fill the review queue, fill a stage's gap.

Every synthetic example is stored with status ``pending`` for human review (``review.py``);
only ``approved`` / ``edited`` ones reach training (``approved_synthetic``). Storing rejects
exact duplicates (of each other, of real train/test inputs, and of synthetic examples of the same
run) and flags near-duplicates (word 3-gram Jaccard >= ``NEAR_DUP_JACCARD``) in ``duplicate_of``
for the reviewer. Items the teacher's blind verification disagreed with are stored as
``rejected`` (reason says why) so the audit trail shows them but they never train.

Near-duplicate search uses prefix filtering (All-Pairs): with shingles in a fixed global order
(rarest first), two sets with Jaccard >= t must share a token among the first
``|x| - ceil(t*|x|) + 1`` of each, so only those prefixes are indexed — exact, and fast enough to
check thousands of items against the ~9,000 real inputs of a bundled dataset.
"""

from __future__ import annotations

from baldistill_core.errors import DataError

import hashlib
import math
import re
import sqlite3
from pathlib import Path

from baldistill_core import store
from baldistill_core.task.answers import extract_answer, is_correct
from baldistill_core.config import DatasetSpec
from baldistill_core.teacher.backends import recorded_synthetic_rows
from baldistill_core.teacher.parsing import norm_input

NEAR_DUP_JACCARD = 0.8
_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 3) -> frozenset[int]:
    """Hashed word n-grams of a text (the whole text if it has fewer than n words)."""
    words = _WORD.findall((text or "").lower())
    if len(words) < n:
        return frozenset([hash(" ".join(words))])
    return frozenset(hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    """Jaccard similarity of two sets.

    >>> jaccard(frozenset({1, 2, 3}), frozenset({2, 3, 4}))
    0.5
    """
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class NearDupIndex:
    """Jaccard near-duplicate search over shingle sets by prefix filtering."""

    def __init__(self, df: dict[int, int] | None = None, threshold: float = NEAR_DUP_JACCARD):
        self.t = threshold
        self.df = df or {}
        self.ids: list[str] = []
        self.sets: list[frozenset] = []
        self.postings: dict[int, list[int]] = {}

    @classmethod
    def from_texts(cls, pairs: list[tuple[str, str]], threshold: float = NEAR_DUP_JACCARD) -> "NearDupIndex":
        sets = [(i, shingles(t)) for i, t in pairs]
        df: dict[int, int] = {}
        for _, s in sets:
            for tok in s:
                df[tok] = df.get(tok, 0) + 1
        idx = cls(df, threshold)
        for i, s in sets:
            idx.add(i, s)
        return idx

    def _prefix(self, s: frozenset) -> list[int]:
        k = len(s) - math.ceil(self.t * len(s)) + 1
        return sorted(s, key=lambda tok: (self.df.get(tok, 0), tok))[:max(1, k)]

    def add(self, ex_id: str, s: frozenset) -> None:
        pos = len(self.ids)
        self.ids.append(ex_id)
        self.sets.append(s)
        for tok in self._prefix(s):
            self.postings.setdefault(tok, []).append(pos)

    def nearest(self, s: frozenset) -> tuple[str, float] | None:
        """The most similar indexed text with Jaccard >= threshold, or None."""
        cands: set[int] = set()
        for tok in self._prefix(s):
            cands.update(self.postings.get(tok, ()))
        best = None
        for pos in cands:
            j = jaccard(s, self.sets[pos])
            if j >= self.t and (best is None or j > best[1]):
                best = (self.ids[pos], j)
        return best


_REAL_INDEX: dict[tuple[str, str], tuple[NearDupIndex, dict[str, str]]] = {}


def _real_index(conn: sqlite3.Connection, dataset: str) -> tuple[NearDupIndex, dict[str, str]]:
    """(near-dup index, exact map normalised input -> id) of a dataset's real train+test inputs,
    cached by content hash so a re-import rebuilds it."""
    d = store.get_dataset(conn, dataset)
    if d is None:
        raise DataError(f"dataset {dataset!r} is not in the workspace; import it first (`baldistill data import`)")
    key = (dataset, d["content_hash"])
    hit = _REAL_INDEX.get(key)
    if hit is None:
        pairs = [(r["id"], r["input"]) for r in store.rows(
            conn, "SELECT id, input FROM examples WHERE dataset = ? ORDER BY split DESC, row", (dataset,))]
        exact = {}
        for i, t in pairs:
            exact.setdefault(norm_input(t), i)
        hit = (NearDupIndex.from_texts(pairs), exact)
        if len(_REAL_INDEX) > 8:
            _REAL_INDEX.clear()
        _REAL_INDEX[key] = hit
    return hit


def synthetic_id(dataset: str, run_id: str | None, text: str) -> str:
    h = hashlib.sha1(f"{dataset}\x1f{run_id or ''}\x1f{norm_input(text)}".encode()).hexdigest()[:16]
    return f"syn-{h}"


def store_synthetic_report(conn: sqlite3.Connection, dataset: str, items: list[dict], *, run_id: str | None = None,
                           stage: int | None = None, source: str = "teacher") -> dict:
    """Store items; returns {"pending": ids, "auto_rejected": ids, "skipped": [(input, reason)]}."""
    real, real_exact = _real_index(conn, dataset)
    scope = store.rows(conn, "SELECT id, input FROM synthetic WHERE dataset = ? AND run_id IS ?", (dataset, run_id))
    scope_exact = {norm_input(r["input"]): r["id"] for r in scope}
    scope_idx = NearDupIndex(real.df)
    for r in scope:
        scope_idx.add(r["id"], shingles(r["input"]))
    pending, auto_rejected, skipped, rows = [], [], [], []
    for it in items:
        text = (it.get("input") or "").strip()
        key = norm_input(text)
        if not text or not (it.get("answer") or "").strip():
            skipped.append((text[:80], "missing input or answer"))
            continue
        if key in real_exact:
            skipped.append((text[:80], f"exact duplicate of real example {real_exact[key]}"))
            continue
        if key in scope_exact:
            skipped.append((text[:80], f"exact duplicate of synthetic example {scope_exact[key]}"))
            continue
        sh = shingles(text)
        near = [m for m in (real.nearest(sh), scope_idx.nearest(sh)) if m]
        dup_of = max(near, key=lambda m: m[1])[0] if near else it.get("duplicate_of")
        sid = synthetic_id(dataset, run_id, text)
        scope_exact[key] = sid
        scope_idx.add(sid, sh)
        verified = it.get("verified")
        status, reason = "pending", None
        if verified is False or verified == 0:
            status = "rejected"
            reason = f"verification disagreed: the teacher answered {it.get('verify_answer')!r} when solving blind"
        rows.append((sid, dataset, run_id, stage, it.get("domain") or "", text, str(it["answer"]).strip(),
                     it.get("rationale") or "", it.get("teacher_answer"), source,
                     None if verified is None else int(bool(verified)), it.get("verify_answer"), dup_of, status,
                     reason, "system" if status == "rejected" else None,
                     store.now() if status == "rejected" else None, store.now()))
        (auto_rejected if status == "rejected" else pending).append(sid)
    with store.transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO synthetic(id, dataset, run_id, stage, domain, input, answer, rationale,"
            " teacher_answer, source, verified, verify_answer, duplicate_of, status, reason, reviewer, decided_at,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return {"pending": pending, "auto_rejected": auto_rejected, "skipped": skipped}


def store_synthetic(conn: sqlite3.Connection, dataset: str, items: list[dict], *, run_id: str | None = None,
                    stage: int | None = None, source: str = "teacher") -> list[str]:
    """Store synthetic items for review; returns the ids of the new ``pending`` ones.

    Exact duplicates are skipped, near-duplicates stored with ``duplicate_of``, items whose blind
    verification disagreed stored as ``rejected`` (not returned).
    """
    return store_synthetic_report(conn, dataset, items, run_id=run_id, stage=stage, source=source)["pending"]


def import_recorded_synthetic(conn: sqlite3.Connection, spec: DatasetSpec, *, per_domain: int | None = None) -> int:
    """Fill the review queue from the bundled recorded synthetic examples (run_id NULL, source
    'recorded'); idempotent. The recorded rationale's own final answer (our extractor, not the old
    substring parser) stands in for the blind verification. Returns the number of new pending items."""
    return len(import_recorded_synthetic_report(conn, spec, per_domain=per_domain)["pending"])


def import_recorded_synthetic_report(conn: sqlite3.Connection, spec: DatasetSpec, *,
                                     per_domain: int | None = None) -> dict:
    """``import_recorded_synthetic`` with the whole outcome: ``{"pending": ids, "auto_rejected": ids,
    "skipped": [(input, reason)]}`` (auto-rejected = the recorded answer disagrees with the gold one)."""
    if not spec.recorded_synthetic:
        raise DataError(f"dataset {spec.name!r} has no recorded synthetic examples (recorded_synthetic is empty); "
                        f"synthesize with a teacher instead (Review page or `baldistill teacher synthesize`)")
    labels = (store.get_dataset(conn, spec.name) or {}).get("label_set")
    taken: dict[str, int] = {}
    items = []
    for r in recorded_synthetic_rows(spec.recorded_synthetic):
        if per_domain is not None and taken.get(r["domain"], 0) >= per_domain:
            continue
        taken[r["domain"]] = taken.get(r["domain"], 0) + 1
        ta = extract_answer(r.get("rationale") or "", spec.task_type, labels)
        items.append({"domain": r["domain"], "input": r["input"], "answer": r["answer"],
                      "rationale": r.get("rationale") or "", "teacher_answer": ta, "verify_answer": ta,
                      "verified": is_correct(ta, r["answer"], spec.task_type)})
    report = store_synthetic_report(conn, spec.name, items, source="recorded")
    record_provenance(conn, report["pending"] + report["auto_rejected"], teacher_model=f"recorded:{spec.name}", backend="recorded",
                      source_file=Path(spec.recorded_synthetic).name)
    return report


def _parse_row(r: dict) -> dict:
    import json

    r = dict(r)
    r["original"] = json.loads(r["original"]) if r.get("original") else None
    return r


def approved_synthetic(conn: sqlite3.Connection, dataset: str, domain: str, *, exclude_ids=()) -> list[dict]:
    """Approved or edited synthetic examples of a domain (edits applied), oldest first."""
    rows = store.rows(
        conn, "SELECT * FROM synthetic WHERE dataset = ? AND domain = ? AND status IN ('approved', 'edited')"
              " ORDER BY created_at, id", (dataset, domain))
    ex = set(exclude_ids)
    return [_parse_row(r) for r in rows if r["id"] not in ex]


def stage_synthetic_ids(conn: sqlite3.Connection, dataset: str, run_id: str | None, stage: int | None,
                        domain: str) -> list[str]:
    """Non-rejected synthetic ids a run stored for a stage and domain (oldest first)."""
    return [r["id"] for r in store.rows(
        conn, "SELECT id FROM synthetic WHERE dataset = ? AND run_id IS ? AND stage IS ? AND domain = ?"
              " AND status != 'rejected' ORDER BY created_at, id", (dataset, run_id, stage, domain))]


def synthesize_for_gap(teacher, conn: sqlite3.Connection, spec: DatasetSpec, domain: str, n: int, *,
                       run_id: str | None, stage: int | None, shots: list[dict], max_rounds: int = 1) -> list[str]:
    """Make sure a run's stage has ``n`` synthetic examples of ``domain`` queued; returns their ids.

    Idempotent: items already stored for (run, stage, domain) count, so a resumed run only asks
    for the rest. With ``max_rounds`` > 1 it asks again while dedup or verification removed items;
    the default (1) spends at most ``n`` budget units, so a stage never eats a later stage's budget
    (the caller fills a remaining gap, e.g. by repeating examples, as the method does).
    A teacher error is raised only when nothing at all could be stored.
    """
    from baldistill_core.teacher.backends import TeacherError

    have = stage_synthetic_ids(conn, spec.name, run_id, stage, domain)
    for _ in range(max_rounds):
        need = n - len(have)
        if need <= 0:
            break
        # Inputs this run already has, and reviewed ones a stage may train on next to the new ones.
        avoid = [r["input"] for r in store.rows(
            conn, "SELECT input FROM synthetic WHERE dataset = ? AND domain = ? AND (run_id IS ? OR status IN"
                  " ('approved', 'edited')) ORDER BY created_at, id", (spec.name, domain, run_id))]
        try:
            items = teacher.synthesize(domain, shots, need, avoid_texts=avoid)
        except TeacherError:
            if not have:
                raise
            break
        new = store_synthetic(conn, spec.name, items, run_id=run_id, stage=stage, source="recorded" if teacher.name == "recorded" else "teacher")
        record_provenance(conn, new, teacher_model=teacher.backend.model, backend=teacher.name,
                          batch_run=run_id if teacher.cfg.mode == "batch" and getattr(teacher.backend, "supports_batch",
                                                                                      False) else None)
        have += new
        if not items:
            break
    return have[:n]


def record_provenance(conn: sqlite3.Connection, ids: list[str], *, teacher_model: str, backend: str,
                      batch_run: str | None = None, source_file: str | None = None) -> None:
    """Where new synthetic examples came from (table ``synthetic_provenance``); with ``batch_run`` the
    id of that run's latest synthesis batch is recorded too."""
    if not ids:
        return
    bid = None
    if batch_run:
        got = store.one(conn, "SELECT remote_id FROM teacher_batches WHERE run_id = ? AND purpose = 'synthesis'"
                              " ORDER BY created_at DESC LIMIT 1", (batch_run,))
        bid = got["remote_id"] if got else None
    with store.transaction(conn):
        conn.executemany("INSERT OR IGNORE INTO synthetic_provenance(synthetic_id, teacher_model, backend, batch_id,"
                         " source_file, at) VALUES (?,?,?,?,?,?)",
                         [(i, teacher_model, backend, bid, source_file, store.now()) for i in ids])


def stage_counts(conn: sqlite3.Connection, run_id: str, stage: int, domain: str) -> tuple[int, list[str]]:
    """(approved-or-edited count, pending ids oldest first) of a run's stage and domain."""
    approved = store.one(conn, "SELECT COUNT(*) AS n FROM synthetic WHERE run_id = ? AND stage = ? AND domain = ?"
                               " AND status IN ('approved', 'edited')", (run_id, stage, domain))["n"]
    pending = [r["id"] for r in store.rows(
        conn, "SELECT id FROM synthetic WHERE run_id = ? AND stage = ? AND domain = ? AND status = 'pending'"
              " ORDER BY created_at, id", (run_id, stage, domain))]
    return approved, pending


def pending_per_domain(conn: sqlite3.Connection, dataset: str) -> dict[str, int]:
    """Synthetic examples of a dataset waiting for review, per domain."""
    return {r["domain"]: r["n"] for r in store.rows(
        conn, "SELECT domain, COUNT(*) AS n FROM synthetic WHERE dataset = ? AND status = 'pending' GROUP BY domain",
        (dataset,))}
