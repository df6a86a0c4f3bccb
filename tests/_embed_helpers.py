"""Toy corpora for the embedding-map tests: three well separated topics."""

from __future__ import annotations

import random

from baldistill_core.data import loading as data
from baldistill_core.config import DatasetSpec

TOPICS = {
    "oil": "oil crude barrels opec refinery pipeline petroleum drilling".split(),
    "grain": "wheat grain harvest tonnes farmers crop corn soybean".split(),
    "bank": "bank interest rates loans deposits lending mortgage credit".split(),
}
FILLER = "the a report said on in this week market new".split()


def toy_rows(n_per_topic: int = 40, seed: int = 0, with_domain: bool = False) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for topic, words in TOPICS.items():
        for i in range(n_per_topic):
            text = " ".join(rng.choice(words) if rng.random() < 0.7 else rng.choice(FILLER) for _ in range(14))
            row = dict(id=f"{topic}-{i}", input=text, answer=topic)
            if with_domain:
                row["domain"] = topic
            out.append(row)
    rng.shuffle(out)
    return out


def import_toy(conn, tmp_path, name="toy", rows=None, with_domain=False, test_rows=None):
    rows = rows if rows is not None else toy_rows(with_domain=with_domain)
    path = tmp_path / f"{name}.jsonl"
    path.write_text(data.jsonl_dumps(rows), encoding="utf-8")
    test_path = None
    if test_rows:
        test_path = tmp_path / f"{name}_test.jsonl"
        test_path.write_text(data.jsonl_dumps(test_rows), encoding="utf-8")
    spec = DatasetSpec(name=name, train_path=str(path), test_path=str(test_path) if test_path else None,
                       domain_field="domain" if with_domain else None, task_type="qa")
    data.import_dataset(conn, spec, replace=True)  # tests re-import on purpose (cache invalidation)
    return rows
