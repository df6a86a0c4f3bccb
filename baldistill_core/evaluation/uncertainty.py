"""Bootstrap confidence intervals of a run's scores and the paired difference of two runs.

Pure statistics over per-item outcomes (no database): an item is a dict with ``id``, ``domain``,
``gold``, ``correct`` and, where the metric needs them, ``pred_label`` (classification: the gold
label the prediction names, or None) and ``token_f1`` (free-text QA).

The scores are the ones ``evaluate.score_predictions`` reports for the dataset's primary metric
(``evaluate.primary_metric``): ``macro`` (mean over domains; for classification the mean per-label
F1, i.e. macro-F1), ``micro`` (over items; micro-F1 for classification), ``head`` and ``tail``
(mean per-domain score of each group).

Resampling: every bootstrap draw resamples the test items *within each domain* (a domain keeps its
size, so macro averages stay over the same domains), from ``numpy.random.default_rng(seed)``, so
the same seed gives the same interval. A paired comparison resamples the items both runs were
scored on with one set of draws for both runs, so what the two runs share cancels out; a run
compared with itself gives a difference of exactly 0 with a zero-width interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATS = ("macro", "micro", "head", "tail")
LABELS = {"macro": "macro", "micro": "micro", "head": "large-domain macro", "tail": "small-domain macro"}
# "large/small domains": the evaluation groups (halves by training size), not the per-stage head/tail of the loop.


@dataclass(frozen=True)
class Interval:
    """A score (fraction, 0..1) with its bootstrap interval."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def points(self) -> str:
        """``'0.512 [0.430, 0.601]'``."""
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


class _Arrays:
    """Items as arrays: domain index, correctness, per-item value, label indices."""

    def __init__(self, items: list[dict], metric: str):
        if not items:
            raise ValueError("no evaluated items: evaluate the run first (its per-item outcomes are kept since "
                             "issue 13; re-run `baldistill evaluate RUN` for an older run)")
        self.metric = metric
        self.ids = [str(e["id"]) for e in items]
        self.domains = sorted({e["domain"] for e in items})
        dpos = {d: i for i, d in enumerate(self.domains)}
        self.dom = np.array([dpos[e["domain"]] for e in items])
        self.onehot = np.zeros((len(items), len(self.domains)))
        self.onehot[np.arange(len(items)), self.dom] = 1.0
        self.correct = np.array([1.0 if e["correct"] else 0.0 for e in items])
        if metric == "token_f1":
            self.value = np.array([float(e.get("token_f1") or 0.0) for e in items])
        else:
            self.value = self.correct
        if metric == "f1":
            self.labels = sorted({str(e["gold"]) for e in items})
            lpos = {g: i for i, g in enumerate(self.labels)}
            gold = np.array([lpos[str(e["gold"])] for e in items])
            pred = np.array([lpos.get(str(e.get("pred_label")), -1) if e.get("pred_label") is not None else -1
                             for e in items])
            n, nl = len(items), len(self.labels)
            g1 = np.zeros((n, nl))
            g1[np.arange(n), gold] = 1.0
            p1 = np.zeros((n, nl))
            ok = pred >= 0
            p1[np.arange(n)[ok], pred[ok]] = 1.0
            self.tp_m = g1 * self.correct[:, None]
            self.fn_m = g1 * (1.0 - self.correct)[:, None]
            self.fp_m = p1 * (1.0 - self.correct)[:, None]
            self.has_pred_wrong = np.array([1.0 if (e.get("pred") is not None and not e["correct"]) else 0.0
                                            for e in items])
            # A domain's F1 is the F1 of the label named like it (one label per domain, as in R52),
            # else the domain's accuracy (as evaluate.score_predictions does).
            self.dom_label = [lpos.get(d, -1) for d in self.domains]

    def per_domain(self, w: np.ndarray) -> np.ndarray:
        """Per-domain scores, shape (draws, domains)."""
        tot = w @ self.onehot
        acc = (w * self.value) @ self.onehot / np.maximum(tot, 1e-12)
        if self.metric != "f1":
            return acc
        f1 = self.label_f1(w)
        out = acc.copy()
        for j, li in enumerate(self.dom_label):
            if li >= 0:
                out[:, j] = f1[:, li]
        return out

    def label_f1(self, w: np.ndarray) -> np.ndarray:
        tp, fn, fp = w @ self.tp_m, w @ self.fn_m, w @ self.fp_m
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)

    def stats(self, w: np.ndarray, head: list[str], tail: list[str]) -> dict[str, np.ndarray]:
        """Every score for each row of weights ``w`` (draws × items)."""
        pd = self.per_domain(w)
        n = w.sum(axis=1)
        if self.metric == "f1":
            tp = w @ self.correct
            fp = w @ self.has_pred_wrong
            fn = n - tp
            out = dict(macro=self.label_f1(w).mean(axis=1), micro=2 * tp / np.maximum(2 * tp + fp + fn, 1e-12))
        else:
            out = dict(macro=pd.mean(axis=1), micro=(w @ self.value) / n)
        for name, group in (("head", head), ("tail", tail)):
            cols = [i for i, d in enumerate(self.domains) if d in set(group)]
            if cols:
                out[name] = pd[:, cols].mean(axis=1)
        return out


def resample_weights(domain_index: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` × items counts: each draw resamples the items of every domain with replacement.

    >>> w = resample_weights(np.array([0, 0, 1]), 4, seed=0)
    >>> w.shape, [int(x) for x in w[:, :2].sum(axis=1)], [int(x) for x in w[:, 2]]
    ((4, 3), [2, 2, 2, 2], [1, 1, 1, 1])
    """
    rng = np.random.default_rng(seed)
    w = np.zeros((n_boot, len(domain_index)))
    for d in np.unique(domain_index):
        cols = np.flatnonzero(domain_index == d)
        w[:, cols] = rng.multinomial(len(cols), np.full(len(cols), 1.0 / len(cols)), size=n_boot)
    return w


def _interval(point: float, draws: np.ndarray, level: float) -> Interval:
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(float(point), float(lo), float(hi))


def point_scores(items: list[dict], metric: str, *, head=(), tail=()) -> dict[str, float]:
    """The scores themselves (no resampling), equal to ``score_predictions``'s."""
    a = _Arrays(items, metric)
    return {k: float(v[0]) for k, v in a.stats(np.ones((1, len(items))), list(head), list(tail)).items()}


def confidence_intervals(items: list[dict], metric: str, *, head=(), tail=(), n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95) -> dict[str, Interval]:
    """Percentile bootstrap intervals of every score of one run (keys of ``STATS`` that apply)."""
    a = _Arrays(items, metric)
    point = a.stats(np.ones((1, len(items))), list(head), list(tail))
    draws = a.stats(resample_weights(a.dom, n_boot, seed), list(head), list(tail))
    return {k: _interval(point[k][0], draws[k], level) for k in STATS if k in point}


def domain_intervals(items: list[dict], metric: str, *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Interval]:
    """Each domain's score with its bootstrap interval (a one-item domain has a zero-width one)."""
    a = _Arrays(items, metric)
    point = a.per_domain(np.ones((1, len(items))))[0]
    draws = a.per_domain(resample_weights(a.dom, n_boot, seed))
    return {d: _interval(point[j], draws[:, j], level) for j, d in enumerate(a.domains)}


@dataclass
class Paired:
    """Run A minus run B on their shared items."""

    shared: int
    only_a: int
    only_b: int
    diffs: dict[str, Interval]          # stat -> difference (fraction) with its interval
    per_domain: list[dict]              # {domain, n, a, b, diff, one_item}


def paired_difference(items_a: list[dict], items_b: list[dict], metric: str, *, head=(), tail=(),
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Paired:
    """Paired bootstrap of A − B over the items both runs were scored on (same draws for both)."""
    ids_a = {str(e["id"]): e for e in items_a}
    ids_b = {str(e["id"]): e for e in items_b}
    shared = sorted(set(ids_a) & set(ids_b))
    if not shared:
        raise ValueError("the two runs share no evaluated test item; compare runs scored on the same test "
                         "subset (same dataset, seed and eval.final_per_domain)")
    ea, eb = [ids_a[i] for i in shared], [ids_b[i] for i in shared]
    for x, y in zip(ea, eb):
        if x["domain"] != y["domain"]:
            raise ValueError(f"item {x['id']} has domain {x['domain']!r} in one run and {y['domain']!r} in the "
                             "other; the runs were scored on different datasets")
    A, B = _Arrays(ea, metric), _Arrays(eb, metric)
    head, tail = list(head), list(tail)
    ones = np.ones((1, len(shared)))
    pa, pb = A.stats(ones, head, tail), B.stats(ones, head, tail)
    w = resample_weights(A.dom, n_boot, seed)
    da, db = A.stats(w, head, tail), B.stats(w, head, tail)
    diffs = {k: _interval(pa[k][0] - pb[k][0], da[k] - db[k], level) for k in STATS if k in pa and k in pb}
    sa, sb = A.per_domain(ones)[0], B.per_domain(ones)[0]
    counts = ones[0] @ A.onehot
    rows = []
    for j, d in enumerate(A.domains):
        diff = float(sa[j] - sb[j])
        n = int(counts[j])
        # One item's outcome moves a domain's accuracy by 1/n: a difference that small is one item.
        rows.append(dict(domain=d, n=n, a=float(sa[j]), b=float(sb[j]), diff=diff,
                         group="large" if d in head else ("small" if d in tail else ""),  # domain size group
                         one_item=bool(diff != 0 and abs(diff) <= 1.0 / n + 1e-9)))
    return Paired(len(shared), len(ids_a) - len(shared), len(ids_b) - len(shared), diffs, rows)


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def verdict(name_a: str, name_b: str, stat: str, diff: Interval) -> str:
    """A plain sentence about ``A − B`` on ``stat``.

    >>> verdict("BalDistill-A", "Random FT CoT", "tail", Interval(0.061, 0.012, 0.110))
    'BalDistill-A is ahead of Random FT CoT on small-domain macro by +6.1 points [+1.2, +11.0]'
    >>> verdict("A", "B", "macro", Interval(0.01, -0.02, 0.04))
    'A and B are within noise on macro: +1.0 points [-2.0, +4.0]'
    """
    label = LABELS.get(stat, stat)
    ci = f"[{_pts(diff.low)}, {_pts(diff.high)}]"
    if diff.low > 0:
        return f"{name_a} is ahead of {name_b} on {label} by {_pts(diff.value)} points {ci}"
    if diff.high < 0:
        return f"{name_a} is behind {name_b} on {label} by {_pts(diff.value)} points {ci}"
    return f"{name_a} and {name_b} are within noise on {label}: {_pts(diff.value)} points {ci}"


def _shared(items_a: list[dict], items_b: list[dict]) -> tuple[list[dict], list[dict]]:
    ids_a = {str(e["id"]): e for e in items_a}
    ids_b = {str(e["id"]): e for e in items_b}
    shared = sorted(set(ids_a) & set(ids_b))
    return [ids_a[i] for i in shared], [ids_b[i] for i in shared]


def group_intervals(item_sets: list[list[dict]], metric: str, *, head=(), tail=(), n_boot: int = 1000,
                    seed: int = 0, level: float = 0.95) -> dict[str, Interval]:
    """Mean score over several runs (seeds) with a two-stage bootstrap: each draw resamples the
    runs, then the items within each domain of every run drawn. With one run it is that run's interval."""
    head, tail = list(head), list(tail)
    points, draws = [], []
    for k, items in enumerate(item_sets):
        a = _Arrays(items, metric)
        points.append(a.stats(np.ones((1, len(items))), head, tail))
        draws.append(a.stats(resample_weights(a.dom, n_boot, seed + 1 + k), head, tail))
    return _over_runs(points, draws, n_boot, seed, level)


def _over_runs(points: list[dict], draws: list[dict], n_boot: int, seed: int, level: float) -> dict[str, Interval]:
    r = len(points)
    pick = np.random.default_rng(seed).integers(0, r, size=(n_boot, r))
    out = {}
    for k in STATS:
        if all(k in p for p in points):
            d = np.stack([x[k] for x in draws], axis=1)
            out[k] = _interval(float(np.mean([p[k][0] for p in points])),
                               np.take_along_axis(d, pick, axis=1).mean(axis=1), level)
    return out


def group_paired(pairs: list[tuple[list[dict], list[dict]]], metric: str, *, head=(), tail=(), n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> dict[str, Interval]:
    """Mean of A − B over seed-matched pairs of runs (each pair on its shared items, with the same
    item draws for both), resampling the pairs as well: the sweep's 'is A better than B'."""
    head, tail = list(head), list(tail)
    points, draws = [], []
    for k, (ia, ib) in enumerate(pairs):
        ea, eb = _shared(ia, ib)
        if not ea:
            raise ValueError("a seed's two runs share no evaluated test item; they were scored on different subsets")
        A, B = _Arrays(ea, metric), _Arrays(eb, metric)
        ones = np.ones((1, len(ea)))
        pa, pb = A.stats(ones, head, tail), B.stats(ones, head, tail)
        w = resample_weights(A.dom, n_boot, seed + 1 + k)
        da, db = A.stats(w, head, tail), B.stats(w, head, tail)
        points.append({s: pa[s] - pb[s] for s in pa if s in pb})
        draws.append({s: da[s] - db[s] for s in da if s in db})
    return _over_runs(points, draws, n_boot, seed, level)
