"""Bring your own teacher outputs: import rationales and synthetic tail examples for any dataset.

``import_teacher_outputs(conn, dataset, rationales=..., synthetic=...)`` reads JSONL, CSV or Parquet
(``data.loading.read_table``, with a field mapping like a dataset import) — or the result file of an
OpenAI / vLLM batch (lines with ``custom_id`` + ``response``, as ``teacher.batch`` writes them) — and
checks every line before writing anything:

* rationales (example id, rationale, optional teacher model): the id must be a training example of
  the dataset, the rationale non-empty, each id once. A rationale whose final answer
  (``answers.extract_answer``) is not the gold one is kept and flagged (``agrees = 0``); a run drops it by
  the same rule (``Teacher.annotate``). They become the dataset's recorded teacher: a run with
  ``teacher.backend: recorded`` replays them (``RecordedBackend`` reads ``imported_rationales``).
* synthetic examples (domain, input, answer, rationale): a known domain, a valid answer, a non-empty
  rationale, each input once; a near-duplicate of a *test* input is refused (decontamination), an exact
  copy of a train input too, a near-duplicate of a train input is flagged (``duplicate_of``). They enter
  the review queue as ``pending``; one whose rationale disagrees with its answer is flagged
  (``verified = 0``) for the reviewer.

Any problem raises one ``DataError`` listing the lines and fixes; nothing is written (both files go in one
transaction). The same file again changes nothing; a newer one replaces it: rationales are swapped,
reviewed synthetic examples are kept with their review, pending ones it no longer has are removed.
Provenance (teacher model, file name + sha256, time): ``teacher_imports``, ``synthetic_provenance``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from baldistill_core import store
from baldistill_core.data.loading import dataset_spec, read_table
from baldistill_core.errors import DataError
from baldistill_core.synthetic.synthesis import NearDupIndex, shingles, synthetic_id
from baldistill_core.task.answers import extract_answer, is_correct
from baldistill_core.teacher.batch import is_result_file, rationale_rows, synthetic_rows
from baldistill_core.teacher.imported import current_import as _current
from baldistill_core.teacher.parsing import norm_input, validate_items

MAX_PROBLEMS = 20


@dataclass
class RationaleFields:
    id: str = "id"
    rationale: str = "rationale"
    model: str = "model"


@dataclass
class SyntheticFields:
    domain: str = "domain"
    input: str = "input"
    answer: str = "answer"
    rationale: str = "rationale"
    model: str = "model"


@dataclass
class ImportReport:
    rationales: int = 0                 # rows now current (0 if no file)
    rationales_flagged: int = 0         # final answer disagrees with gold: a run will not use them
    rationales_unchanged: bool = False  # the same file was imported before: nothing changed
    synthetic_new: int = 0              # new pending examples
    synthetic_updated: int = 0          # pending examples whose text changed
    synthetic_kept_reviewed: int = 0    # already reviewed: kept as reviewed
    synthetic_removed: int = 0          # pending examples of the older file that the new file drops
    synthetic_near_train: int = 0       # flagged: near-duplicate of a train input
    synthetic_flagged: int = 0          # flagged: rationale's answer differs from the item's answer
    synthetic_unchanged: bool = False
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


Source = str | Path | tuple[str, bytes]


def _read(src: Source) -> tuple[str, bytes]:
    if isinstance(src, tuple):
        return src
    p = Path(src)
    if not p.is_file():
        raise DataError(f"{src}: file not found; check the path")
    return p.name, p.read_bytes()


def _where(name: str, r: dict, i: int) -> str:
    return f"{name}: line {r['__line__']}" if "__line__" in r else f"{name}: row {i + 1}"


def _file_hash(data: bytes, fields, teacher_model: str | None) -> str:
    h = hashlib.sha256(data)
    h.update(json.dumps([asdict(fields), teacher_model], sort_keys=True).encode())
    return h.hexdigest()


def _s(v) -> str:
    return "" if v is None else str(v).strip()


# ---------------------------------------------------------------- rationales


def _check_columns(raw: list[dict], name: str, need: dict[str, str]) -> None:
    cols = [c for c in raw[0] if c != "__line__"] if raw else []
    for role, fld in need.items():
        if fld not in cols:
            raise DataError(f"{name}: {role} column {fld!r} not found; columns are: {', '.join(cols) or '(none)'} — "
                            f"pass the column name (--{role.replace(' ', '-')}-field, or pick it in the upload form)")


def _validate_rationales(conn, spec, labels, name, raw, fields: RationaleFields, teacher_model, problems) -> list[dict]:
    if is_result_file(raw):
        raw, fields = rationale_rows(raw, name, problems), RationaleFields()
    else:
        _check_columns(raw, name, {"id": fields.id, "rationale": fields.rationale})
    gold = {r["id"]: r for r in store.examples(conn, spec.name, "train")}
    test = {r["id"] for r in store.examples(conn, spec.name, "test")}
    seen: dict[str, str] = {}
    out = []
    for i, r in enumerate(raw):
        where = _where(name, r, i)
        ex_id, text = _s(r.get(fields.id)), _s(r.get(fields.rationale))
        if not ex_id:
            problems.append(f"{where}: the id field {fields.id!r} is empty; fill it or delete the line")
            continue
        if ex_id not in gold:
            hint = ("it is a test example; rationales are for training examples only" if ex_id in test
                    else f"no training example of {spec.name!r} has it; fix the id (or the --id-field mapping)")
            problems.append(f"{where}: unknown id {ex_id!r}: {hint}")
            continue
        if not text:
            problems.append(f"{where}: the rationale of {ex_id!r} is empty; fill it or delete the line")
            continue
        if ex_id in seen:
            problems.append(f"{where}: id {ex_id!r} repeats {seen[ex_id]}; keep one rationale per example")
            continue
        seen[ex_id] = where.split(": ", 1)[1]
        pred = extract_answer(text, spec.task_type, labels)
        out.append({"example_id": ex_id, "rationale": text, "predicted": pred,
                    "agrees": int(is_correct(pred, gold[ex_id]["answer"], spec.task_type)),
                    "teacher_model": _s(r.get(fields.model)) or teacher_model,
                    "line": r.get("__line__", i + 1)})
    return out


# ---------------------------------------------------------------- synthetic


def _indexes(conn, dataset: str):
    pairs = store.rows(conn, "SELECT id, split, input FROM examples WHERE dataset = ?", (dataset,))
    df: dict[int, int] = {}
    sets = []
    for p in pairs:
        s = shingles(p["input"])
        sets.append((p, s))
        for tok in s:
            df[tok] = df.get(tok, 0) + 1
    train, test = NearDupIndex(df), NearDupIndex(df)
    exact: dict[str, tuple[str, str]] = {}
    for p, s in sets:
        (test if p["split"] == "test" else train).add(p["id"], s)
        exact.setdefault(norm_input(p["input"]), (p["split"], p["id"]))
    return train, test, exact, df


def _validate_synthetic(conn, spec, labels, name, raw, fields: SyntheticFields, teacher_model, problems) -> list[dict]:
    if is_result_file(raw):
        raw, fields = synthetic_rows(raw, name, problems), SyntheticFields()
    else:
        _check_columns(raw, name, {"domain": fields.domain, "input": fields.input, "answer": fields.answer,
                                   "rationale": fields.rationale})
    domains = set(store.domain_counts(conn, spec.name, "train"))
    train_idx, test_idx, exact, df = _indexes(conn, spec.name)
    mine = NearDupIndex(df)
    seen: dict[str, str] = {}
    out = []
    for i, r in enumerate(raw):
        where = _where(name, r, i)
        dom = _s(r.get(fields.domain))
        if dom not in domains:
            problems.append(f"{where}: unknown domain {dom!r}; use one of the dataset's domains "
                            f"({', '.join(sorted(domains)[:8])}{'…' if len(domains) > 8 else ''})")
            continue
        item = {"input": r.get(fields.input), "answer": r.get(fields.answer), "rationale": r.get(fields.rationale)}
        good, rejected = validate_items([item], dom, spec.task_type, labels, set())
        if rejected:
            problems.append(f"{where}: {rejected[0]}; fix the line or delete it")
            continue
        it = good[0]
        if not it["rationale"]:
            problems.append(f"{where}: the rationale is empty; fill it or delete the line")
            continue
        key = norm_input(it["input"])
        if key in seen:
            problems.append(f"{where}: the input repeats {seen[key]}; keep one copy")
            continue
        seen[key] = where.split(": ", 1)[1]
        if key in exact:
            split, rid = exact[key]
            problems.append(f"{where}: the input is a copy of {split} example {rid!r}"
                            + ("; refused so the test set stays clean (decontamination) — delete the line"
                               if split == "test" else "; a real example cannot be synthetic — delete the line"))
            continue
        sh = shingles(it["input"])
        near_test = test_idx.nearest(sh)
        if near_test:
            problems.append(f"{where}: the input is a near-duplicate of test example {near_test[0]!r} (Jaccard "
                            f"{near_test[1]:.2f}); refused so the test set stays clean (decontamination) — rewrite "
                            f"or delete the line")
            continue
        near = [m for m in (train_idx.nearest(sh), mine.nearest(sh)) if m]
        sid = synthetic_id(spec.name, None, it["input"])
        mine.add(sid, sh)
        ta = extract_answer(it["rationale"], spec.task_type, labels)
        it.update(id=sid, teacher_answer=ta, verify_answer=ta, verified=int(is_correct(ta, it["answer"], spec.task_type)),
                  duplicate_of=max(near, key=lambda m: m[1])[0] if near else None,
                  teacher_model=_s(r.get(fields.model)) or teacher_model, line=r.get("__line__", i + 1))
        out.append(it)
    return out


# ---------------------------------------------------------------- writing


def _new_import(conn, dataset, kind, name, digest, n, model) -> int:
    conn.execute("UPDATE teacher_imports SET current = 0 WHERE dataset = ? AND kind = ?", (dataset, kind))
    cur = conn.execute("INSERT INTO teacher_imports(dataset, kind, file_name, file_hash, n_rows, teacher_model,"
                       " current, imported_at) VALUES (?,?,?,?,?,?,1,?)", (dataset, kind, name, digest, n, model,
                                                                           store.now()))
    return int(cur.lastrowid)


def _write_rationales(conn, dataset, rows, imp_id) -> None:
    conn.execute("DELETE FROM teacher_rationales WHERE dataset = ?", (dataset,))
    conn.executemany(
        "INSERT INTO teacher_rationales(dataset, example_id, rationale, teacher_model, predicted, agrees, import_id,"
        " line) VALUES (?,?,?,?,?,?,?,?)",
        [(dataset, r["example_id"], r["rationale"], r["teacher_model"], r["predicted"], r["agrees"], imp_id,
          r["line"]) for r in rows])


def _write_synthetic(conn, dataset, items, imp_id, name, digest, rep: ImportReport) -> None:
    now = store.now()
    ids = [it["id"] for it in items]
    old = {r["id"]: r for r in store.rows(
        conn, "SELECT s.id, s.status FROM synthetic s JOIN synthetic_provenance p ON p.synthetic_id = s.id"
              " WHERE s.dataset = ? AND p.import_id IS NOT NULL", (dataset,))}
    have: dict[str, str] = {}
    for k in range(0, len(ids), 500):  # under SQLite's limit on bound parameters
        chunk = ids[k:k + 500]
        have.update((r["id"], r["status"]) for r in store.rows(
            conn, f"SELECT id, status FROM synthetic WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    gone = [sid for sid, r in old.items() if sid not in set(ids) and r["status"] == "pending"]
    for sid in gone:
        conn.execute("DELETE FROM synthetic WHERE id = ?", (sid,))
        conn.execute("DELETE FROM synthetic_provenance WHERE synthetic_id = ?", (sid,))
    rep.synthetic_removed = len(gone)
    for it in items:
        sid, status = it["id"], have.get(it["id"])
        reason = (None if it["verified"] else
                  f"flagged: the rationale ends at {it['teacher_answer']!r}, not the answer {it['answer']!r}")
        vals = (it["domain"], it["input"], it["answer"], it["rationale"], it["teacher_answer"], it["verified"],
                it["verify_answer"], it["duplicate_of"], reason)
        if status is None:
            conn.execute(
                "INSERT INTO synthetic(domain, input, answer, rationale, teacher_answer, verified, verify_answer,"
                " duplicate_of, reason, id, dataset, run_id, stage, source, status, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,'imported','pending',?)", (*vals, sid, dataset, now))
            rep.synthetic_new += 1
        elif status == "pending":
            cur = conn.execute(
                "UPDATE synthetic SET domain = ?, input = ?, answer = ?, rationale = ?, teacher_answer = ?,"
                " verified = ?, verify_answer = ?, duplicate_of = ?, reason = ? WHERE id = ? AND NOT (domain IS ?"
                " AND answer IS ? AND rationale IS ?)", (*vals, sid, it["domain"], it["answer"], it["rationale"]))
            rep.synthetic_updated += cur.rowcount
        else:
            rep.synthetic_kept_reviewed += 1
        conn.execute(
            "INSERT OR REPLACE INTO synthetic_provenance(synthetic_id, teacher_model, backend, batch_id, import_id,"
            " source_file, file_hash, at) VALUES (?,?,'import',NULL,?,?,?,?)",
            (sid, it["teacher_model"], imp_id, name, digest, now))
        rep.synthetic_near_train += it["duplicate_of"] is not None
        rep.synthetic_flagged += not it["verified"]


def import_teacher_outputs(conn, dataset: str, *, rationales: Source | None = None, synthetic: Source | None = None,
                           rationale_fields: RationaleFields | None = None,
                           synthetic_fields: SyntheticFields | None = None,
                           teacher_model: str | None = None) -> ImportReport:
    """Validate both files fully, then import them in one transaction (see the module docstring)."""
    if rationales is None and synthetic is None:
        raise DataError("nothing to import: give a rationales file, a synthetic file, or both")
    spec = dataset_spec(conn, dataset)
    labels = (store.get_dataset(conn, dataset) or {}).get("label_set")
    rf, sf = rationale_fields or RationaleFields(), synthetic_fields or SyntheticFields()
    problems: list[str] = []
    rep = ImportReport()
    plan = []
    for kind, src, fields, check in (("rationales", rationales, rf, _validate_rationales),
                                     ("synthetic", synthetic, sf, _validate_synthetic)):
        if src is None:
            continue
        name, data = _read(src)
        digest = _file_hash(data, fields, teacher_model)
        cur = _current(conn, dataset, kind)
        if cur is not None and cur["file_hash"] == digest:  # imported already: nothing to check or write
            plan.append((kind, name, digest, None, True))
            continue
        rows = check(conn, spec, labels, name, read_table(name, data=data), fields, teacher_model, problems)
        if not rows and not problems:
            problems.append(f"{name}: no usable rows; the file needs at least one {kind} line")
        plan.append((kind, name, digest, rows, False))
    if problems:
        more = f"\n… and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise DataError(f"{len(problems)} problem(s) in the teacher outputs; nothing was imported:\n"
                        + "\n".join(problems[:MAX_PROBLEMS]) + more)
    with store.transaction(conn):
        for kind, name, digest, rows, same in plan:
            if kind == "rationales":
                if not same:
                    imp = _new_import(conn, dataset, kind, name, digest, len(rows), teacher_model)
                    _write_rationales(conn, dataset, rows, imp)
                got = store.one(conn, "SELECT COUNT(*) AS n, COALESCE(SUM(1 - agrees), 0) AS flagged FROM"
                                      " teacher_rationales WHERE dataset = ?", (dataset,))
                rep.rationales, rep.rationales_flagged, rep.rationales_unchanged = got["n"], got["flagged"], same
            elif same:
                rep.synthetic_unchanged = True
            else:
                imp = _new_import(conn, dataset, kind, name, digest, len(rows), teacher_model)
                _write_synthetic(conn, dataset, rows, imp, name, digest, rep)
    return rep


def imports_of(conn, dataset: str) -> list[dict]:
    """The teacher-output imports of a dataset, newest first (``current`` = the one in use)."""
    return store.rows(conn, "SELECT id, kind, file_name, file_hash, n_rows, teacher_model, current, imported_at FROM"
                            " teacher_imports WHERE dataset = ? ORDER BY id DESC", (dataset,))


def provenance(conn, dataset: str, *, synthetic_id: str | None = None, example_id: str | None = None) -> dict | None:
    """Where one imported rationale (``example_id``) or synthetic example came from, or None."""
    if example_id is not None:
        return store.one(conn, "SELECT r.teacher_model, 'import' AS backend, i.file_name AS source_file, i.file_hash,"
                               " i.imported_at AS at, r.agrees, r.line FROM teacher_rationales r JOIN teacher_imports i"
                               " ON i.id = r.import_id WHERE r.dataset = ? AND r.example_id = ?", (dataset, example_id))
    return store.one(conn, "SELECT teacher_model, backend, batch_id, source_file, file_hash, at FROM"
                           " synthetic_provenance WHERE synthetic_id = ?", (synthetic_id,))


_PROV_KEYS = ("teacher_model", "backend", "batch_id", "source_file", "file_hash")


def export_provenance(conn, dataset: str, teacher_cfg, batch_of=None):
    """A function from a training row (``example_id``, ``kind``) to its provenance dict (fixed keys, for
    exports): imported rationales name their file + hash, synthetic examples their stored provenance;
    ``batch_of(row)`` gives a rationale's batch id in batch mode (``batch.rationale_batch_of``)."""
    imp = _current(conn, dataset, "rationales") if teacher_cfg.backend == "recorded" else None
    models = dict(conn.execute("SELECT example_id, teacher_model FROM teacher_rationales WHERE dataset = ?",
                               (dataset,)).fetchall()) if imp else {}
    run_model = f"recorded:{dataset}" if teacher_cfg.backend == "recorded" else teacher_cfg.model

    def of(row: dict) -> dict:
        p = provenance(conn, dataset, synthetic_id=row["example_id"]) if row["kind"] == "synthetic" else None
        if p is None and imp is not None and row["kind"] != "synthetic":
            p = {"teacher_model": models.get(row["example_id"].split("#")[0]), "backend": "import",
                 "source_file": imp["file_name"], "file_hash": imp["file_hash"]}
        if p is None:
            p = {"teacher_model": run_model, "backend": teacher_cfg.backend,
                 "batch_id": batch_of(row) if batch_of is not None and row["kind"] != "synthetic" else None}
        return {k: p.get(k) for k in _PROV_KEYS}
    return of

