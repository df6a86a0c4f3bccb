"""Before a run: how many teacher calls and tokens, what it costs, and how long it takes on this machine.

:func:`estimate_run` replays the run's stage plan (``runs.stage.plan_stage``, random picks: the
counts equal the run's, the picked examples may differ under IFD) and, per stage and step
(selection, IFD scoring, annotation, synthesis, verification, training, evaluation), counts

* teacher calls and input tokens on the real prompts the run would send (``teacher.prompts``,
  counted like the ledger does), and output tokens from this dataset's cached or recorded replies,
  else past replies in the ledger, else a stated default per task type;
* the teacher cost from the price table (``teacher.prices``) — ``None`` when the price is unknown;
* the wall time from this machine's measured throughputs (``runs.throughput``; a short probe when
  none are stored), and student tokens on the prompts of ``task.view.StudentView``.

Every figure says its source. The guard (:func:`guard`) asks for a confirmation above
``confirm_above_minutes`` or the cost cap and refuses above ``teacher.hard_cost_cap_usd``; the
launch stores the estimate in the run folder (``runs.actuals`` compares it with what happened).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from baldistill_core.errors import BalDistillError, ConfigError
from baldistill_core.evaluation import evaluate
from baldistill_core.runs import throughput
from baldistill_core.runs.context import RunContext, tokenizer_loader
from baldistill_core.runs.estimate_teacher import (full_examples, DEFAULT_OUT_TOKENS, StepEstimate, _annotation, _synthesis,
                                                  _weighted_picks)
from baldistill_core.runs.stage import StageHistory, plan_stage
from baldistill_core.teacher import prices

STEPS = ("startup", "selection", "ifd scoring", "annotation", "synthesis", "verification", "training", "evaluation")
KNOWN_RESULTS = Path(__file__).resolve().parents[2] / "assets" / "known_results.yaml"
ESTIMATE_FILE, PRICES_FILE = "estimate.json", "prices.yaml"


class CostRefused(ConfigError):
    """The estimated teacher cost is above the hard cap: the run is not started."""


class NeedsConfirmation(ConfigError):
    """The run is long or costly: launch again with a confirmation (--yes, or the UI's checkbox)."""


@dataclass
class Estimate:
    steps: list[StepEstimate]
    price: dict
    sources: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    probe: dict | None = None
    made_at: float = field(default_factory=time.time)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.steps)

    @property
    def tokens(self) -> tuple[int, int]:
        return sum(s.tokens_in for s in self.steps), sum(s.tokens_out for s in self.steps)

    @property
    def cost_usd(self) -> float | None:
        """Total teacher cost; None when a step with paid calls has an unknown price."""
        if any(s.cost_usd is None for s in self.steps):
            return None
        return round(sum(s.cost_usd for s in self.steps), 8)

    def to_json(self) -> dict:
        return {**asdict(self), "total": {"seconds": self.seconds, "calls": self.calls, "tokens_in": self.tokens[0],
                                          "tokens_out": self.tokens[1], "cost_usd": self.cost_usd}}

    def repeated(self, n: int) -> "Estimate":
        """The estimate of ``n`` runs like this one, one after another (a seed sweep): every step's
        time, calls, tokens and cost times ``n``. An upper bound on the teacher side: answers another
        seed asks again come from the teacher cache."""
        if n <= 1:
            return self
        steps = [StepEstimate(**{**asdict(s), "calls": s.calls * n, "tokens_in": s.tokens_in * n,
                                 "tokens_out": s.tokens_out * n, "seconds": s.seconds * n, "units": s.units * n,
                                 "cost_usd": None if s.cost_usd is None else s.cost_usd * n}) for s in self.steps]
        return Estimate(steps, self.price, self.sources,
                        [*self.warnings, f"{n} runs one after another (a seed sweep): {n}x one run's estimate"],
                        self.probe, self.made_at)

    @classmethod
    def from_json(cls, d: dict) -> "Estimate":
        d = {k: v for k, v in d.items() if k != "total"}
        return cls(**{**d, "steps": [StepEstimate(**s) for s in d["steps"]]})


def known_zero(cfg) -> str | None:
    """Why this dataset + student pair is known to score 0 at this scale (assets/known_results.yaml)."""
    rows = yaml.safe_load(KNOWN_RESULTS.read_text(encoding="utf-8")) or []
    for r in rows:
        if r["dataset"] == cfg.dataset and r["student"] == cfg.student.model:
            return f"{cfg.dataset} with student {cfg.student.model} is known to score 0 at this scale: {r['why']}"
    return None


# ---------------------------------------------------------------- student side


def _train_tokens(tok, view, pairs: list[tuple[dict, str | None, float]], cot: bool, max_len: int,
                  default_out: int) -> float:
    """Tokens one epoch feeds (prompt + completion + EOS, cut at max_seq_len), as TRL counts them."""
    total = 0.0
    for ex, text, w in pairs:
        p = len(tok(view.prompt(ex))["input_ids"])
        if text is None and cot:
            c = default_out + len(tok(view.completion("", ex["answer"]), add_special_tokens=False)["input_ids"])
        else:
            c = len(tok(view.completion(text or "", ex["answer"], cot=cot), add_special_tokens=False)["input_ids"])
        total += w * min(p + c + 1, max_len)
    return total


def _kept(ctx, ex: dict, text: str | None) -> bool:
    """Would the teacher filter keep this rationale? (unknown replies are assumed kept)."""
    if text is None or not ctx.method.cot:
        return True
    from baldistill_core.task.answers import extract_answer, is_correct

    return bool(is_correct(extract_answer(text, ctx.spec.task_type, ctx.labels), ex["answer"], ctx.spec.task_type))


def _eval_step(ctx, stage: int, per_domain: int | None, fig: dict, *, loads: int = 1) -> tuple[StepEstimate, tuple]:
    items = evaluate.eval_subset(ctx.conn, ctx.cfg.dataset, per_domain, seed=ctx.cfg.seed)
    units = len(items) * ctx.cfg.student.max_new_tokens
    secs = loads * fig["load_s"][0] + units / fig["gen_tok_s"][0]
    return StepEstimate(stage, "evaluation", units=units, seconds=secs, note=f"{len(items)} items"), \
        tuple(e["id"] for e in items)


# ---------------------------------------------------------------- the estimate


def figures_for(ctx, *, probe: bool, budget_s: float) -> tuple[dict, dict | None]:
    """This machine's throughputs for the run's student, probing first when none are stored."""
    cfg = ctx.cfg
    done = None
    if probe and throughput.missing(cfg.student.model):
        pool = ctx.pool()
        gen_batch = min(8, cfg.ifd.batch_size)  # evaluation and IFD decode in batches of ifd.batch_size
        sample = full_examples(ctx, [e for d in sorted(pool) for e in pool[d][:1]][:gen_batch])
        try:
            done = throughput.probe(cfg.student.model, cfg.student, ctx.view.prompts(sample), budget_s=budget_s,
                                    gen_batch=gen_batch)
        except Exception as e:  # a student that does not load here: the run would fail too; say why
            done = {"figures": {}, "seconds": 0.0, "skipped": [f"probe failed: {type(e).__name__}: {e}"]}
    t = cfg.teacher
    return throughput.figures(cfg.student.model, (t.backend, t.model, t.concurrency)), done


def estimate_run(conn, cfg, *, ws_root=None, probe: bool = True, tokenizer=None,
                 probe_budget_s: float = throughput.PROBE_BUDGET_S) -> Estimate:
    """The estimate of ``cfg`` in this workspace and on this machine (see the module docstring)."""
    table = prices.load_table(prices.workspace_table(ws_root))
    price = prices.price_for(cfg.teacher, table)
    # the tokenizer first: on a new machine it builds the built-in model, which the probe then measures
    tok = tokenizer or tokenizer_loader(cfg.student.model)()
    ctx = RunContext.build(conn, cfg, tokenizer=tok)
    fig, probed = figures_for(ctx, probe=probe, budget_s=probe_budget_s)
    t = cfg.teacher
    per_call = fig["teacher_latency_s"][0] / (t.concurrency if t.backend == "openai" else 1)
    try:
        teacher = ctx.teacher()
    except BalDistillError:  # e.g. no API key yet: the prompts are still counted, the cache is not read
        teacher = None
    from baldistill_core.student.model import build_pending

    build = build_pending(cfg.student.model)  # a first run on this machine converts the built-in model once
    steps: list[StepEstimate] = [StepEstimate(-1, "startup", seconds=fig["startup_s"][0] + build,
                                              note="worker process start, imports, pool and model resolution"
                                                   + (f"; building the model once (~{build:.0f} s)" if build else ""))]
    base, last_ids = _eval_step(ctx, -1, cfg.eval.live_per_domain, fig)
    steps.append(base)
    hist, trained = StageHistory(), []
    default_out = DEFAULT_OUT_TOKENS.get(ctx.spec.task_type, 120)
    for i in range(ctx.k):
        sel = plan_stage(ctx, i, hist, use_ifd=False)
        hist.add(sel)
        steps.append(StepEstimate(i, "selection", seconds=fig.get("select_s", (1.0,))[0]))
        if ctx.method.ifd and i > 0:
            n = sel.candidates_scored(cfg.ifd.candidate_cap_per_domain)
            units = n * cfg.student.max_new_tokens
            steps.append(StepEstimate(i, "ifd scoring", units=units, seconds=units / fig["ifd_tok_s"][0],
                                      note=f"{n} candidates"))
        real, weights = _weighted_picks(ctx, sel, i)
        texts: list[str | None] = [None] * len(real)
        if real and ctx.method.cot:
            st, texts = _annotation(ctx, teacher, real, weights, price, per_call, i)
            steps.append(st)
        if sel.synth_short and ctx.method.synth:
            steps += _synthesis(ctx, sel.synth_short, price, per_call, i)
        new = [(e, x, w) for e, x, w in zip(real, texts, weights) if _kept(ctx, e, x)]
        shots = full_examples(ctx, [e for v in sel.pool.values() for e in v[:1]][:1]) or real
        if shots:  # synthetic and duplicate picks train like a real example of the domain
            new += [(shots[0], None, 1.0)] * (sum(sel.synth_short.values()) + sum(
                1 for p in sel.picks if p.kind in ("synthetic", "duplicate")))
        trained += new
        data = trained if (cfg.student.fresh_adapter_per_stage or i == 0) else new
        units = int(_train_tokens(tok, ctx.view, data, ctx.method.cot, cfg.student.max_seq_len, default_out)
                    * cfg.student.epochs)
        n_train = round(sum(w for *_, w in data))
        steps.append(StepEstimate(i, "training", units=units, note=f"{n_train} examples x {cfg.student.epochs:g} epochs",
                                  seconds=fig["train_overhead_s"][0] + units / fig["train_tok_s"][0]))
        ev, last_ids = _eval_step(ctx, i, cfg.eval.live_per_domain, fig)
        steps.append(ev)
    final, final_ids = _eval_step(ctx, ctx.k, cfg.eval.final_per_domain, fig, loads=0)
    if final_ids == last_ids:  # the pipeline reuses the last live report for the same items
        final = StepEstimate(ctx.k, "evaluation", note="same items as the last live evaluation: reused")
    steps.append(final)
    warnings = [w for w in (known_zero(cfg), None if price.known else f"teacher price {price.source}") if w]
    if probed and probed.get("skipped"):
        warnings.append(f"throughput probe skipped {', '.join(probed['skipped'])}: defaults used there")
    if (busy := throughput.probed_busy(cfg.student.model)) and any(v[1].startswith("probe") for v in fig.values()):
        warnings.append(f"the student's speed was probed while {busy:g} other jobs kept every core busy: times may "
                        f"be several times too long (probed again once the machine is free, replaced by a run's own)")
    return Estimate(steps, asdict(price) | {"table": table["path"], "date": table["date"]},
                    {k: v[1] for k, v in fig.items()}, warnings, probed)


# ---------------------------------------------------------------- guard rails and storage


def guard(est: Estimate, cfg, *, confirmed: bool = False) -> list[str]:
    """Raise CostRefused above the hard cap; NeedsConfirmation (unless ``confirmed``) when long or costly.

    Returns the reasons a confirmation was (or would have been) needed.
    """
    cost, hard = est.cost_usd, cfg.teacher.hard_cost_cap_usd
    if hard is not None and cost is not None and cost > hard:
        raise CostRefused(f"estimated teacher cost ${cost:.4f} is above the hard cap ${hard:.4f} "
                          f"(teacher.hard_cost_cap_usd): lower the budget B, use a cheaper teacher model, or raise "
                          f"the hard cap")
    reasons = []
    if est.seconds > cfg.confirm_above_minutes * 60:
        reasons.append(f"estimated wall time {fmt_seconds(est.seconds)} is above {cfg.confirm_above_minutes:g} min")
    cap = cfg.teacher.cost_cap_usd
    if cap is not None and cost is not None and cost > cap:
        reasons.append(f"estimated teacher cost ${cost:.4f} is above the cost cap ${cap:.4f} (the run would stop there)")
    if hard is not None and cost is None:
        reasons.append(f"the teacher's price is unknown, so the hard cap ${hard:.4f} cannot be checked")
    if reasons and not confirmed:
        raise NeedsConfirmation("confirm this launch: " + "; ".join(reasons)
                                + " (CLI: add --yes; Training page: tick 'I confirm')")
    return reasons


def save(folder: str | Path, est: Estimate) -> None:
    """Store the launch estimate and the price table it used in the run folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ESTIMATE_FILE).write_text(json.dumps(est.to_json(), indent=1), encoding="utf-8")
    table = est.price.get("table")
    if table and Path(table).exists():
        (folder / PRICES_FILE).write_text(Path(table).read_text(encoding="utf-8"), encoding="utf-8")


def load(folder: str | Path) -> Estimate | None:
    p = Path(folder) / ESTIMATE_FILE
    if not p.exists():
        return None
    return Estimate.from_json(json.loads(p.read_text(encoding="utf-8")))


def fmt_seconds(s: float) -> str:
    s = max(0.0, float(s))
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def fmt_cost(c: float | None) -> str:
    return "unknown" if c is None else f"${c:.4f}"


def by_step(steps: list[StepEstimate]) -> dict[str, dict]:
    """Totals per step name (all stages together), in pipeline order."""
    out: dict[str, dict] = {}
    for s in steps:
        row = out.setdefault(s.step, dict(calls=0, tokens_in=0, tokens_out=0, cost_usd=0.0, seconds=0.0, units=0))
        for k in ("calls", "tokens_in", "tokens_out", "seconds", "units"):
            row[k] += getattr(s, k)
        row["cost_usd"] = None if row["cost_usd"] is None or s.cost_usd is None else row["cost_usd"] + s.cost_usd
    return {k: out[k] for k in STEPS if k in out}


def summary_lines(est: Estimate) -> list[str]:
    """The estimate as text (CLI): totals, then one line per step, then where the figures came from."""
    tin, tout = est.tokens
    lines = [f"estimate: {fmt_seconds(est.seconds)} on this machine; {est.calls} teacher calls, "
             f"{tin} input + {tout} output tokens, cost {fmt_cost(est.cost_usd)}"]
    for name, r in by_step(est.steps).items():
        lines.append(f"  {name:<13} {fmt_seconds(r['seconds']):>9}  calls {r['calls']:>5}  tokens in {r['tokens_in']:>8}"
                     f" out {r['tokens_out']:>7}  cost {fmt_cost(r['cost_usd']):>9}  student tokens {r['units']}")
    lines.append(f"price: {est.price['source']}")
    for k, v in sorted(est.sources.items()):
        lines.append(f"  {k}: {v}")
    lines += [f"warning: {w}" for w in est.warnings]
    return lines
