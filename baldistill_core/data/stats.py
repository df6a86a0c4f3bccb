"""Domain statistics of a long-tailed dataset: shares, imbalance, Gini, Zipf exponent."""

from __future__ import annotations

from baldistill_core.errors import DataError

import math
from dataclasses import dataclass


@dataclass
class DomainStats:
    counts: dict[str, int]          # sorted by count, descending
    shares: dict[str, float]
    total: int
    n_domains: int
    imbalance_ratio: float          # largest / smallest domain
    gini: float
    zipf_exponent: float | None     # s in count ~ rank^-s (least squares on log-log)

    def table(self) -> list[dict]:
        return [
            dict(rank=i + 1, domain=d, count=n, share=self.shares[d])
            for i, (d, n) in enumerate(self.counts.items())
        ]


def gini(values: list[int] | list[float]) -> float:
    """Gini coefficient of non-negative values (0 = all equal, → 1 = one holds all).

    >>> gini([5, 5, 5, 5])
    0.0
    >>> round(gini([0, 0, 0, 10]), 4)
    0.75
    """
    xs = sorted(float(v) for v in values)
    n, s = len(xs), sum(xs)
    if n == 0 or s == 0:
        return 0.0
    cum = sum((i + 1) * x for i, x in enumerate(xs))
    return (2 * cum) / (n * s) - (n + 1) / n


def zipf_exponent(counts: list[int]) -> float | None:
    """Least-squares slope s of log(count) = c - s·log(rank), counts sorted descending.

    >>> round(zipf_exponent([int(1000 / r ** 1.1) for r in range(1, 30)]), 1)
    1.1
    """
    ys = [c for c in sorted(counts, reverse=True) if c > 0]
    if len(ys) < 2:
        return None
    lx = [math.log(r) for r in range(1, len(ys) + 1)]
    ly = [math.log(c) for c in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    sxy = sum((x - mx) * (y - my) for x, y in zip(lx, ly))
    return -sxy / sxx


def domain_stats(counts: dict[str, int]) -> DomainStats:
    if not counts:
        raise DataError("no domains: the dataset has no training examples; import a train file with at least one row")
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(ordered.values())
    vals = list(ordered.values())
    return DomainStats(
        counts=ordered,
        shares={d: n / total for d, n in ordered.items()},
        total=total,
        n_domains=len(ordered),
        imbalance_ratio=vals[0] / vals[-1] if vals[-1] else math.inf,
        gini=gini(vals),
        zipf_exponent=zipf_exponent(vals),
    )
