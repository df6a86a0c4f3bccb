"""Shared pieces of the teacher tests: a small classification dataset in a fresh workspace."""

from __future__ import annotations

import json
from pathlib import Path

from baldistill_core.config import DatasetSpec
from baldistill_core.data.loading import import_dataset

LABELS = ["acq", "earn", "money-fx", "nat-gas", "tin"]


def small_dataset(conn, tmp_path: Path, *, n_per_label: int = 4, name: str = "mini") -> DatasetSpec:
    rows = []
    k = 0
    for lab in LABELS:
        for i in range(n_per_label):
            k += 1
            rows.append({"id": f"{name}-{k:03d}", "domain": lab, "answer": lab,
                         "input": f"Story {k} about {lab} item {i}: company reported figures for quarter {i}."})
    train = tmp_path / f"{name}_train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DatasetSpec(name=name, train_path=str(train), task_type="classification",
                       instruction="Classify the story into one topic from: {labels}.")
    import_dataset(conn, spec, replace=True)
    return spec


def items(conn, dataset: str, *, marker: dict[int, str] | None = None, limit: int | None = None) -> list[dict]:
    """Training examples as teacher items; ``marker`` appends a server marker to item k's input."""
    from baldistill_core import store

    out = store.examples(conn, dataset, limit=limit)
    for k, m in (marker or {}).items():
        out[k] = {**out[k], "input": out[k]["input"] + " " + m}
    return out
