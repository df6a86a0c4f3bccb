"""Load, validate and import datasets: JSONL, CSV, Parquet, or a saved Hugging Face `datasets` folder.

Every error names the file, the line or row, the field, and the fix. Nothing is written to the
workspace unless the whole file validates, so a bad upload never loses the data already there.
"""

from __future__ import annotations

from baldistill_core.errors import DataError  # noqa: F401  (re-exported: data.DataError)

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from baldistill_core import store
from baldistill_core.config import DatasetSpec

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
BUNDLED_DIR = ASSETS_DIR / "datasets"
NO_DOMAIN = "all"
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


@dataclass
class LoadedDataset:
    spec: DatasetSpec
    train: list[dict]
    test: list[dict]
    label_set: list[str] | None
    content_hash: str
    warnings: list[str] = field(default_factory=list)
    readme: str | None = None


# ---------------------------------------------------------------- reading raw tables


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: bytes are not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            f"re-save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 in > out`)"
        ) from None


def read_table(path: str | Path, *, data: bytes | None = None, split: str = "train") -> list[dict]:
    """Read a file (or uploaded bytes named like ``path``) into a list of row dicts.

    >>> read_table("x.jsonl", data=b'{"a": 1}\\n\\n{"a": 2}\\n')
    [{'a': 1, '__line__': 1}, {'a': 2, '__line__': 3}]
    """
    p = Path(path)
    name = str(path)
    if data is None and p.is_dir():
        return _read_hf_folder(p, split)
    suffix = "".join(p.suffixes[-1:]).lower()
    if data is None:
        if not p.exists():
            raise DataError(f"{name}: file not found; check the path")
        data = p.read_bytes()
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(
            f"{name}: {len(data) / 1e6:.0f} MB is over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB limit; "
            f"split the file or load it from disk with `baldistill data import`"
        )
    if not data.strip():
        raise DataError(f"{name}: the file is empty; it needs at least one example")
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(data, name)
    if suffix in (".csv", ".tsv"):
        return _read_csv(data, name, delimiter="\t" if suffix == ".tsv" else ",")
    if suffix in (".parquet", ".pq"):
        return _read_parquet(data, name)
    raise DataError(f"{name}: unknown file type {suffix or '(none)'!r}; use .jsonl, .csv, .parquet or a `datasets` folder")


def _json_problem(e: json.JSONDecodeError) -> str:
    """'not valid JSON at column 7 (unterminated string starting here)': json's messages that end in
    'at' name the position themselves, so the column is said once.

    >>> try:
    ...     json.loads('{"a": "x')
    ... except json.JSONDecodeError as e:
    ...     _json_problem(e)
    'not valid JSON at column 7 (unterminated string starting here)'
    """
    msg = e.msg[:-3] + " here" if e.msg.endswith(" at") else e.msg
    return f"not valid JSON at column {e.colno} ({msg[:1].lower() + msg[1:]})"


def _read_jsonl(data: bytes, name: str) -> list[dict]:
    text = _decode(data, name)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a plain JSON array is accepted too
        try:
            arr = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{name}: line {e.lineno}: {_json_problem(e)}; fix the file") from None
        bad = [i for i, r in enumerate(arr) if not isinstance(r, dict)]
        if bad:
            raise DataError(f"{name}: item {bad[0]} is not an object; each item must be a JSON object")
        return arr
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{name}: line {lineno}: {_json_problem(e)}; fix or remove that line"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{name}: line {lineno}: expected a JSON object per line, got {type(obj).__name__}")
        obj["__line__"] = lineno
        out.append(obj)
    return out


def _read_csv(data: bytes, name: str, delimiter: str) -> list[dict]:
    text = _decode(data, name)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise DataError(f"{name}: no header row; the first line must name the columns")
    out = []
    try:
        for r in reader:
            if None in r:
                raise DataError(
                    f"{name}: line {reader.line_num}: more values than header columns; quote fields that contain '{delimiter}'"
                )
            r["__line__"] = reader.line_num
            out.append(r)
    except csv.Error as e:
        raise DataError(f"{name}: line {reader.line_num}: CSV error ({e}); check the quoting") from None
    return out


def _read_parquet(data: bytes, name: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{name}: not a readable Parquet file ({e}); re-export it") from None
    return table.to_pylist()


def _read_hf_folder(p: Path, split: str) -> list[dict]:
    try:
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(p))
    except Exception as e:
        raise DataError(
            f"{p}: not a saved `datasets` folder ({e}); save one with `Dataset.save_to_disk` or pass a file"
        ) from None
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise DataError(f"{p}: no split {split!r}; the folder has splits: {', '.join(ds.keys())}")
        ds = ds[split]
    return ds.to_list()


# ---------------------------------------------------------------- validation and mapping


def _field_error(name: str, role: str, fld: str, columns: list[str], flag: str) -> DataError:
    return DataError(
        f"{name}: {role} column {fld!r} not found; columns are: {', '.join(columns) or '(none)'} "
        f"— pass {flag} (or pick the column in the upload form)"
    )


def normalize_rows(raw: list[dict], spec: DatasetSpec, *, split: str, source_name: str) -> tuple[list[dict], list[str]]:
    """Map raw rows to ``{id, row, domain, input, answer, reference}`` with checks."""
    if not raw:
        raise DataError(f"{source_name}: no rows; the {split} split needs at least one example")
    columns = [c for c in raw[0].keys() if c != "__line__"]
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

    out: list[dict] = []
    seen: dict[str, int] = {}
    warnings: list[str] = []
    for i, r in enumerate(raw):
        where = f"{source_name}: line {r['__line__']}" if "__line__" in r else f"{source_name}: row {i + 1}"
        vals = {}
        for role, fld in (("input", spec.input_field), ("answer", spec.answer_field)):
            v = r.get(fld)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise DataError(f"{where}: field {fld!r} ({role}) is missing or empty; fill it or drop the row")
            vals[role] = str(v).strip()
        if spec.domain_field:
            d = r.get(spec.domain_field)
            if d is None or not str(d).strip():
                raise DataError(
                    f"{where}: field {spec.domain_field!r} (domain) is missing or empty; fill it or drop the row"
                )
            vals["domain"] = str(d).strip()
        else:
            vals["domain"] = NO_DOMAIN
        if spec.id_field:
            ex_id = r.get(spec.id_field)
            if ex_id is None or not str(ex_id).strip():
                raise DataError(f"{where}: field {spec.id_field!r} (id) is missing or empty")
            ex_id = str(ex_id).strip()
        else:
            ex_id = f"{split}-{i + 1:06d}"
        if ex_id in seen:
            raise DataError(
                f"{where}: id {ex_id!r} repeats row {seen[ex_id] + 1}; ids must be unique — fix the ids or leave "
                f"--id-field empty to number rows"
            )
        seen[ex_id] = i
        ref = r.get(spec.reference_field) if spec.reference_field else None
        out.append(dict(id=ex_id, row=i, reference=str(ref) if ref is not None else None, **vals))
    return out, warnings


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


def confine(path: str | Path, roots: list[Path]) -> Path:
    """Resolve ``path`` (symlinks and '..' included) and refuse it outside ``roots``.

    Used for every server-side path that reaches the core from the UI.
    """
    resolved = Path(path).resolve()
    for root in roots:
        if resolved.is_relative_to(Path(root).resolve()):
            return resolved
    raise DataError(f"{path}: outside the workspace ({', '.join(str(r) for r in roots)}); copy the file into the "
                    f"workspace folder or upload it")


def load_dataset(spec: DatasetSpec, *, uploads: dict[str, bytes] | None = None, base_dir: Path | None = None) -> LoadedDataset:
    """Read and validate both splits of ``spec``. ``uploads`` maps a path in the spec to bytes; with uploads,
    every path in the spec must be one of them (an upload never makes the server read its own files)."""
    uploads = uploads or {}
    if uploads:
        for name in uploads:
            upload_name(name)
        for fld in ("train_path", "test_path", "readme", "recorded_rationales", "recorded_synthetic"):
            p = getattr(spec, fld)
            if p is not None and p not in uploads:
                raise DataError(f"{fld} {p!r} is not among the uploaded files; upload it too")

    def resolve(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or base_dir is None else base_dir / q

    def read(path: str, split: str) -> list[dict]:
        return read_table(resolve(path), data=uploads.get(path), split=split)

    train_raw = read(spec.train_path, "train")
    train, warnings = normalize_rows(train_raw, spec, split="train", source_name=spec.train_path)
    test: list[dict] = []
    if spec.test_path:
        test_raw = read(spec.test_path, "test")
        test, w = normalize_rows(test_raw, spec, split="test", source_name=spec.test_path)
        warnings += w
        overlap = {e["id"] for e in train} & {e["id"] for e in test}
        if overlap:
            # Ids must be unique across splits in the workspace; prefix the test ids rather than fail.
            for e in test:
                e["id"] = f"test:{e['id']}"
            warnings.append(f"{len(overlap)} test ids also occur in train; test ids were prefixed with 'test:'")

    counts: dict[str, int] = {}
    for e in train:
        counts[e["domain"]] = counts.get(e["domain"], 0) + 1
    singles = sorted(d for d, n in counts.items() if n == 1)
    if singles:
        warnings.append(
            f"{len(singles)} domain(s) have a single training example ({', '.join(singles[:5])}"
            f"{'…' if len(singles) > 5 else ''}): they are always tail domains and rely on synthesis"
        )
    label_set = None
    if spec.task_type == "classification":
        label_set = sorted({e["answer"] for e in train} | {e["answer"] for e in test})
        if len(label_set) < 2:
            raise DataError(
                f"{spec.train_path}: a classification task needs at least 2 labels, found {label_set}; "
                f"check --answer-field or choose another task type"
            )
    readme = None
    if spec.readme:
        rp = resolve(spec.readme)
        if rp.exists():
            readme = rp.read_text(encoding="utf-8")
    return LoadedDataset(spec, train, test, label_set, content_hash(train, test), warnings, readme)


def import_dataset(conn, spec: DatasetSpec, *, uploads: dict[str, bytes] | None = None,
                   base_dir: Path | None = None, bundled: bool = False) -> LoadedDataset:
    """Validate fully, then replace the dataset in the workspace in one transaction."""
    loaded = load_dataset(spec, uploads=uploads, base_dir=base_dir)
    store.save_dataset(
        conn,
        spec_json=spec.model_dump_json(),
        name=spec.name,
        content_hash=loaded.content_hash,
        train=loaded.train,
        test=loaded.test,
        label_set=loaded.label_set,
        readme=loaded.readme,
        bundled=bundled,
    )
    return loaded


# ---------------------------------------------------------------- bundled demo data


def bundled_specs() -> dict[str, DatasetSpec]:
    """The demo datasets shipped under ``assets/datasets/<name>/dataset.yaml`` (paths made absolute)."""
    out = {}
    for f in sorted(BUNDLED_DIR.glob("*/dataset.yaml")):
        raw = yaml.safe_load(f.read_text(encoding="utf-8"))
        for k in ("train_path", "test_path", "recorded_rationales", "recorded_synthetic", "readme"):
            if raw.get(k):
                raw[k] = str((f.parent / raw[k]).resolve())
        spec = DatasetSpec.model_validate(raw)
        out[spec.name] = spec
    return out


def ensure_bundled(conn) -> list[str]:
    """Import bundled datasets that are missing from the workspace; returns the names imported."""
    have = {d["name"] for d in store.list_datasets(conn)}
    imported = []
    for name, spec in bundled_specs().items():
        if name not in have:
            import_dataset(conn, spec, bundled=True)
            imported.append(name)
    return imported


def dataset_spec(conn, name: str) -> DatasetSpec:
    d = store.get_dataset(conn, name)
    if d is None:
        names = [x["name"] for x in store.list_datasets(conn)]
        raise DataError(f"dataset {name!r} is not in the workspace; datasets are: {', '.join(names) or '(none)'}")
    return DatasetSpec.model_validate(d["spec"])


def jsonl_dumps(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
