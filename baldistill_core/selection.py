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

from . import policy as policy_mod
from . import store
from .config import METHODS, RunConfig

Scorer = Callable[[list[dict]], dict[str, float | None]]  # [{key, prompt}] -> {key: ifd score}
REAL_KINDS = ("head", "tail_real")
DUP_SEP = "#dup"


def method_info(cfg: RunConfig) -> dict:
    """The method's row of ``config.METHODS`` plus the policy's way of filling a tail gap."""
    m = dict(METHODS[cfg.method])
    m.setdefault("single_stage", False)
    if m["policy"]:
        m["fill"] = policy_mod.POLICIES[m["policy"]].fill
        if m["fill"] == "synthesize" and not m["synth"]:
            m["fill"] = "redistribute"
    else:
        m["fill"] = None
    return m


def effective_stages(cfg: RunConfig) -> int:
    """K for this method: one-stage baselines spend the whole budget at once; zero-shot has none."""
    m = METHODS[cfg.method]
    if not m.get("train", True):
        return 0
    return 1 if m.get("single_stage") else cfg.stages


def domain_sizes(conn, dataset: str) -> dict[str, int]:
    """Original training-pool size n_d per domain (the natural distribution)."""
    return store.domain_counts(conn, dataset, "train")


def candidate_pool(conn, dataset: str, keep: Callable[[dict], bool] | None = None) -> dict[str, list[dict]]:
    """Real training inputs per domain (ordered by file row), optionally filtered by ``keep``.

    The pipeline passes ``teacher.can_annotate`` for a recorded teacher: recorded rationales exist
    for only part of the training inputs, so the demo restricts the pool to those.
    """
    out: dict[str, list[dict]] = {d: [] for d in domain_sizes(conn, dataset)}
    for e in store.examples(conn, dataset, "train"):
        if keep is None or keep(e):
            out[e["domain"]].append(e)
    return out


def picked_ids(conn, run_id: str, before_stage: int) -> set[str]:
    return {r["example_id"] for r in store.rows(
        conn, f"SELECT example_id FROM selections WHERE run_id = ? AND stage < ? AND kind IN {REAL_KINDS}",
        (run_id, before_stage))}


def remaining(pool: dict[str, list[dict]], taken: set[str]) -> dict[str, list[dict]]:
    return {d: [e for e in items if e["id"] not in taken] for d, items in pool.items()}


Allocation = policy_mod.StagePlan  # one stage's quotas, head/tail, real picks and gap


def allocate(policy: str, fill: str, sizes: dict[str, int], pool: dict[str, int], budget: int, stages: int,
             stage: int) -> Allocation:
    """Quota per domain (from the original sizes), head/tail (from the remaining pool), real picks
    and the gap to fill — ``policy.allocate_stage``, the one place that decides it."""
    return policy_mod.allocate_stage(policy, sizes, pool, budget, stages, stage, fill=fill)


def check_budget(cfg: RunConfig, pool_size: int) -> None:
    """A method that cannot synthesize or duplicate must fit its whole budget in the real pool."""
    m = method_info(cfg)
    if m["train"] and m["fill"] == "redistribute" and cfg.budget > pool_size:
        raise ValueError(
            f"budget B={cfg.budget} is larger than the pool of {pool_size} real training examples the teacher "
            f"can annotate, and method {cfg.method!r} cannot synthesize tail data; lower the budget to at most "
            f"{pool_size} or use a synthesizing method (baldistill_n, baldistill_a)"
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
    allocation: Allocation
    picks: list[Pick]
    runners_up: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)     # candidates scored per domain
    synth_short: dict[str, int] = field(default_factory=dict)  # synthetic examples still missing
    notes: list[str] = field(default_factory=list)


def _rank_key(score: float | None) -> float:
    return float("-inf") if score is None else float(score)


def select_stage(alloc: Allocation, pool: dict[str, list[dict]], *, seed: int, use_ifd: bool,
                 scorer: Scorer | None, prompt_of: Callable[[dict], str], ifd_cap: int, fill: str | None,
                 synthetic: Callable[[str], list[dict]] | None = None,
                 earlier_real: dict[str, list[str]] | None = None, n_runners_up: int = 3) -> StageSelection:
    """Choose the examples of one stage.

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
                         "and a warm-up on natural data comes first (ALGORITHM.md)")

    # Candidates of head domains to score (seeded subsample, capped per domain), scored in one batch.
    to_score: dict[str, list[dict]] = {}
    for d in alloc.quota:
        items = pool.get(d, [])
        k = alloc.real[d]
        if k == 0 or k >= len(items):
            continue
        if by_ifd:
            cap = max(ifd_cap, k)
            cand = items if len(items) <= cap else sorted(
                random.Random(f"{seed}:{i}:{d}:cap").sample(items, cap), key=lambda e: e["row"])
            to_score[d] = cand
    scores: dict[str, float | None] = {}
    if to_score:
        batch = [dict(key=e["id"], prompt=prompt_of(e)) for d in sorted(to_score) for e in to_score[d]]
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

        gap = alloc.fill[d]
        if not gap:
            continue
        if fill == "synthesize":
            avail = synthetic(d) if synthetic else []
            for s in avail[:gap]:
                picks.append(Pick(s["id"], d, "synthetic", rationale=s.get("rationale") or "", kept=1))
            if len(avail) < gap:
                sel.synth_short[d] = gap - len(avail)
        elif fill == "duplicate":
            sources = [e["id"] for e, _ in chosen] + list((earlier_real or {}).get(d, []))
            if not sources:
                sel.notes.append(f"{d}: no real example to duplicate; its gap of {gap} stays unfilled")
                continue
            for j in range(gap):
                src = sources[j % len(sources)]
                picks.append(Pick(f"{src}{DUP_SEP}{i}-{j}", d, "duplicate"))
    return sel


def duplicate_source(example_id: str) -> str:
    """``'x#dup2-0'`` -> ``'x'``.

    >>> duplicate_source("math-1#dup2-0")
    'math-1'
    """
    return example_id.split(DUP_SEP, 1)[0]


def save_selection(conn, run_id: str, sel: StageSelection) -> None:
    """Write the stage's picks (replacing any earlier attempt of the same stage)."""
    i = sel.allocation.stage
    conn.execute("DELETE FROM selections WHERE run_id = ? AND stage = ?", (run_id, i))
    conn.executemany(
        "INSERT INTO selections(run_id, stage, example_id, domain, kind, ifd, kept, rationale)"
        " VALUES (?,?,?,?,?,?,?,?)",
        [(run_id, i, p.example_id, p.domain, p.kind, p.ifd, p.kept, p.rationale) for p in sel.picks],
    )


_KIND_ORDER = {"head": 0, "tail_real": 1, "synthetic": 2, "duplicate": 3}


def training_rows(conn, run_id: str, dataset: str, upto_stage: int) -> list[dict]:
    """The kept training data of stages 0..upto_stage in a fixed order, with inputs and answers.

    Returns dicts ``{example_id, stage, kind, domain, input, answer, rationale}``.
    """
    sels = store.rows(
        conn, "SELECT stage, example_id, domain, kind, rationale FROM selections"
              " WHERE run_id = ? AND stage <= ? AND kept = 1", (run_id, upto_stage))
    sels.sort(key=lambda r: (r["stage"], _KIND_ORDER.get(r["kind"], 9), r["example_id"]))
    real_ids = sorted({duplicate_source(r["example_id"]) for r in sels if r["kind"] != "synthetic"})
    real = {e["id"]: e for e in (store.examples(conn, dataset, "train", ids=real_ids) if real_ids else [])}
    syn_ids = [r["example_id"] for r in sels if r["kind"] == "synthetic"]
    syn = {}
    if syn_ids:
        syn = {r["id"]: r for r in store.rows(
            conn, f"SELECT id, input, answer FROM synthetic WHERE id IN ({','.join('?' * len(syn_ids))})", syn_ids)}
    out = []
    for r in sels:
        src = syn.get(r["example_id"]) if r["kind"] == "synthetic" else real.get(duplicate_source(r["example_id"]))
        if src is None:
            continue
        out.append(dict(example_id=r["example_id"], stage=r["stage"], kind=r["kind"], domain=r["domain"],
                        input=src["input"], answer=src["answer"], rationale=r["rationale"] or ""))
    return out
