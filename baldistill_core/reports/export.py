"""Export a run: the distilled training set, the adapter, a merged model, the metrics.

* ``jsonl``: TRL conversational format, one ``{"messages": [user, assistant]}`` per line — the
  user turn is the student prompt, the assistant turn the rationale + answer sentence — plus the
  example's id, domain, stage, kind and provenance (teacher model, backend, batch id, import file +
  hash) as extra keys (SFTTrainer ignores them).
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

from baldistill_core.config import RunConfig
from baldistill_core.data import loading as data
from baldistill_core.errors import ConfigError
from baldistill_core.runs import records as runs
from baldistill_core.runs.context import RunContext
from baldistill_core.selection import records as picks

FORMATS = ("jsonl", "datasets", "csv", "adapter", "merged")


def distilled_rows(conn, run_id: str, *, tokenizer=None) -> list[dict]:
    """The run's final training set as conversational rows, in training order.

    The user turn is the run's own student view of the example (input clip included): the prompt
    the student trained on, not a rebuilt one.
    """
    from baldistill_core.teacher.imports import export_provenance

    ctx = RunContext.build(conn, runs.run_config(conn, run_id), tokenizer=tokenizer)
    last = max(ctx.k - 1, 0)
    batch_of = None
    if ctx.cfg.teacher.mode == "batch" and ctx.cfg.teacher.backend == "openai":
        from baldistill_core.teacher.batch import rationale_batch_of

        batch_of = rationale_batch_of(ctx.teacher(run_id=run_id, api_key="not-sent"))  # prompts only, no call
    prov = export_provenance(conn, ctx.cfg.dataset, ctx.cfg.teacher, batch_of)
    out = []
    for r in picks.training_rows(conn, run_id, ctx.cfg.dataset, last):
        pair = ctx.view.training_pair(r, cot=ctx.method.cot)
        out.append(dict(
            messages=[dict(role="user", content=pair["prompt"]), dict(role="assistant", content=pair["completion"])],
            id=r["example_id"], domain=r["domain"], stage=r["stage"], kind=r["kind"], answer=r["answer"],
            provenance=prov(r)))
    return out


def _final_adapter(conn, run_id: str) -> Path:
    adapter = runs.last_adapter(conn, run_id)
    if adapter is None or not Path(adapter).exists():
        raise runs.RunError(f"run {run_id} has no trained adapter yet; wait until a stage has finished training")
    return Path(adapter)


def export_run(conn, run_id: str, fmt: str, out: str | Path) -> Path:
    """Write the run's ``fmt`` export to ``out`` (a file for jsonl/csv, a folder otherwise)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
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
    from baldistill_core.student.model import load_model, resolve_model

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
