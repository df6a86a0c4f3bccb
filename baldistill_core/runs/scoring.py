"""IFD scorers bound to a student: the pipeline's previous stage, or a finished run's stage for the preview."""

from __future__ import annotations

from baldistill_core.runs import records as runs
from baldistill_core.config import RunConfig


def checkpoint_id(run_id: str, stage: int) -> str:
    """The IFD cache key of a stage's student (an adapter is final once its stage is done)."""
    return f"{run_id}/stage{stage}"


def ifd_scorer(conn, cfg: RunConfig, checkpoint: str, model, tokenizer):
    """[{key, prompt}] -> {key: IFD score} with the given student, cached by ``checkpoint``."""
    from baldistill_core.student import ifd

    def score(items: list[dict]) -> dict:
        res = ifd.score_cached(conn, checkpoint, model, tokenizer, items, max_new_tokens=cfg.student.max_new_tokens,
                               batch_size=cfg.ifd.batch_size, variant=cfg.ifd.variant)
        return {k: r.score for k, r in res.items()}

    return score


def stage_scorer(conn, run_id: str, prev_stage: int):
    """The IFD scorer of a run's finished stage ``prev_stage`` (for the stage preview)."""
    from baldistill_core.student.model import load_model, resolve_model

    cfg = runs.run_config(conn, run_id)
    adapter = runs.adapter_dir(conn, run_id, prev_stage)
    if runs.stage_status(conn, run_id, prev_stage) != "done" or not adapter:
        raise runs.RunError(f"run {run_id} has not finished stage {prev_stage}; its student cannot score yet — "
                            f"wait for the stage to finish, or plan without a student")
    from baldistill_core.student.precision import use_cpu_bf16

    model, tok = load_model(resolve_model(cfg.student.model), adapter_dir=adapter,
                            quantization=cfg.student.quantization, cpu_bf16=use_cpu_bf16(cfg.student))
    return ifd_scorer(conn, cfg, checkpoint_id(run_id, prev_stage), model, tok)
