"""Stage preview: what a run config would select at stage i, before any teacher money is spent.

It calls the run's own stage routine (``runs.stage.plan_stage``) with the run's own context and
student view (``runs.context``), so the prompts it ranks and the picks it shows are the run's.
Given a run, the pool is the run's real remaining pool and the student of stage i-1 scores head
candidates by IFD (scores are cached by checkpoint and prompt hash, so the run later reuses
exactly these). Without a run, earlier stages are simulated with random picks (pool bookkeeping
does not depend on the teacher), and selection is random: there is no student to judge difficulty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.errors import ConfigError
from baldistill_core.runs.context import RunContext
from baldistill_core.runs.stage import StageHistory, plan_stage, simulated_history
from baldistill_core.selection.methods import label as method_label
from baldistill_core.selection.policy import StagePlan
from baldistill_core.synthetic import synthesis


@dataclass
class StagePreview:
    stage: int
    stages: int
    method: str
    allocation: StagePlan | None
    head_picks: list[dict] = field(default_factory=list)      # {domain, id, ifd, input}
    runners_up: list[dict] = field(default_factory=list)      # {domain, id, ifd, input}
    tail_gaps: list[dict] = field(default_factory=list)       # {domain, gap, fill, approved, pending, items, short}
    notes: list[str] = field(default_factory=list)
    by_ifd: bool = False
    to_score: int = 0                                          # head candidates an IFD scorer scores
    picks: list = field(default_factory=list, repr=False)     # the selection's Pick objects, as the run saves them

    def rows(self) -> list[dict]:
        if self.allocation is None:
            return []
        gaps = {g["domain"]: g for g in self.tail_gaps}
        # approved / pending concern tail gaps only: a blank (not None) for the other domains.
        return [dict(domain=d, role=v["role"], quota=v["quota"], pool=v["pool"], real=v["real"], fill=v["fill"],
                     approved=_blank(gaps.get(d, {}).get("approved")), pending=_blank(gaps.get(d, {}).get("pending")))
                for d, v in self.allocation.as_dict().items()]


def _blank(v) -> str:
    return "" if v is None else str(v)


def _snippet(text: str, n: int = 90) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= n else t[: n - 1] + "…"


def preview_stage(conn, cfg: RunConfig, stage: int, *, run_id: str | None = None, scorer=None,
                  teacher=None, tokenizer=None, pool: dict | None = None) -> StagePreview:
    """The plan of ``stage`` for ``cfg``: quotas, head picks (+ IFD scores and runners-up), tail gaps.

    ``scorer`` ([{key, prompt}] -> {key: score}) is the previous stage's student (see
    ``runs.scoring.ifd_scorer``); ``teacher`` restricts the pool for a recorded teacher (built here
    if not given); ``tokenizer`` is the student's (loaded when the input clip needs it); ``pool`` is a
    candidate pool the caller read before (``RunContext.pool()``) for the same dataset content and teacher.
    """
    ctx = RunContext.build(conn, cfg, tokenizer=tokenizer, teacher=teacher, pool=pool)
    m, k = ctx.method, ctx.k
    pv = StagePreview(stage, k, m.name, None)
    if k == 0:
        pv.notes.append(f"{m.label} trains nothing: it evaluates the base student, so there is no selection")
        return pv
    if not 0 <= stage < k:
        raise ConfigError(f"stage {stage} is outside 0..{k - 1} for {m.label} with K={cfg.stages}; "
                          f"pick a stage in that range")
    if ctx.recorded_filter() is not None:
        pv.notes.append("recorded teacher: the pool holds only inputs with a recorded rationale")
    if run_id:
        history = StageHistory.of_run(conn, run_id, stage)
    else:
        history = simulated_history(ctx, stage)
        if stage:
            earlier = "stage 0 is" if stage == 1 else f"stages 0..{stage - 1} are"
            pv.notes.append(f"no run given: {earlier} simulated with random picks to shrink the pool")
    sel = plan_stage(ctx, stage, history, scorer=scorer)
    alloc = pv.allocation = sel.allocation
    pv.picks = sel.picks
    pv.notes += sel.notes
    pv.by_ifd = bool(sel.scored)
    pv.to_score = sel.candidates_scored(cfg.ifd.candidate_cap_per_domain)
    if not m.ifd:
        pv.notes.append(f"{m.label} selects at random within each domain (no IFD)")
    # Texts of the shown rows only (the pool holds ids and rows, not text).
    shown = [p.example_id for p in sel.picks if p.kind == "head"] + [x for ru in sel.runners_up.values() for x, _ in ru]
    texts = store.inputs_by_id(conn, cfg.dataset, shown)
    for p in sel.picks:
        if p.kind == "head":
            pv.head_picks.append(dict(domain=p.domain, id=p.example_id, ifd=p.ifd, input=_snippet(texts[p.example_id])))
    for d, ru in sel.runners_up.items():
        pv.runners_up += [dict(domain=d, id=x, ifd=s, input=_snippet(texts[x])) for x, s in ru]
    pending = synthesis.pending_per_domain(conn, cfg.dataset)
    for d in alloc.tail:
        items = [dict(id=p.example_id, kind=p.kind) for p in sel.picks if p.domain == d and p.kind in
                 ("synthetic", "duplicate")]
        if m.fill == "synthesize":
            syn = {r["id"]: r for r in synthesis.approved_synthetic(conn, cfg.dataset, d)}
            for it in items:
                it["input"] = _snippet(syn.get(it["id"], {}).get("input", ""))
        pv.tail_gaps.append(dict(domain=d, gap=alloc.fill[d], fill=m.fill, real=alloc.real[d],
                                 approved=len([i for i in items if i["kind"] == "synthetic"]),
                                 pending=pending.get(d, 0), short=sel.synth_short.get(d, 0), items=items))
    if sel.synth_short:
        pv.notes.append("some tail gaps have too few approved synthetic examples: the run will ask the teacher to "
                        "synthesize the rest and wait for review (unless auto-approve is on)")
    return pv


def format_preview(pv: StagePreview) -> str:
    """The plan as plain-text tables (the CLI twin of the Plan page)."""
    lines = [f"stage {pv.stage} of {pv.stages} ({method_label(pv.method)})"]
    lines += [f"note: {n}" for n in pv.notes]
    if pv.allocation is None:
        return "\n".join(lines)
    lines.append(f"{'domain':<28} {'role':<5} {'quota':>5} {'pool':>6} {'real':>5} {'fill':>5} {'approved':>8} "
                 f"{'pending':>7}")
    for r in pv.rows():
        lines.append(f"{r['domain'][:28]:<28} {r['role']:<5} {r['quota']:>5} {r['pool']:>6} {r['real']:>5} "
                     f"{r['fill']:>5} {'' if r['approved'] is None else r['approved']:>8} "
                     f"{'' if r['pending'] is None else r['pending']:>7}")
    lines.append(f"{'total':<28} {'':<5} {pv.allocation.budget:>5}")
    if pv.head_picks:
        lines.append("")
        lines.append("head picks" + (" (highest IFD first)" if pv.by_ifd else " (random)") + ":")
        for p in pv.head_picks:
            score = "" if p["ifd"] is None else f"{p['ifd']:.4f}"
            lines.append(f"  {p['domain'][:20]:<20} {p['id']:<22} {score:>8}  {p['input']}")
    if pv.runners_up:
        lines.append("runners-up:")
        for p in pv.runners_up:
            score = "" if p["ifd"] is None else f"{p['ifd']:.4f}"
            lines.append(f"  {p['domain'][:20]:<20} {p['id']:<22} {score:>8}  {p['input']}")
    if pv.tail_gaps:
        lines.append("tail gaps:")
        for g in pv.tail_gaps:
            lines.append(f"  {g['domain'][:28]:<28} real {g['real']}, gap {g['gap']} by {g['fill']}: "
                         f"{g['approved']} approved synthetic, {g['pending']} pending review, {g['short']} to synthesize")
    return "\n".join(lines)
