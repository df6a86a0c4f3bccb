"""Streaming import: rows go from the file into the workspace database a chunk at a time.

Owner of the writes to the ``datasets`` and ``examples`` tables (their DDL lives in ``store``).
The whole import is one transaction: rows are parsed one line (or Parquet batch) at a time,
validated, and inserted ``CHUNK_ROWS`` at a time; any bad row, anywhere in the file, rolls the
transaction back, so the version already in the workspace stays intact. Memory is bounded by the
chunk, not the file: nothing keeps the rows, the content hash is updated as they pass, and
counts, labels and duplicate ids are answered by SQLite (the primary key ``(dataset, id)``).

``append=True`` adds a part to an existing dataset: rows are numbered after the rows already
there, generated ids continue the numbering, and the duplicate-id check spans every part.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from baldistill_core import store
from baldistill_core.config import DatasetSpec
from baldistill_core.data import normalize
from baldistill_core.data.reading import iter_table
from baldistill_core.errors import DataError

CHUNK_ROWS = 2000
_INSERT = ("INSERT INTO examples(dataset, id, split, row, domain, input, answer, reference)"
           " VALUES (?,?,?,?,?,?,?,?)")


@dataclass
class ImportResult:
    spec: DatasetSpec
    n_train: int
    n_test: int
    domains: dict[str, int]
    label_set: list[str] | None
    content_hash: str
    warnings: list[str] = field(default_factory=list)
    readme: str | None = None
    added_train: int = 0          # rows this call added (= n_train unless appending)
    added_test: int = 0


def _hash_line(split: str, e: dict) -> bytes:
    return f"{split}\x1f{e['id']}\x1f{e['domain']}\x1f{e['input']}\x1f{e['answer']}\x1e".encode()


def _chunks(it: Iterable[dict], n: int) -> Iterator[list[dict]]:
    it = iter(it)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


class _Writer:
    """Inserts one dataset's rows inside the caller's transaction and keeps the running totals."""

    def __init__(self, conn: sqlite3.Connection, spec: DatasetSpec, *, append: bool):
        self.conn, self.spec, self.name, self.append = conn, spec, spec.name, append
        self.h = hashlib.sha256()
        self.added = {"train": 0, "test": 0}
        self.start = {s: self._next_row(s) if append else 0 for s in ("train", "test")}
        self.warnings: list[str] = []

    def _next_row(self, split: str) -> int:
        r = store.one(self.conn, "SELECT MAX(row) AS m FROM examples WHERE dataset = ? AND split = ?",
                      (self.name, split))
        return 0 if r is None or r["m"] is None else r["m"] + 1

    def insert(self, split: str, chunk: list[dict], source: str, prefix: str = "") -> None:
        name = self.name
        try:
            self.conn.executemany(_INSERT, [(name, prefix + e["id"], split, e["row"], e["domain"], e["input"],
                                             e["answer"], e.get("reference")) for e in chunk])
        except sqlite3.IntegrityError:
            raise self._duplicate(split, chunk, source, prefix) from None
        self.added[split] += len(chunk)

    def _duplicate(self, split: str, chunk: list[dict], source: str, prefix: str) -> DataError:
        """Name the first row of ``chunk`` whose id is already taken (earlier in the file or another part)."""
        ids = [prefix + e["id"] for e in chunk]
        before: dict[str, dict] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for r in store.rows(self.conn, f"SELECT id, split, row FROM examples WHERE dataset = ? AND id IN "
                                           f"({','.join('?' * len(part))})", [self.name, *part]):
                before[r["id"]] = r
        seen: dict[str, int] = {}
        for e, ex_id in zip(chunk, ids):
            other = before.get(ex_id)
            # Rows of this chunk before the failing one were inserted: only an older row or an
            # earlier row of the same chunk is a real clash.
            if other is not None and (other["split"], other["row"]) != (split, e["row"]):
                if other["split"] == split and other["row"] < e["row"] and other["row"] >= self.start[split]:
                    return _dup_error(source, e, ex_id, other["row"] - self.start[split] + 1, "")
                part = ("of an earlier part (`--append` checks ids across all parts)"
                        if self.append else f"of the {other['split']} split")
                return _dup_error(source, e, ex_id, other["row"] + 1, " " + part)
            if ex_id in seen:
                return _dup_error(source, e, ex_id, seen[ex_id] - self.start[split] + 1, "")
            seen[ex_id] = e["row"]
        return DataError(f"{self.name}: an id repeats; ids must be unique — fix the ids or leave --id-field empty "
                         f"to number rows")  # pragma: no cover (the loop finds it)

    def train_overlap(self, chunk: list[dict]) -> int:
        ids = [e["id"] for e in chunk]
        r = store.one(self.conn, f"SELECT COUNT(*) AS n FROM examples WHERE dataset = ? AND split = 'train' AND id IN "
                                 f"({','.join('?' * len(ids))})", [self.name, *ids])
        return r["n"]


def _dup_error(source: str, e: dict, ex_id: str, row: int, where: str) -> DataError:
    return DataError(f"{normalize.where(source, e)}: id {ex_id!r} repeats row {row}{where}; ids must be unique — fix the ids or "
                     f"leave --id-field empty to number rows")


def _source(spec: DatasetSpec, path: str, uploads: dict[str, bytes], base_dir: Path | None, split: str):
    q = Path(path)
    q = q if q.is_absolute() or base_dir is None else base_dir / q
    return iter_table(q, data=uploads.get(path), split=split)


def _write_split(w: _Writer, spec: DatasetSpec, split: str, path: str, uploads, base_dir, test_h) -> None:
    """Stream one split into the database. For the test split, ids that also occur in train get the
    'test:' prefix (all test ids of this import, as before): ``test_h`` hashes both spellings."""
    rows = normalize.iter_rows(_source(spec, path, uploads, base_dir, split), spec, split=split, source_name=path,
                               start_row=w.start[split])
    prefix, overlap = "", 0
    for chunk in _chunks(rows, CHUNK_ROWS):
        if split == "test":
            n = w.train_overlap(chunk)
            if n and not prefix:
                prefix = "test:"
                w.conn.execute("UPDATE examples SET id = 'test:' || id WHERE dataset = ? AND split = 'test' AND row >= ?",
                               (w.name, w.start["test"]))
            overlap += n
            for e in chunk:
                test_h[0].update(_hash_line(split, e))
                test_h[1].update(_hash_line(split, dict(e, id="test:" + e["id"])))
        else:
            for e in chunk:
                w.h.update(_hash_line(split, e))
        w.insert(split, chunk, path, prefix)
    if overlap:
        w.warnings.append(f"{overlap} test ids also occur in train; test ids were prefixed with 'test:'")
    if split == "test":
        w.h = test_h[1] if prefix else test_h[0]


def import_stream(conn: sqlite3.Connection, spec: DatasetSpec, *, uploads: dict[str, bytes] | None = None,
                  base_dir: Path | None = None, bundled: bool = False, append: bool = False,
                  replace: bool = False) -> ImportResult:
    """Validate and write ``spec``'s files in one transaction, a chunk at a time (see the module doc).
    The name is checked again under the write lock: a dataset another process imported meanwhile is
    replaced only with ``replace=True``."""
    from baldistill_core.data.manage import check_name_free

    uploads = uploads or {}
    normalize.check_uploads(spec, uploads)
    normalize.check_distinct_splits(spec)
    with store.transaction(conn):
        prev = store.one(conn, "SELECT * FROM datasets WHERE name = ?", (spec.name,))
        if append:
            _check_append(spec, prev)
        else:
            check_name_free(conn, spec.name, replace=replace)
            conn.execute("DELETE FROM examples WHERE dataset = ?", (spec.name,))
            conn.execute("DELETE FROM datasets WHERE name = ?", (spec.name,))
            conn.execute("INSERT INTO datasets(name, spec, content_hash, n_train, n_test, bundled, created_at)"
                         " VALUES (?,?,'',0,0,?,?)", (spec.name, spec.model_dump_json(), int(bundled), store.now()))
        w = _Writer(conn, spec, append=append)
        # The test split is hashed twice from the train state (plain and 'test:'-prefixed ids) and the
        # right one kept, so a one-part import's hash equals normalize.content_hash(train, test).
        _write_split(w, spec, "train", spec.train_path, uploads, base_dir, None)
        if spec.test_path:
            _write_split(w, spec, "test", spec.test_path, uploads, base_dir, (w.h.copy(), w.h.copy()))
        return _finish(conn, w, spec, prev, uploads, base_dir)


def _check_append(spec: DatasetSpec, prev: dict | None) -> None:
    if prev is None:
        raise DataError(f"dataset {spec.name!r} is not in the workspace, so there is nothing to append to; "
                        f"import the first part without --append")
    old = DatasetSpec.model_validate_json(prev["spec"])
    for f in ("input_field", "answer_field", "domain_field", "id_field", "task_type"):
        if getattr(old, f) != getattr(spec, f):
            raise DataError(f"--append: {f} is {getattr(spec, f)!r} but the dataset's earlier parts used "
                            f"{getattr(old, f)!r}; pass the same field mapping and task type for every part")


def _finish(conn, w: _Writer, spec: DatasetSpec, prev: dict | None, uploads, base_dir) -> ImportResult:
    name = spec.name
    if w.added["train"] == 0 and not w.append:
        raise DataError(f"{spec.train_path}: no rows; the train split needs at least one example")
    digest = w.h.hexdigest()
    if w.append:
        digest = hashlib.sha256(f"{prev['content_hash']}\x1e{digest}".encode()).hexdigest()
    chash = digest[:16]
    counts = store.domain_counts(conn, name, "train")
    n_train = sum(counts.values())
    n_test = store.one(conn, "SELECT COUNT(*) AS n FROM examples WHERE dataset = ? AND split = 'test'", (name,))["n"]
    warnings = w.warnings + normalize.single_domain_warning(counts) + normalize.domain_column_warnings(spec, counts)
    label_set = None
    if spec.task_type == "classification":
        label_set = [r["answer"] for r in store.rows(conn, "SELECT DISTINCT answer FROM examples WHERE dataset = ? "
                                                           "ORDER BY answer", (name,))]
        normalize.check_labels(label_set, spec.train_path)
    readme = normalize.read_readme(spec, base_dir) if not w.append else prev["readme"]
    conn.execute("UPDATE datasets SET content_hash = ?, n_train = ?, n_test = ?, label_set = ?, readme = ? "
                 "WHERE name = ?", (chash, n_train, n_test, store.dumps(label_set) if label_set is not None else None,
                                    readme, name))
    return ImportResult(spec, n_train, n_test, counts, label_set, chash, warnings, readme,
                        w.added["train"], w.added["test"])
