"""Load, validate and import datasets: JSONL, CSV, Parquet, or a saved Hugging Face `datasets` folder.

Every error names the file, the line or row, the field, and the fix. Nothing is written to the
workspace unless the whole file validates, so a bad upload never loses the data already there.
Reading lives in ``data.reading`` (streaming, row by row), the field mapping in ``data.normalize``,
and the chunked one-transaction import in ``data.importing``; ``load_dataset`` is the in-memory
twin for small files and benches.
"""

from __future__ import annotations

from baldistill_core.errors import DataError  # noqa: F401  (re-exported: data.DataError)

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from baldistill_core import store
from baldistill_core.config import DatasetSpec
from baldistill_core.data import normalize
from baldistill_core.data.importing import ImportResult, import_stream
from baldistill_core.data.normalize import (NO_DOMAIN, content_hash, normalize_rows,  # noqa: F401 (re-exported)
                                            upload_name)
from baldistill_core.data.reading import MAX_UPLOAD_BYTES, first_row, iter_table, read_table  # noqa: F401

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
BUNDLED_DIR = ASSETS_DIR / "datasets"


@dataclass
class LoadedDataset:
    spec: DatasetSpec
    train: list[dict]
    test: list[dict]
    label_set: list[str] | None
    content_hash: str
    warnings: list[str] = field(default_factory=list)
    readme: str | None = None


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
    """Read and validate both splits of ``spec`` into memory (small files, previews, benches; the
    workspace import streams instead). ``uploads`` maps a path in the spec to bytes; with uploads,
    every path in the spec must be one of them (an upload never makes the server read its own files)."""
    uploads = uploads or {}
    normalize.check_uploads(spec, uploads)

    def read(path: str, split: str):
        q = Path(path)
        q = q if q.is_absolute() or base_dir is None else base_dir / q
        return normalize_rows(iter_table(q, data=uploads.get(path), split=split), spec, split=split, source_name=path)

    normalize.check_distinct_splits(spec)
    train, warnings = read(spec.train_path, "train")
    test: list[dict] = []
    if spec.test_path:
        test, _ = read(spec.test_path, "test")
        overlap = {e["id"] for e in train} & {e["id"] for e in test}
        if overlap:
            # Ids must be unique across splits in the workspace; prefix the test ids rather than fail.
            for e in test:
                e["id"] = f"test:{e['id']}"
            warnings.append(f"{len(overlap)} test ids also occur in train; test ids were prefixed with 'test:'")
    counts: dict[str, int] = {}
    for e in train:
        counts[e["domain"]] = counts.get(e["domain"], 0) + 1
    warnings += normalize.single_domain_warning(counts) + normalize.domain_column_warnings(spec, counts)
    label_set = None
    if spec.task_type == "classification":
        label_set = sorted({e["answer"] for e in train} | {e["answer"] for e in test})
        normalize.check_labels(label_set, spec.train_path)
    return LoadedDataset(spec, train, test, label_set, content_hash(train, test), warnings,
                         normalize.read_readme(spec, base_dir))


def import_dataset(conn, spec: DatasetSpec, *, uploads: dict[str, bytes] | None = None,
                   base_dir: Path | None = None, bundled: bool = False, append: bool = False,
                   replace: bool = False) -> ImportResult:
    """Validate and write the dataset in one transaction, streaming the file a chunk at a time:
    add it, replace an existing one only with ``replace=True`` (a failed import leaves the old
    version intact), or with ``append`` add a part. A name in use without ``replace`` (bundled demos
    included) is a DataError saying how to confirm, raised before any row is read (``import_stream``
    checks the name under the write lock, so an import by another process meanwhile counts too)."""
    return import_stream(conn, spec, uploads=uploads, base_dir=base_dir, bundled=bundled, append=append,
                         replace=replace)


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
    """Import bundled datasets that are missing from the workspace; returns the names imported.
    Processes opening one workspace at once (two workers, a worker and the dashboard) may race here:
    a demo that another process imported meanwhile is kept as it is."""
    have = {d["name"] for d in store.list_datasets(conn)}
    imported = []
    for name, spec in bundled_specs().items():
        if name in have:
            continue
        try:
            import_dataset(conn, spec, bundled=True)
        except DataError:
            if store.get_dataset(conn, name) is None:
                raise
            continue  # imported by another process between our look and our write
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
