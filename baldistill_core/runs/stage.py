"""The one stage routine: allocate, pick, score and fill one stage. The run and the preview both call it.

``plan_stage`` turns a run context, the stage's history (what earlier stages took) and an optional
IFD scorer into the stage's selection. The pipeline passes a ``synthesize`` callback that asks the
teacher for a tail gap's missing examples; the preview passes none and reports the gap instead, so
what the Plan page shows is exactly what the run then selects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baldistill_core import store
from baldistill_core.errors import BalDistillError
from baldistill_core.selection import records as picks
from baldistill_core.selection import select as selection
from baldistill_core.selection.policy import allocate_stage


@dataclass
class StageHistory:
    """What the stages before this one took: real ids (left the pool), synthetic ids, real ids per domain."""

    taken: set[str] = field(default_factory=set)
    used_synthetic: set[str] = field(default_factory=set)
    earlier_real: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of_run(cls, conn, run_id: str, stage: int) -> "StageHistory":
        return cls(picks.picked_ids(conn, run_id, stage), picks.used_synthetic_ids(conn, run_id, stage),
                   picks.earlier_real(conn, run_id, stage))

    def add(self, sel: selection.StageSelection) -> None:
        for p in sel.picks:
            if p.kind in selection.REAL_KINDS:
                self.taken.add(p.example_id)
                self.earlier_real.setdefault(p.domain, []).append(p.example_id)
            elif p.kind == "synthetic":
                self.used_synthetic.add(p.example_id)


def simulated_history(ctx, stage: int) -> StageHistory:
    """Earlier stages replayed with random picks (no student, no teacher): the preview without a run."""
    hist = StageHistory()
    for j in range(stage):
        hist.add(plan_stage(ctx, j, hist, use_ifd=False))
    return hist


def plan_stage(ctx, stage: int, history: StageHistory, *, scorer=None, synthesize=None,
               use_ifd: bool | None = None) -> selection.StageSelection:
    """The selection of ``stage``. ``synthesize(short)`` is called once with the synthetic examples
    still missing per domain; afterwards the stage is picked again from the approved ones."""
    cfg, m = ctx.cfg, ctx.method
    pool = selection.remaining(ctx.pool(), history.taken)
    alloc = allocate_stage(m.policy, ctx.sizes, {d: len(v) for d, v in pool.items()}, cfg.budget, ctx.k, stage,
                           fill=m.fill)

    def usable(domain: str) -> list[dict]:
        from baldistill_core.synthetic.synthesis import approved_synthetic

        return approved_synthetic(ctx.conn, cfg.dataset, domain, exclude_ids=tuple(sorted(history.used_synthetic)))

    def pick() -> selection.StageSelection:
        sel = selection.select_stage(
            alloc, pool, seed=cfg.seed, use_ifd=m.ifd if use_ifd is None else use_ifd, scorer=scorer,
            prompt_of=ctx.view.prompt, ifd_cap=cfg.ifd.candidate_cap_per_domain, fill=m.fill,
            synthetic=usable, earlier_real=history.earlier_real,
            inputs=lambda ids: store.inputs_by_id(ctx.conn, cfg.dataset, ids))
        sel.pool = pool
        return sel

    sel = pick()
    if sel.synth_short and synthesize is not None:
        synthesize(sel.synth_short)
        sel = pick()
        if sel.synth_short:
            raise BalDistillError(f"stage {stage}: still short of synthetic examples {sel.synth_short} after "
                                  f"synthesis; approve more on the Review page or lower the budget, then Resume")
    return sel
