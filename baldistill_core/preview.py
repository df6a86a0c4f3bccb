"""Stage preview: what a run config would select at stage i, before any teacher money is spent.

Uses the same allocation and selection code as the pipeline (``selection``). Given a run, the
pool is the run's real remaining pool and the student of stage i-1 scores head candidates by IFD
(scores are cached by checkpoint, so the run later reuses them). Without a run, earlier stages are
simulated with random picks (pool bookkeeping does not depend on the teacher), and selection is
random: there is no student to judge difficulty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import data, selection, store
from .config import RunConfig
from .prompts import student_prompt, task_instruction


@dataclass
class StagePreview:
    stage: int
    stages: int
    method: str
    allocation: selection.Allocation | None
    head_picks: list[dict] = field(default_factory=list)      # {domain, id, ifd, input}
    runners_up: list[dict] = field(default_factory=list)      # {domain, id, ifd, input}
    tail_gaps: list[dict] = field(default_factory=list)       # {domain, gap, fill, approved, pending, items, short}
    notes: list[str] = field(default_factory=list)
    by_ifd: bool = False

    def rows(self) -> list[dict]:
        if self.allocation is None:
            return []
        gaps = {g["domain"]: g for g in self.tail_gaps}
        return [dict(domain=d, role=v["role"], quota=v["quota"], pool=v["pool"], real=v["real"], fill=v["fill"],
                     approved=gaps.get(d, {}).get("approved"), pending=gaps.get(d, {}).get("pending"))
                for d, v in self.allocation.as_dict().items()]


def _snippet(text: str, n: int = 90) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _approved(conn, dataset: str, domain: str, exclude: set[str]) -> list[dict]:
    try:
        from . import synthesis
    except ImportError:  # pragma: no cover - the synthesis module not installed yet
        return []
    return synthesis.approved_synthetic(conn, dataset, domain, exclude_ids=tuple(sorted(exclude)))


def preview_stage(conn, cfg: RunConfig, stage: int, *, run_id: str | None = None, scorer=None,
                  teacher=None) -> StagePreview:
    """The plan of ``stage`` for ``cfg``: quotas, head picks (+ IFD scores and runners-up), tail gaps.

    ``scorer`` ([{key, prompt}] -> {key: score}) is the previous stage's student (see
    ``stage_scoring.ifd_scorer``); ``teacher`` restricts the pool for a recorded teacher (built here
    if not given).
    """
    m = selection.method_info(cfg)
    k = selection.effective_stages(cfg)
    pv = StagePreview(stage, k, cfg.method, None)
    if k == 0:
        pv.notes.append(f"{cfg.method} trains nothing: it evaluates the base student, so there is no selection")
        return pv
    if not 0 <= stage < k:
        raise ValueError(f"stage {stage} is outside 0..{k - 1} for {cfg.method} with K={cfg.stages}")
    spec = data.dataset_spec(conn, cfg.dataset)
    labels = store.get_dataset(conn, cfg.dataset)["label_set"]
    instr = task_instruction(spec.task_type, spec.instruction, labels)

    def prompt_of(e):
        return student_prompt(instr, e["input"], spec.task_type)

    keep = None
    if cfg.teacher.backend == "recorded":
        if teacher is None:
            from .teacher import build_teacher

            teacher = build_teacher(cfg.teacher, conn, spec=spec, labels=labels)
        keep = teacher.can_annotate
        pv.notes.append("recorded teacher: the pool holds only inputs with a recorded rationale")
    sizes = selection.domain_sizes(conn, cfg.dataset)
    pool0 = selection.candidate_pool(conn, cfg.dataset, keep)
    used_syn: set[str] = set()
    if run_id:
        taken = selection.picked_ids(conn, run_id, stage)
        used_syn = {r["example_id"] for r in store.rows(
            conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage < ? AND kind = 'synthetic'",
            (run_id, stage))}
    else:
        taken = set()
        for j in range(stage):
            pool = selection.remaining(pool0, taken)
            a = selection.allocate(m["policy"], m["fill"], sizes, {d: len(v) for d, v in pool.items()},
                                   cfg.budget, k, j)
            s = selection.select_stage(a, pool, seed=cfg.seed, use_ifd=False, scorer=None, prompt_of=prompt_of,
                                       ifd_cap=cfg.ifd.candidate_cap_per_domain, fill=m["fill"])
            taken |= {p.example_id for p in s.picks if p.kind in selection.REAL_KINDS}
        if stage:
            earlier = "stage 0 is" if stage == 1 else f"stages 0..{stage - 1} are"
            pv.notes.append(f"no run given: {earlier} simulated with random picks to shrink the pool")
    pool = selection.remaining(pool0, taken)
    alloc = selection.allocate(m["policy"], m["fill"], sizes, {d: len(v) for d, v in pool.items()}, cfg.budget, k,
                               stage)
    pv.allocation = alloc
    sel = selection.select_stage(
        alloc, pool, seed=cfg.seed, use_ifd=m["ifd"], scorer=scorer, prompt_of=prompt_of,
        ifd_cap=cfg.ifd.candidate_cap_per_domain, fill=m["fill"],
        synthetic=lambda d: _approved(conn, cfg.dataset, d, used_syn))
    pv.notes += sel.notes
    pv.by_ifd = bool(sel.scored)
    if not m["ifd"]:
        pv.notes.append(f"{cfg.method} selects at random within each domain (no IFD)")
    texts = {e["id"]: e["input"] for items in pool.values() for e in items}
    for p in sel.picks:
        if p.kind == "head":
            pv.head_picks.append(dict(domain=p.domain, id=p.example_id, ifd=p.ifd, input=_snippet(texts[p.example_id])))
    for d, ru in sel.runners_up.items():
        pv.runners_up += [dict(domain=d, id=x, ifd=s, input=_snippet(texts[x])) for x, s in ru]
    pending = {r["domain"]: r["n"] for r in store.rows(
        conn, "SELECT domain, COUNT(*) AS n FROM synthetic WHERE dataset = ? AND status = 'pending' GROUP BY domain",
        (cfg.dataset,))}
    for d in alloc.tail:
        gap = alloc.fill[d]
        items = [dict(id=p.example_id, kind=p.kind) for p in sel.picks if p.domain == d and p.kind in
                 ("synthetic", "duplicate")]
        if m["fill"] == "synthesize":
            syn = {r["id"]: r for r in _approved(conn, cfg.dataset, d, used_syn)}
            for it in items:
                it["input"] = _snippet(syn.get(it["id"], {}).get("input", ""))
        pv.tail_gaps.append(dict(domain=d, gap=gap, fill=m["fill"], real=alloc.real[d],
                                 approved=len([i for i in items if i["kind"] == "synthetic"]),
                                 pending=pending.get(d, 0), short=sel.synth_short.get(d, 0), items=items))
    if sel.synth_short:
        pv.notes.append("some tail gaps have too few approved synthetic examples: the run will ask the teacher to "
                        "synthesize the rest and wait for review (unless auto-approve is on)")
    return pv


def format_preview(pv: StagePreview) -> str:
    """The plan as plain-text tables (the CLI twin of the Plan page)."""
    lines = [f"stage {pv.stage} of {pv.stages} ({pv.method})"]
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
