"""Evaluate a finished run's student (or a base model) on a dataset's test split, with the run's own view.

This lives with the runs, not in ``evaluation/`` (metrics only): it reads the run's config and
adapter records and builds the run's :class:`~baldistill_core.runs.context.RunContext`, so the
prompts are the clipped ones the run trained and scored on.
"""

from __future__ import annotations

from baldistill_core import store
from baldistill_core.config import EvalConfig, RunConfig, StudentConfig
from baldistill_core.data import loading as data
from baldistill_core.errors import ConfigError
from baldistill_core.evaluation.evaluate import EvalReport, eval_subset, evaluate_model
from baldistill_core.runs import records as runs
from baldistill_core.runs.context import RunContext, tokenizer_loader
from baldistill_core.task.view import StudentView


def evaluate_run(conn, *, run_id: str | None = None, model: str | None = None, dataset: str | None = None,
                 per_domain: int | None = None, stage: int | None = None, split: str = "test") -> EvalReport:
    """Evaluate a run's student (its last adapter, or ``stage``'s) or a base ``model`` on ``dataset``.

    ``per_domain`` defaults to the run's ``eval.final_per_domain`` (a base model: the default 20).
    A run is evaluated through its own student view (input clip included); a base model through
    the default student config's view.
    """
    from baldistill_core.student.model import load_model, resolve_model
    from baldistill_core.student.precision import use_cpu_bf16

    adapter = None
    if run_id:
        cfg: RunConfig = runs.run_config(conn, run_id)
        if dataset and dataset != cfg.dataset:
            cfg = cfg.model_copy(update={"dataset": dataset})
        if model and model != cfg.student.model:
            cfg = cfg.model_copy(update={"student": cfg.student.model_copy(update={"model": model})})
        per_domain = per_domain if per_domain is not None else cfg.eval.final_per_domain
        adapter = runs.last_adapter(conn, run_id, stage)
        if adapter is None and stage is not None:
            raise ConfigError(f"run {run_id} has no trained adapter for stage {stage}; pick a finished stage "
                              f"(see `baldistill runs show {run_id}`)")
        ctx = RunContext.build(conn, cfg)
        view, labels, dataset, model = ctx.view, ctx.labels, cfg.dataset, cfg.student.model
        max_new, seed, quant = cfg.student.max_new_tokens, cfg.seed, cfg.student.quantization
        bf16 = use_cpu_bf16(cfg.student)
    else:
        if not (model and dataset):
            raise ConfigError("give a run id, or --model and --dataset to evaluate a base student")
        student = StudentConfig(model=model)
        spec = data.dataset_spec(conn, dataset)
        labels = store.get_dataset(conn, dataset)["label_set"]
        view = StudentView.for_dataset(spec, labels, max_input_tokens=student.max_input_tokens,
                                       load_tokenizer=tokenizer_loader(model))
        max_new, seed, quant = student.max_new_tokens, 0, "none"
        bf16 = use_cpu_bf16(student)
        if per_domain is None:
            per_domain = EvalConfig().final_per_domain
    items = eval_subset(conn, dataset, per_domain, seed=seed, split=split)
    m, tok = load_model(resolve_model(model), adapter_dir=adapter, quantization=quant, cpu_bf16=bf16)
    return evaluate_model(m, tok, items, view, labels=labels, sizes=store.domain_counts(conn, dataset, "train"),
                          max_new_tokens=max_new)
