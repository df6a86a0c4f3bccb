"""Per-domain evaluation of a student: accuracy, F1, token-F1; macro, micro, head and tail groups.

Scores (docs/method.md "Evaluation"): every domain gets its accuracy of the extracted final answer
(``answers.extract_answer`` + ``answers.is_correct``); classification adds per-label F1 and
macro/micro F1; free-text QA adds word-level token F1. ``_macro`` is the unweighted mean over
domains, ``_micro`` is over examples. ``_head`` / ``_tail`` average the per-domain scores of the
head group (training-pool size above the median domain size) and the tail group (at or below the
median) — a fixed split of the dataset, so every method is grouped the same way.
"""

from __future__ import annotations

from baldistill_core.errors import DataError

import random
import statistics
from dataclasses import dataclass, field

from baldistill_core import store
from baldistill_core.task import answers


def primary_metric(task_type: str) -> str:
    """The metric a method comparison ranks by (the paper: maF1 for classification, accuracy else)."""
    return {"classification": "f1", "qa": "token_f1"}.get(task_type, "accuracy")


def eval_subset(conn, dataset: str, per_domain: int | None, *, seed: int = 0, split: str = "test") -> list[dict]:
    """A fixed stratified subset: up to ``per_domain`` examples of every domain (all if None).

    The draw depends only on (seed, domain), so every stage and every method of a comparison
    sees exactly the same examples.
    """
    items = store.examples(conn, dataset, split)
    if not items:
        raise DataError(
            f"dataset {dataset!r} has no {split} split to evaluate on; re-import it with a test file (--test-path)"
        )
    by_domain: dict[str, list[dict]] = {}
    for e in items:
        by_domain.setdefault(e["domain"], []).append(e)
    out = []
    for d in sorted(by_domain):
        rows = by_domain[d]
        if per_domain is not None and len(rows) > per_domain:
            rows = random.Random(f"{seed}:eval:{d}").sample(rows, per_domain)
            rows.sort(key=lambda e: e["row"])
        out.extend(rows)
    return out


# The evaluation's two size groups. They are stored under the metric keys ``_head`` / ``_tail`` (kept for
# the databases already written) but are shown as "large domains" / "small domains": the method's head and
# tail are a different thing, decided per stage by whether a domain's remaining pool covers its quota.
GROUP_NAMES = {"_macro": "macro", "_micro": "micro", "_head": "large domains", "_tail": "small domains"}
SIZE_GROUPS_HELP = ("Large domains = the half of the domains with the most training examples (above the median "
                    "domain size); small domains = the rest. These fixed groups are not the method's head and "
                    "tail, which are decided per stage by whether a domain's remaining pool covers its quota.")


def group_name(key: str) -> str:
    """The display name of a stored group key (``_tail`` -> 'small domains'); a domain name stays as it is.

    >>> group_name("_tail"), group_name("Algebra")
    ('small domains', 'Algebra')
    """
    return GROUP_NAMES.get(key, key)


def head_tail_groups(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """(large, small) size groups: large = domains whose training-pool size is above the median domain
    size; small = the rest (stored as ``_head`` / ``_tail``, shown by ``group_name``).

    >>> head_tail_groups({"a": 10, "b": 5, "c": 1})
    (['a'], ['b', 'c'])
    """
    if not sizes:
        return [], []
    med = statistics.median(sizes.values())
    head = sorted(d for d, n in sizes.items() if n > med)
    tail = sorted(d for d, n in sizes.items() if n <= med)
    return head, tail


@dataclass
class EvalReport:
    task_type: str
    per_domain: dict[str, dict[str, float]]            # domain -> {n, accuracy, [f1], [token_f1]}
    overall: dict[str, dict[str, float]]               # _macro/_micro/_head/_tail -> {metric: value}
    predictions: list[dict] = field(default_factory=list)

    @property
    def primary(self) -> str:
        return primary_metric(self.task_type)

    def score(self, group: str = "_macro", metric: str | None = None) -> float | None:
        return self.overall.get(group, {}).get(metric or self.primary)

    def rows(self) -> list[tuple[str, str, float]]:
        """``(domain, metric, value)`` rows for the metrics table."""
        out = []
        for d, ms in list(self.per_domain.items()) + list(self.overall.items()):
            out.extend((d, m, v) for m, v in ms.items() if v is not None)
        return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def score_predictions(items: list[dict], outputs: list[str], task_type: str, *, labels: list[str] | None = None,
                      sizes: dict[str, int] | None = None) -> EvalReport:
    """Score the student's raw ``outputs`` for ``items`` (dicts with domain and answer).

    ``sizes`` (training-pool size per domain) decides the head/tail groups; without it they are
    left out.
    """
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    preds = []
    for e, out in zip(items, outputs):
        pred = answers.extract_answer(out, task_type, labels)
        ok = answers.is_correct(pred, e["answer"], task_type) if pred is not None else False
        row = dict(id=e["id"], domain=e["domain"], gold=e["answer"], pred=pred, correct=bool(ok), output=out)
        if task_type == "qa":
            row["token_f1"] = answers.token_f1(pred or "", e["answer"])
        preds.append(row)

    if task_type == "classification":
        # The gold label a prediction names (None: no label of this set), kept per item so the
        # bootstrap (evaluation.uncertainty) can recount per-label F1 without the parser.
        golds = sorted({p["gold"] for p in preds})
        for p in preds:
            p["pred_label"] = next((g for g in golds if p["pred"] is not None
                                    and answers.is_correct(p["pred"], g, "classification")), None)
    domains = sorted({p["domain"] for p in preds})
    per_domain: dict[str, dict[str, float]] = {}
    for d in domains:
        ps = [p for p in preds if p["domain"] == d]
        m = dict(n=float(len(ps)), accuracy=sum(p["correct"] for p in ps) / len(ps))
        if task_type == "qa":
            m["token_f1"] = _mean(p["token_f1"] for p in ps)
        per_domain[d] = m

    overall: dict[str, dict[str, float]] = {}
    n_all = len(preds)
    overall["_micro"] = dict(n=float(n_all), accuracy=sum(p["correct"] for p in preds) / n_all if n_all else 0.0)
    overall["_macro"] = dict(n=float(n_all), accuracy=_mean(m["accuracy"] for m in per_domain.values()))
    if task_type == "qa":
        overall["_micro"]["token_f1"] = _mean(p["token_f1"] for p in preds)
        overall["_macro"]["token_f1"] = _mean(m["token_f1"] for m in per_domain.values())
    if task_type == "classification":
        label_f1 = _label_f1(preds)
        # A domain of a classification dataset is usually one label (R52); its F1 is that label's.
        for d in domains:
            per_domain[d]["f1"] = label_f1.get(d, per_domain[d]["accuracy"])
        overall["_macro"]["f1"] = _mean(label_f1[g] for g in sorted({p["gold"] for p in preds}))
        tp = sum(p["correct"] for p in preds)
        fp = sum(1 for p in preds if p["pred"] is not None and not p["correct"])
        fn = n_all - tp
        overall["_micro"]["f1"] = 2 * tp / (2 * tp + fp + fn) if n_all else 0.0
    if sizes:
        head, tail = head_tail_groups({d: sizes.get(d, 0) for d in set(sizes) | set(domains)})
        for name, group in (("_head", head), ("_tail", tail)):
            present = [d for d in group if d in per_domain]
            if present:
                overall[name] = {k: _mean(per_domain[d].get(k) for d in present)
                                 for k in per_domain[present[0]] if k != "n"}
                overall[name]["n"] = float(len(present))
    return EvalReport(task_type, per_domain, overall, preds)


def _label_f1(preds: list[dict]) -> dict[str, float]:
    """Per-label F1 over gold labels, counting a prediction outside the label set as a miss."""
    golds = {p["gold"] for p in preds}
    out = {}
    for g in golds:
        tp = sum(1 for p in preds if p["gold"] == g and p["correct"])
        fp = sum(1 for p in preds if p["pred"] is not None and not p["correct"]
                 and answers.is_correct(p["pred"], g, "classification"))
        fn = sum(1 for p in preds if p["gold"] == g and not p["correct"])
        out[g] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return out


def evaluate_model(model, tokenizer, items: list[dict], view, *, labels: list[str] | None = None,
                   sizes: dict[str, int] | None = None, max_new_tokens: int = 128, batch_size: int = 8) -> EvalReport:
    """Generate greedily with the student on ``view``'s prompts of ``items`` and score the answers.

    ``view`` is the run's :class:`~baldistill_core.task.view.StudentView` (the input clip and the
    prompt template the student trained on).
    """
    from baldistill_core.student.engines import HFEngine

    return evaluate_with(HFEngine(model, tokenizer), items, view, labels=labels, sizes=sizes,
                         max_new_tokens=max_new_tokens, batch_size=batch_size)


def evaluate_with(engine, items: list[dict], view, *, labels: list[str] | None = None,
                  sizes: dict[str, int] | None = None, max_new_tokens: int = 128, batch_size: int = 8) -> EvalReport:
    """``evaluate_model`` with any ``student.engines`` engine (HF or vLLM) doing the greedy generation."""
    prompts = view.prompts(items)
    outs = engine.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    report = score_predictions(items, outs, view.task_type, labels=labels, sizes=sizes)
    for row, prompt in zip(report.predictions, prompts):
        row["prompt"] = prompt  # what the student saw (its clipped input), kept with its prediction
    return report
