"""Shared fixtures of the run tests: a tiny long-tailed math dataset with recorded teacher outputs.

Domains: ``alg`` 14, ``geo`` 6, ``num`` 2 training problems ("What is a + b?"). Recorded rationales
exist for all but ``alg-13`` (so the recorded pool leaves it out) and ``alg-01``'s ends at a wrong
answer (so it is dropped); ``num`` has two recorded synthetic problems to fill its tail gap.
With B=15, K=3, adaptive: stage quotas alg/geo/num = 3/1/1, 3/1/1, 2/2/1; ``num`` runs dry at stage 2
and becomes tail there.
"""

from __future__ import annotations

import json
from pathlib import Path

from baldistill_core.config import DatasetSpec, RunConfig
from baldistill_core.data.loading import import_dataset

SIZES = {"alg": 14, "geo": 6, "num": 2}


def _problem(domain: str, k: int) -> tuple[str, str]:
    a, b = 3 * k + len(domain), k + 2
    return f"[{domain}] What is {a} + {b}?", str(a + b)


def write_dataset(folder: Path) -> DatasetSpec:
    folder.mkdir(parents=True, exist_ok=True)
    train, test, rats, syn = [], [], [], []
    for d, n in SIZES.items():
        for k in range(n):
            q, a = _problem(d, k)
            ex_id = f"{d}-{k:02d}"
            train.append(dict(id=ex_id, domain=d, input=q, answer=a))
            if ex_id == "alg-13":
                continue
            said = str(int(a) + 1) if ex_id == "alg-01" else a
            rats.append(dict(id=ex_id, rationale=f"We add the two numbers. The answer is: {said}", teacher_answer=said))
        for k in range(3):
            q, a = _problem(d, 100 + k)
            test.append(dict(id=f"t-{d}-{k}", domain=d, input=q, answer=a))
    for k in range(2):
        q, a = _problem("num", 200 + k)
        syn.append(dict(id=f"syn-num-{k}", domain="num", input=q, answer=a,
                        rationale=f"Adding gives {a}. The answer is: {a}", teacher_answer=a))
    for name, rows in (("train", train), ("test", test), ("teacher_rationales", rats), ("teacher_synthetic", syn)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return DatasetSpec(
        name="tinymath", train_path=str(folder / "train.jsonl"), test_path=str(folder / "test.jsonl"),
        task_type="math", instruction="Add the numbers.",
        recorded_rationales=str(folder / "teacher_rationales.jsonl"),
        recorded_synthetic=str(folder / "teacher_synthetic.jsonl"))


def import_tiny(conn, folder: Path) -> DatasetSpec:
    spec = write_dataset(folder)
    import_dataset(conn, spec, replace=True)
    return spec


def tiny_config(**over) -> RunConfig:
    raw = dict(
        name="tiny", dataset="tinymath", method="baldistill_a", budget=15, stages=3, seed=0, auto_approve=True,
        teacher=dict(backend="recorded", verify_synthetic=False),
        student=dict(model="tiny-llama-test", preset="test-tiny", max_new_tokens=8),
        ifd=dict(candidate_cap_per_domain=4, batch_size=8),
        eval=dict(live_per_domain=2, final_per_domain=3),
    )
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] = {**raw[k], **v}
        else:
            raw[k] = v
    return RunConfig.model_validate(raw)


def training_content(conn, run_id: str) -> list[tuple]:
    """The run's final training data by content (synthetic ids differ between workspaces)."""
    from baldistill_core.selection import records as picks

    return [(r["stage"], r["kind"], r["domain"], r["input"], r["answer"], r["rationale"])
            for r in picks.training_rows(conn, run_id, "tinymath", 99)]
