"""Balancing policies: how many examples each domain gets at each stage (docs/method.md).

Pure functions over domain counts. Policies register by name; adding one touches this file only.
Rounding never loses or exceeds budget: the stage budgets sum to B, and a stage's quotas sum to
exactly its budget (largest remainder).
"""

from __future__ import annotations

from baldistill_core.errors import ConfigError, DataError

import math
from dataclasses import dataclass, field
from typing import Callable

QuotaFn = Callable[[dict[str, int], int, int, int], dict[str, float]]
POLICIES: dict[str, "Policy"] = {}


@dataclass(frozen=True)
class Policy:
    name: str
    label: str
    shares: QuotaFn  # (domain sizes, stage budget, stage index, K) -> real-valued quotas
    fill: str        # how a tail domain's gap is filled: synthesize | duplicate | redistribute
    help: str


def register(policy: Policy) -> Policy:
    POLICIES[policy.name] = policy
    return policy


def largest_remainder(weights: dict[str, float], total: int, *, tie_offset: int = 0) -> dict[str, int]:
    """Round real quotas to integers that sum to exactly ``total``.

    Ties between equal remainders rotate with ``tie_offset`` (the stage index), so over the stages
    of a naive policy the extra examples go round the domains instead of to the same ones.

    >>> largest_remainder({"a": 1.5, "b": 1.5, "c": 1.0}, 4)
    {'a': 2, 'b': 1, 'c': 1}
    >>> largest_remainder({"a": 1.5, "b": 1.5, "c": 1.0}, 4, tie_offset=1)
    {'a': 1, 'b': 2, 'c': 1}
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    names = sorted(weights)
    if not names:
        return {}
    s = sum(weights.values())
    scaled = {d: (weights[d] * total / s if s > 0 else total / len(names)) for d in names}
    floors = {d: int(math.floor(scaled[d] + 1e-9)) for d in names}
    left = total - sum(floors.values())
    n = len(names)
    order = sorted(
        range(n), key=lambda i: (-round(scaled[names[i]] - floors[names[i]], 9), (i - tie_offset) % n)
    )
    for i in order[:left]:
        floors[names[i]] += 1
    return floors


def stage_budgets(budget: int, stages: int) -> list[int]:
    """Split B over K stages: B/K each, the remainder to the earliest stages.

    >>> stage_budgets(10, 3)
    [4, 3, 3]
    """
    if stages < 1:
        raise ConfigError("the number of stages K must be at least 1; set K to 1 or more")
    if budget < stages:
        raise ConfigError(
            f"budget B={budget} is smaller than the number of stages K={stages}: every stage needs at least "
            f"one example; lower K or raise B"
        )
    base, extra = divmod(budget, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]


def _natural(sizes, stage_budget, i, k):
    n = sum(sizes.values())
    return {d: sizes[d] / n * stage_budget for d in sizes}


def _equal(sizes, stage_budget, i, k):
    return {d: stage_budget / len(sizes) for d in sizes}


def _adaptive(sizes, stage_budget, i, k):
    # quota_d(i) = (n_d/N)(B/K)(K-i)/K + (B/(K l)) i/K
    n, l = sum(sizes.values()), len(sizes)
    return {d: sizes[d] / n * stage_budget * (k - i) / k + stage_budget / l * i / k for d in sizes}


register(Policy("random", "Random (natural distribution)", _natural, "redistribute",
                "No balancing: each stage samples from the pool in proportion to domain sizes."))
register(Policy("naive", "Equal per domain", _equal, "synthesize",
                "Every domain gets B/(K·l) per stage; tail gaps are filled by teacher synthesis."))
register(Policy("adaptive", "Natural → balanced", _adaptive, "synthesize",
                "Stage 0 follows the natural distribution and moves linearly toward equal counts."))
register(Policy("duplicate", "Duplicate (balance by repetition)", _equal, "duplicate",
                "Equal per domain like naive, but tail gaps are filled by repeating real tail inputs."))


def quotas(policy: str, sizes: dict[str, int], budget: int, stages: int, stage: int) -> dict[str, int]:
    """Integer quota per domain at ``stage`` (sizes = the original domain sizes n_d)."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    if not sizes or sum(sizes.values()) == 0:
        raise DataError("no domains with examples: load a dataset with at least one training example")
    if not 0 <= stage < stages:
        raise ConfigError(f"stage {stage} is outside 0..{stages - 1}; pick a stage in that range or raise K")
    sb = stage_budgets(budget, stages)[stage]
    real = POLICIES[policy].shares(sizes, sb, stage, stages)
    return largest_remainder(real, sb, tie_offset=stage)


@dataclass
class StagePlan:
    stage: int
    budget: int
    quota: dict[str, int]
    pool_before: dict[str, int]
    real: dict[str, int]          # real examples picked per domain
    fill: dict[str, int]          # synthetic (or duplicated) examples per domain
    head: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    def role(self, domain: str) -> str:
        """head | tail | none: a domain with quota 0 at this stage is neither (nothing is picked from it).

        >>> p = StagePlan(0, 1, {"a": 1, "b": 0}, {"a": 5, "b": 5}, {"a": 1, "b": 0}, {"a": 0, "b": 0}, ["a", "b"])
        >>> p.role("a"), p.role("b")
        ('head', 'none')
        """
        if self.quota.get(domain, 0) == 0:
            return "none"
        return "tail" if domain in self.tail else "head"

    def as_dict(self) -> dict[str, dict]:
        """{domain: {quota, pool, real, fill, role}} — the form stored with a run's stage."""
        return {d: dict(quota=self.quota[d], pool=self.pool_before[d], real=self.real[d], fill=self.fill[d],
                        role=self.role(d)) for d in self.quota}

    def as_rows(self) -> list[dict]:
        return [dict(stage=self.stage, domain=d, **row) for d, row in self.as_dict().items()]


def allocate_stage(policy: str, sizes: dict[str, int], pool: dict[str, int], budget: int, stages: int, stage: int,
                   *, fill: str | None = None, pool_total: int | None = None) -> StagePlan:
    """One stage of the loop's bookkeeping: quotas (from the original ``sizes``), head/tail (from the
    remaining ``pool``), the real picks and the gap to fill.

    A domain is head when its remaining pool covers its quota. ``fill`` overrides the policy's way of
    covering a tail gap: ``synthesize`` or ``duplicate`` keep the quota; with ``redistribute`` (no
    synthesis) the gap goes to domains with spare pool, so the stage still spends its whole budget.
    """
    fill = fill or POLICIES[policy].fill
    q = quotas(policy, sizes, budget, stages, stage)
    pool = {d: pool.get(d, 0) for d in q}
    head = [d for d in q if pool[d] >= q[d]]
    tail = [d for d in q if pool[d] < q[d]]
    real = {d: min(q[d], pool[d]) for d in q}
    gap = {d: q[d] - real[d] for d in q}
    if fill == "redistribute" and sum(gap.values()):
        missing = sum(gap.values())
        spare = {d: pool[d] - real[d] for d in q if pool[d] > real[d]}
        if sum(spare.values()) < missing:
            limit = f" to at most {pool_total}" if pool_total is not None else ""
            raise ConfigError(
                f"stage {stage}: the pool has {sum(pool.values())} examples left but the stage needs "
                f"{sum(q.values())}, and the {POLICIES[policy].label.lower()} policy cannot synthesize; lower the "
                f"budget{limit} or use a method that synthesizes tail examples ({synthesizing_methods()})"
            )
        while missing:
            extra = largest_remainder(spare, missing, tie_offset=stage)
            for d, e in extra.items():
                take = min(e, spare[d])
                real[d] += take
                spare[d] -= take
                missing -= take
            spare = {d: n for d, n in spare.items() if n > 0}
        q = dict(real)  # the effective quota once the gap moved
        gap = {d: 0 for d in q}
    return StagePlan(stage, sum(q.values()), q, pool, real, gap, head, tail)


# Filled in by ``selection.methods`` (which builds on this module): the synthesizing methods by label,
# for the pool-too-small message. A hook, so that this module never imports the method registry.
synthesizing_methods: Callable[[], str] = lambda: "baldistill_n, baldistill_a"


def plan(policy: str, sizes: dict[str, int], budget: int, stages: int, *, fill: str | None = None) -> list[StagePlan]:
    """Simulate every stage on the full pool: picked items leave it, so head domains can turn tail."""
    pool = dict(sizes)
    out = []
    for i in range(stages):
        p = allocate_stage(policy, sizes, pool, budget, stages, i, fill=fill, pool_total=sum(sizes.values()))
        for d, n in p.real.items():
            pool[d] -= n
        out.append(p)
    return out
