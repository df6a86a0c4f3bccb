"""Per-stage selection: pool bookkeeping, head/tail allocation, and which examples each domain takes.

Pure bookkeeping over ids (no model, no teacher): the pipeline and the stage preview call the
same functions, so what the *Plan* page shows is what the run will do.

* Quotas come from ``policy.quotas`` over the ORIGINAL domain sizes (the dataset's natural
  distribution), head/tail from the REMAINING pool: a domain is head at a stage when its pool
  still covers its quota.
* Head domains pick at random at stage 0 (seeded by run seed, stage and domain) and, for IFD
  methods, by the previous stage's student afterwards: a seeded random subsample of at most
  ``ifd.candidate_cap_per_domain`` candidates is scored and the highest IFD scores are taken.
* Tail domains take all real candidates; the gap is filled per the policy's ``fill``: synthetic
  examples (approved ones), duplicates of the domain's real picks, or — for policies that cannot
  synthesize — redistributed to domains with spare pool so the stage still spends its budget.
* Random-policy methods take the natural quota per domain at random within the domain (a
  stratified random sample of the pool), so every method is allocated by the same code.
* Picked items leave the pool whether the teacher's rationale is later kept or dropped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from baldistill_core.selection.policy import StagePlan
from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.errors import ConfigError
from baldistill_core.selection.methods import _synthesizing_methods, method_of

Scorer = Callable[[list[dict]], dict[str, float | None]]  # [{key, prompt}] -> {key: ifd score}
Inputs = Callable[[list[str]], dict[str, str]]             # example ids -> {id: input text}
REAL_KINDS = ("head", "tail_real")
DUP_SEP = "#dup"


def domain_sizes(conn, dataset: str) -> dict[str, int]:
    """Original training-pool size n_d per domain (the natural distribution)."""
    return store.domain_counts(conn, dataset, "train")


def candidate_pool(conn, dataset: str, keep: Callable[[dict], bool] | None = None) -> dict[str, list[dict]]:
    """Real training candidates per domain as ``{id, row, domain}`` (ordered by file row; no text: the
    inputs of the few candidates that need one are read by id), optionally filtered by ``keep``.

    The pipeline passes ``teacher.can_annotate`` for a recorded teacher: recorded rationales exist
    for only part of the training inputs, so the demo restricts the pool to those.
    """
    out: dict[str, list[dict]] = {d: [] for d in domain_sizes(conn, dataset)}
    for e in store.pool_rows(conn, dataset, "train"):
        if keep is None or keep(e):
            out[e["domain"]].append(e)
    return out


def remaining(pool: dict[str, list[dict]], taken: set[str]) -> dict[str, list[dict]]:
    if not taken:
        return {d: list(items) for d, items in pool.items()}
    return {d: [e for e in items if e["id"] not in taken] for d, items in pool.items()}


def check_budget(cfg: RunConfig, pool_size: int) -> None:
    """A method that cannot synthesize or duplicate must fit its whole budget in the real pool."""
    m = method_of(cfg)
    if m.train and m.fill == "redistribute" and cfg.budget > pool_size:
        raise ConfigError(
            f"budget B={cfg.budget} is larger than the pool of {pool_size} real training examples the teacher "
            f"can annotate, and {m.label} (method {m.name}) cannot synthesize tail data; lower the budget to at "
            f"most {pool_size} or use a method that synthesizes tail examples ({_synthesizing_methods()})"
        )


@dataclass
class Pick:
    example_id: str
    domain: str
    kind: str                    # head | tail_real | synthetic | duplicate
    ifd: float | None = None
    rationale: str | None = None  # synthetic: the teacher's recorded rationale
    kept: int | None = None


@dataclass
class StageSelection:
    allocation: StagePlan
    picks: list[Pick]
    runners_up: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)     # candidates scored per domain
    synth_short: dict[str, int] = field(default_factory=dict)  # synthetic examples still missing
    notes: list[str] = field(default_factory=list)
    pool: dict[str, list[dict]] = field(default_factory=dict, repr=False)  # the candidates it chose from

    def candidates_scored(self, cap: int) -> int:
        """How many head candidates an IFD scorer would score at this stage (the cap rule of select_stage)."""
        a = self.allocation
        sizes = {d: len(self.pool.get(d, [])) for d in a.quota}
        return sum(min(sizes[d], max(cap, a.real[d])) for d in a.quota if 0 < a.real[d] < sizes[d])


def _capped(items: list[dict], cap: int, rnd: random.Random | None = None) -> list[dict]:
    """At most ``cap`` candidates: all of them, or a seeded subsample kept in file order."""
    if len(items) <= cap:
        return items
    return sorted((rnd or random.Random(0)).sample(items, cap), key=lambda e: e["row"])


def _rank_key(score: float | None) -> float:
    return float("-inf") if score is None else float(score)


def select_stage(alloc: StagePlan, pool: dict[str, list[dict]], *, seed: int, use_ifd: bool,
                 scorer: Scorer | None, prompt_of: Callable[[dict], str], ifd_cap: int, fill: str | None,
                 synthetic: Callable[[str], list[dict]] | None = None,
                 earlier_real: dict[str, list[str]] | None = None, n_runners_up: int = 3,
                 inputs: Inputs | None = None) -> StageSelection:
    """Choose the examples of one stage.

    Pool entries need only ``id`` and ``row``; ``inputs(ids)`` supplies the texts of the candidates
    an IFD scorer ranks (entries that carry ``input`` themselves need none).
    ``synthetic(domain)`` returns usable (approved, unused) synthetic examples of a domain in a
    fixed order; ``earlier_real`` lists the real ids a domain got at earlier stages (duplicates
    repeat those too when the pool has run dry).
    """
    i = alloc.stage
    picks: list[Pick] = []
    sel = StageSelection(alloc, picks)
    by_ifd = use_ifd and i > 0 and scorer is not None
    if use_ifd and i > 0 and scorer is None:
        sel.notes.append("no student checkpoint given: head domains pick at random instead of by IFD")
    if i == 0 and use_ifd:
        sel.notes.append("stage 0: head domains pick at random — there is no student yet to score difficulty, "
                         "and a warm-up on natural data comes first (docs/method.md)")

    # Candidates of head domains to score (seeded subsample, capped per domain), scored in one batch.
    to_score: dict[str, list[dict]] = {}
    for d in alloc.quota:
        items = pool.get(d, [])
        k = alloc.real[d]
        if k == 0 or k >= len(items):
            continue
        if by_ifd:
            to_score[d] = _capped(items, max(ifd_cap, k), random.Random(f"{seed}:{i}:{d}:cap"))
    scores: dict[str, float | None] = {}
    if to_score:
        need = [e for d in sorted(to_score) for e in to_score[d]]
        texts = inputs([e["id"] for e in need if "input" not in e]) if inputs else {}
        batch = [dict(key=e["id"], prompt=prompt_of(e if "input" in e else {**e, "input": texts[e["id"]]}))
                 for e in need]
        scores = scorer(batch)
        sel.scored = {d: len(v) for d, v in to_score.items()}

    for d in alloc.quota:
        items = pool.get(d, [])
        k = alloc.real[d]
        kind = "head" if d in alloc.head else "tail_real"
        if k >= len(items):
            chosen = [(e, None) for e in items]
        elif d in to_score:
            ranked = sorted(to_score[d], key=lambda e: (-_rank_key(scores.get(e["id"])), e["row"]))
            chosen = [(e, scores.get(e["id"])) for e in ranked[:k]]
            sel.runners_up[d] = [(e["id"], scores.get(e["id"])) for e in ranked[k:k + n_runners_up]]
        else:
            rnd = random.Random(f"{seed}:{i}:{d}:pick")
            chosen = [(e, None) for e in sorted(rnd.sample(items, k), key=lambda e: e["row"])]
        picks.extend(Pick(e["id"], d, kind, s) for e, s in chosen)

        _fill_gap(sel, d, alloc.fill[d], fill, [e["id"] for e, _ in chosen], synthetic, earlier_real)
    return sel


def _fill_gap(sel: StageSelection, d: str, gap: int, fill: str | None, chosen: list[str],
              synthetic: Callable[[str], list[dict]] | None, earlier_real: dict[str, list[str]] | None) -> None:
    """Fill a tail domain's gap by the policy's rule: approved synthetic examples or duplicates."""
    if not gap:
        return
    i = sel.allocation.stage
    if fill == "synthesize":
        avail = synthetic(d) if synthetic else []
        for s in avail[:gap]:
            sel.picks.append(Pick(s["id"], d, "synthetic", rationale=s.get("rationale") or "", kept=1))
        if len(avail) < gap:
            sel.synth_short[d] = gap - len(avail)
    elif fill == "duplicate":
        sources = chosen + list((earlier_real or {}).get(d, []))
        if not sources:
            sel.notes.append(f"{d}: no real example to duplicate; its gap of {gap} stays unfilled")
            return
        for j in range(gap):
            sel.picks.append(Pick(f"{sources[j % len(sources)]}{DUP_SEP}{i}-{j}", d, "duplicate"))


def duplicate_source(example_id: str) -> str:
    """``'x#dup2-0'`` -> ``'x'``.

    >>> duplicate_source("math-1#dup2-0")
    'math-1'
    """
    return example_id.split(DUP_SEP, 1)[0]


