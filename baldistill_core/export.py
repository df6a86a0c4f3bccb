"""Export a run: the distilled training set, the adapter, a merged model, the metrics.

* ``jsonl``: TRL conversational format, one ``{"messages": [user, assistant]}`` per line — the
  user turn is the student prompt, the assistant turn the rationale + answer sentence — plus the
  example's id, domain, stage and kind as extra keys (SFTTrainer ignores them).
* ``datasets``: the same rows saved with ``Dataset.save_to_disk`` (load with ``load_from_disk``).
* ``csv``: every metric row of the run.
* ``adapter``: the final stage's LoRA adapter folder.
* ``merged``: base model with the adapter merged in (``merge_and_unload``), saved with its tokenizer.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from . import data, runs, selection, store
from .config import RunConfig
from .prompts import student_prompt, task_instruction, training_completion

FORMATS = ("jsonl", "datasets", "csv", "adapter", "merged")


def distilled_rows(conn, run_id: str) -> list[dict]:
    """The run's final training set as conversational rows, in training order."""
    cfg = runs.run_config(conn, run_id)
    spec = data.dataset_spec(conn, cfg.dataset)
    labels = store.get_dataset(conn, cfg.dataset)["label_set"]
    cot = selection.method_info(cfg)["cot"]
    instr = task_instruction(spec.task_type, spec.instruction, labels)
    last = max(selection.effective_stages(cfg) - 1, 0)
    out = []
    for r in selection.training_rows(conn, run_id, cfg.dataset, last):
        out.append(dict(
            messages=[dict(role="user", content=student_prompt(instr, r["input"], spec.task_type)),
                      dict(role="assistant", content=training_completion(r["rationale"], r["answer"], cot=cot))],
            id=r["example_id"], domain=r["domain"], stage=r["stage"], kind=r["kind"], answer=r["answer"]))
    return out


def _final_adapter(conn, run_id: str) -> Path:
    r = store.one(conn, "SELECT adapter_dir FROM stage_details WHERE run_id = ? AND adapter_dir IS NOT NULL"
                        " ORDER BY stage DESC LIMIT 1", (run_id,))
    if r is None or not Path(r["adapter_dir"]).exists():
        raise runs.RunError(f"run {run_id} has no trained adapter yet; wait until a stage has finished training")
    return Path(r["adapter_dir"])


def export_run(conn, run_id: str, fmt: str, out: str | Path) -> Path:
    """Write the run's ``fmt`` export to ``out`` (a file for jsonl/csv, a folder otherwise)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        rows = distilled_rows(conn, run_id)
        if not rows:
            raise runs.RunError(f"run {run_id} has no kept training examples yet")
        out.write_text(data.jsonl_dumps(rows), encoding="utf-8")
    elif fmt == "datasets":
        from datasets import Dataset

        rows = distilled_rows(conn, run_id)
        if not rows:
            raise runs.RunError(f"run {run_id} has no kept training examples yet")
        if out.exists():
            shutil.rmtree(out)
        Dataset.from_list(rows).save_to_disk(str(out))
    elif fmt == "csv":
        rows = runs.metrics(conn, run_id)
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["stage", "step", "split", "domain", "metric", "value", "at"])
            w.writeheader()
            w.writerows(rows)
    elif fmt == "adapter":
        src = _final_adapter(conn, run_id)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(src, out)
    elif fmt == "merged":
        export_merged(conn, run_id, out)
    return out


def export_merged(conn, run_id: str, out: str | Path) -> Path:
    from .student import load_model, resolve_model

    cfg: RunConfig = runs.run_config(conn, run_id)
    adapter = _final_adapter(conn, run_id)
    model, tok = load_model(resolve_model(cfg.student.model), adapter_dir=adapter, quantization="none")
    merged = model.merge_and_unload()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    merged.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / "baldistill_run.json").write_text(json.dumps({"run_id": run_id, "adapter": str(adapter)}, indent=2))
    return out
