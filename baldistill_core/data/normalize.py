"""Field mapping and row checks shared by the streaming import and the in-memory loader.

``iter_rows`` maps raw rows to ``{id, row, domain, input, answer, reference, line}`` one at a time;
every error names the file, the line or row, the field and the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Iterator

from baldistill_core.config import DatasetSpec
from baldistill_core.errors import DataError

NO_DOMAIN = "all"
SPEC_PATHS = ("train_path", "test_path", "readme", "recorded_rationales", "recorded_synthetic")


def _field_error(name: str, role: str, fld: str, columns: list[str], flag: str) -> DataError:
    return DataError(
        f"{name}: {role} column {fld!r} not found; columns are: {', '.join(columns) or '(none)'} "
        f"— pass {flag} (or pick the column in the upload form)"
    )


def check_columns(first: dict, spec: DatasetSpec, source_name: str) -> None:
    columns = [c for c in first.keys() if c != "__line__"]
    for role, fld, flag in (
        ("input", spec.input_field, "--input-field"),
        ("answer", spec.answer_field, "--answer-field"),
    ):
        if fld not in columns:
            raise _field_error(source_name, role, fld, columns, flag)
    if spec.domain_field and spec.domain_field not in columns:
        raise _field_error(source_name, "domain", spec.domain_field, columns, "--domain-field (or leave it empty to cluster)")
    if spec.id_field and spec.id_field not in columns:
        raise _field_error(source_name, "id", spec.id_field, columns, "--id-field (or leave it empty to number rows)")


def where(source_name: str, e: dict) -> str:
    """``file: line N`` (JSONL/CSV) or ``file: row N`` (Parquet, `datasets`) of a normalized row."""
    return f"{source_name}: line {e['line']}" if e.get("line") is not None else f"{source_name}: row {e['pos'] + 1}"


def iter_rows(raw: Iterable[dict], spec: DatasetSpec, *, split: str, source_name: str,
              start_row: int = 0) -> Iterator[dict]:
    """Map raw rows to example rows, one at a time (no duplicate check: the caller owns that).

    ``start_row`` numbers the rows after those of earlier parts (append mode); generated ids follow it.
    """
    n = 0
    for i, r in enumerate(raw):
        if i == 0:
            check_columns(r, spec, source_name)
        n += 1
        line = r.get("__line__")
        loc = f"{source_name}: line {line}" if line is not None else f"{source_name}: row {i + 1}"
        vals = {}
        for role, fld in (("input", spec.input_field), ("answer", spec.answer_field)):
            v = r.get(fld)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise DataError(f"{loc}: field {fld!r} ({role}) is missing or empty; fill it or drop the row")
            vals[role] = str(v).strip()
        if spec.domain_field:
            d = r.get(spec.domain_field)
            if d is None or not str(d).strip():
                raise DataError(f"{loc}: field {spec.domain_field!r} (domain) is missing or empty; fill it or drop the row")
            vals["domain"] = str(d).strip()
        else:
            vals["domain"] = NO_DOMAIN
        row = start_row + i
        if spec.id_field:
            ex_id = r.get(spec.id_field)
            if ex_id is None or not str(ex_id).strip():
                raise DataError(f"{loc}: field {spec.id_field!r} (id) is missing or empty")
            ex_id = str(ex_id).strip()
        else:
            ex_id = f"{split}-{row + 1:06d}"
        ref = r.get(spec.reference_field) if spec.reference_field else None
        yield dict(id=ex_id, row=row, reference=str(ref) if ref is not None else None, line=line, pos=i, **vals)
    if n == 0:
        raise DataError(f"{source_name}: no rows; the {split} split needs at least one example")


def normalize_rows(raw: Iterable[dict], spec: DatasetSpec, *, split: str, source_name: str) -> tuple[list[dict], list[str]]:
    """All rows as a list, with the duplicate-id check done in memory (small files, previews, benches)."""
    out: list[dict] = []
    seen: dict[str, int] = {}
    for e in iter_rows(raw, spec, split=split, source_name=source_name):
        if e["id"] in seen:
            raise DataError(
                f"{where(source_name, e)}: id {e['id']!r} repeats row {seen[e['id']] + 1}; ids must be unique — fix "
                f"the ids or leave --id-field empty to number rows"
            )
        seen[e["id"]] = e["row"]
        del e["line"], e["pos"]
        out.append(e)
    return out, []


def content_hash(train: list[dict], test: list[dict]) -> str:
    h = hashlib.sha256()
    for split, items in (("train", train), ("test", test)):
        for e in items:
            h.update(f"{split}\x1f{e['id']}\x1f{e['domain']}\x1f{e['input']}\x1f{e['answer']}\x1e".encode())
    return h.hexdigest()[:16]


def upload_name(name: str) -> str:
    """An uploaded file's name must be a plain file name: it is a label, never a path on the server.

    >>> upload_name("train.jsonl")
    'train.jsonl'
    >>> upload_name("../../etc/passwd")
    Traceback (most recent call last):
    ...
    baldistill_core.errors.DataError: upload name '../../etc/passwd' is not a plain file name; rename the file (no folders, no '..')
    """
    if not name or Path(name).name != name or name in (".", "..") or "\\" in name or "\x00" in name:
        raise DataError(f"upload name {name!r} is not a plain file name; rename the file (no folders, no '..')")
    return name


def check_uploads(spec: DatasetSpec, uploads: dict[str, bytes]) -> None:
    """With uploads, every path in the spec must be one of them (an upload never makes the server read its files)."""
    if not uploads:
        return
    for name in uploads:
        upload_name(name)
    for fld in SPEC_PATHS:
        p = getattr(spec, fld)
        if p is not None and p not in uploads:
            raise DataError(f"{fld} {p!r} is not among the uploaded files; upload it too")


def single_domain_warning(counts: dict[str, int]) -> list[str]:
    singles = sorted(d for d, n in counts.items() if n == 1)
    if not singles:
        return []
    return [f"{len(singles)} domain(s) have a single training example ({', '.join(singles[:5])}"
            f"{'…' if len(singles) > 5 else ''}): they are always tail domains and rely on synthesis"]


def domain_column_warnings(spec: DatasetSpec, counts: dict[str, int]) -> list[str]:
    """No domain column, or one holding a single value: nothing is balanced; say what to do."""
    n = sum(counts.values())
    if not spec.domain_field:
        return [f"no domain column: all {n:,} examples are in one domain {NO_DOMAIN!r}, so nothing is balanced; "
                f"pick the domain column, or on the Map page use clusters as domains"]
    if len(counts) == 1:
        return [f"the domain column {spec.domain_field!r} holds a single value ({next(iter(counts))!r}): every "
                f"example is in one domain, so nothing is balanced; pick another domain column, or on the Map "
                f"page use clusters as domains"]
    return []


def check_distinct_splits(spec: DatasetSpec) -> None:
    if spec.test_path and spec.test_path == spec.train_path:
        raise DataError(f"train and test are the same file ({spec.train_path}); pick a separate test file "
                        f"or leave the test file empty")


def check_labels(label_set: list[str], train_path: str) -> None:
    if len(label_set) < 2:
        raise DataError(
            f"{train_path}: a classification task needs at least 2 labels, found {label_set}; "
            f"check --answer-field or choose another task type"
        )


def read_readme(spec: DatasetSpec, base_dir: Path | None) -> str | None:
    if not spec.readme:
        return None
    rp = Path(spec.readme)
    rp = rp if rp.is_absolute() or base_dir is None else base_dir / rp
    return rp.read_text(encoding="utf-8") if rp.exists() else None
