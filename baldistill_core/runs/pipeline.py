"""The stage loop of a run (docs/method.md "The loop"), checkpointed step by step.

Each stage goes selecting → annotating → training → evaluating → done; ``stages.status`` holds
the first step that is NOT complete yet, and every step commits its results before advancing it.
A worker killed anywhere (``kill -9``) resumes at that step: selections are written in one
transaction, teacher calls are served from the teacher cache (and counted once by the ledger),
a finished stage's adapter is never retrained, and the seeds depend only on (run seed, stage,
domain), so the final data equal an uninterrupted run's.

Every method of the comparison runs through this one runner (``selection.methods``): zero-shot
CoT evaluates the base student only; Random FT trains on answer sentences only (no teacher call);
one-stage baselines spend the whole budget in one stage.

The pipeline holds no SQL: picks live in ``selection.records``, run and stage records in
``runs.records``, synthetic examples in ``synthetic.synthesis``. Selection itself is
``runs.stage.plan_stage``, the routine the Plan page's preview calls too.

Continued training (``student.fresh_adapter_per_stage = False``) starts from the previous
stage's adapter and trains on the new stage's data only; the default is a fresh adapter on all
the data so far.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.data import loading as data
from baldistill_core.errors import BalDistillError
from baldistill_core.evaluation import evaluate
from baldistill_core.reports import tracking
from baldistill_core.runs import eval_items
from baldistill_core.runs import records as runs
from baldistill_core.runs.actuals import Recorder
from baldistill_core.runs.context import RunContext
from baldistill_core.runs.scoring import checkpoint_id, ifd_scorer
from baldistill_core.runs.stage import StageHistory, plan_stage
from baldistill_core.selection import records as picks
from baldistill_core.selection import select as selection
from baldistill_core.synthetic import review, synthesis

_STEP_ORDER = {s: i for i, s in enumerate(runs.STAGE_STEPS)}
TEACHER_ERROR = "teacher error"


class Cancelled(Exception):
    """The run was cancelled; the worker stops at a step boundary (or after a training step)."""


class AwaitingReview(Exception):
    """A stage needs synthetic examples that a person has not approved yet."""


class TeacherUnavailable(BalDistillError, RuntimeError):
    """Calls failed after their retries: the run stops (resumable) instead of dropping examples."""


class Pipeline:
    def __init__(self, conn, run_id: str, *, api_key: str | None = None,
                 cancel_event: threading.Event | None = None, teacher=None, echo: Callable[[str], None] | None = None):
        self.conn = conn
        self.run_id = run_id
        self.run = runs.get_run(conn, run_id)
        self.cfg = RunConfig.model_validate(self.run["config"])
        self.folder = Path(self.run["folder"])
        self.ctx = RunContext.build(conn, self.cfg, teacher=teacher)
        self.spec, self.labels, self.method, self.k = self.ctx.spec, self.ctx.labels, self.ctx.method, self.ctx.k
        self.sizes, self.view = self.ctx.sizes, self.ctx.view
        self.api_key = api_key
        self.cancel_event = cancel_event or threading.Event()
        self._echo = echo
        self._base_path = None
        self._loaded: tuple[str | None, object, object] | None = None
        self._engine: tuple[str | None, object] | None = None
        self.head_tail = evaluate.head_tail_groups(self.sizes)
        self.tracker = tracking.RunTracker(conn, run_id, None, self.log)  # opened by execute()
        self._last_eval: tuple[str | None, tuple, evaluate.EvalReport] | None = None
        self.actual = Recorder(conn, run_id, self.folder, self.cfg)  # estimate vs actual, per step

    # ------------------------------------------------------------ small helpers

    def log(self, message: str, level: str = "info") -> None:
        runs.log(self.conn, self.run_id, message, level)
        if self._echo:
            self._echo(message)

    def check_cancel(self) -> None:
        if self.cancel_event.is_set() or runs.get_run(self.conn, self.run_id)["status"] == runs.RunStatus.CANCELLING:
            raise Cancelled()

    def teacher(self):
        t = self.ctx.teacher(run_id=self.run_id, api_key=self.api_key, budget_examples=self.cfg.budget)
        t.check_cancel = self.check_cancel  # a batch being polled is cancelled with the run
        return t

    def base_path(self):
        if self._base_path is None:
            from baldistill_core.student.model import resolve_model

            self._base_path = resolve_model(self.cfg.student.model)
        return self._base_path

    def model(self, adapter_dir: str | None):
        """The student (base + adapter), loaded once per adapter and reused for IFD and evaluation."""
        if self._loaded is None or self._loaded[0] != adapter_dir:
            from baldistill_core.student.model import load_model
            from baldistill_core.student.precision import use_cpu_bf16

            self._loaded = None
            t0 = time.perf_counter()
            m, tok = load_model(self.base_path(), adapter_dir=adapter_dir, quantization=self.cfg.student.quantization,
                                cpu_bf16=use_cpu_bf16(self.cfg.student))
            self.actual.note_load(time.perf_counter() - t0)
            self._loaded = (adapter_dir, m, tok)
        return self._loaded[1], self._loaded[2]

    def engine(self, adapter_dir: str | None):
        """The generation engine (``student.engine``: hf reuses ``model()``, vllm loads base + adapter)."""
        if self._engine is None or self._engine[0] != adapter_dir:
            from baldistill_core.student import engines

            self._engine = None
            self._engine = (adapter_dir, engines.build(self.cfg.student, self.base_path(), adapter_dir,
                                                       hf_loader=self.model, seed=self.cfg.seed))
        return self._engine[1]

    def prompt_of(self, e: dict) -> str:
        return self.view.prompt(e)

    def adapter_dir(self, stage: int) -> str | None:
        return runs.adapter_dir(self.conn, self.run_id, stage)

    def pool(self) -> dict[str, list[dict]]:
        self.teacher()  # the recorded filter needs the run's teacher (with its ledger)
        return self.ctx.pool()

    # ------------------------------------------------------------ the loop

    def execute(self) -> str:
        self.tracker = tracking.start(self.conn, self.run_id, self.cfg, self.folder,
                                      warn=lambda m: self.log(m, "warning"))
        try:
            return self._execute()
        finally:
            self.tracker.close(runs.get_run(self.conn, self.run_id)["status"] == runs.RunStatus.FINISHED)

    def _execute(self) -> str:
        runs.set_status(self.conn, self.run_id, runs.RunStatus.RUNNING)
        self.log(f"run {self.run_id}: method {self.method.label}, B={self.cfg.budget}, K={self.k}, "
                 f"student {self.cfg.student.model}, teacher {self.cfg.teacher.backend}")
        from baldistill_core.student.model import build_pending

        b0, pending = time.perf_counter(), build_pending(self.cfg.student.model)
        if pending:  # a first run on this machine builds the built-in model: startup, as the estimate counts it
            self.base_path()
        self.actual.startup(build_s=time.perf_counter() - b0 if pending else 0.0)
        if self.method.train:
            selection.check_budget(self.cfg, sum(len(v) for v in self.pool().values()))
        if not runs.has_metrics(self.conn, self.run_id, -1, "live"):
            with self.actual.step(-1, "evaluation"):
                self._live_eval(-1, None)   # the base student: the first point of every live curve
        for i in range(self.k):
            status = runs.stage_status(self.conn, self.run_id, i) or "selecting"
            if status == "done":
                continue
            runs.set_stage(self.conn, self.run_id, i, status)
            if _STEP_ORDER[status] <= _STEP_ORDER["selecting"]:
                with self.actual.step(i, "selection"):
                    self._select(i)
            if _STEP_ORDER[status] <= _STEP_ORDER["annotating"]:
                with self.actual.step(i, "annotation"):
                    self._annotate(i)
            if _STEP_ORDER[status] <= _STEP_ORDER["training"]:
                with self.actual.step(i, "training"):
                    self._train(i)
            if _STEP_ORDER[status] <= _STEP_ORDER["evaluating"]:
                with self.actual.step(i, "evaluation"):
                    self._live_eval(i, self.adapter_dir(i))
                runs.set_stage(self.conn, self.run_id, i, "done")
                self.log(f"stage {i}: done")
        with self.actual.step(self.k, "evaluation"):
            self._final_eval()
        runs.set_status(self.conn, self.run_id, runs.RunStatus.FINISHED)
        runs.set_progress(self.conn, self.run_id, self.k - 1 if self.k else None, "finished")
        self.log("run finished")
        return "finished"

    # ------------------------------------------------------------ steps

    def _select(self, i: int) -> None:
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, i, "selecting")
        self.teacher()
        scorer = self._scorer(i - 1) if self.method.ifd and i > 0 else None
        sel = plan_stage(self.ctx, i, StageHistory.of_run(self.conn, self.run_id, i), scorer=scorer,
                         synthesize=lambda short: self._synthesize(i, short))
        alloc = sel.allocation
        with store.transaction(self.conn):
            picks.save_selection(self.conn, self.run_id, sel)
            runs.set_stage_detail(self.conn, self.run_id, i, plan=alloc.as_dict())
            runs.set_stage(self.conn, self.run_id, i, "annotating", quota=alloc.quota)
        kinds: dict[str, int] = {}
        for p in sel.picks:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        self.log(f"stage {i}: selected {len(sel.picks)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))});"
                 f" head {sum(1 for d in alloc.head if alloc.quota[d] > 0)} domains, tail {len(alloc.tail)}"
                 + (f"; IFD scored {sum(sel.scored.values())} candidates" if sel.scored else ""))

    def _scorer(self, prev_stage: int):
        engine = self.engine(self.adapter_dir(prev_stage))
        runs.set_progress(self.conn, self.run_id, prev_stage + 1, "ifd scoring")
        score = ifd_scorer(self.conn, self.cfg, checkpoint_id(self.run_id, prev_stage), engine)

        def timed(items: list[dict]) -> dict:
            with self.actual.step(prev_stage + 1, "ifd scoring"):
                self.actual.note(units=len(items) * self.cfg.student.max_new_tokens)
                return score(items)

        return timed

    def _synthesize(self, i: int, short: dict[str, int]) -> None:
        """Ask the teacher for the missing tail examples; without auto-approve, wait for review."""
        with self.actual.step(i, "synthesis"):
            self._synthesize_gaps(i, short)

    def _synthesize_gaps(self, i: int, short: dict[str, int]) -> None:
        runs.set_progress(self.conn, self.run_id, i, "synthesizing")
        for d, n in sorted(short.items()):
            # synthesize_for_gap counts this stage's non-rejected items; approved ones are already
            # in the usable list, so ask for enough that ``n`` more are queued.
            approved_here, _ = synthesis.stage_counts(self.conn, self.run_id, i, d)
            shots = store.examples(self.conn, self.cfg.dataset, "train", domain=d, limit=3)
            ids = synthesis.synthesize_for_gap(self.teacher(), self.conn, self.spec, d, approved_here + n,
                                               run_id=self.run_id, stage=i, shots=shots)
            self.log(f"stage {i}: {d}: {len(ids) - approved_here} synthetic examples queued for a gap of {n}")
            if self.cfg.auto_approve:
                for x in synthesis.stage_counts(self.conn, self.run_id, i, d)[1]:
                    review.approve(self.conn, x, reviewer="auto-approve")
        if not self.cfg.auto_approve:
            runs.set_status(self.conn, self.run_id, runs.RunStatus.AWAITING_REVIEW)
            self.log(f"stage {i}: waiting for review of synthetic examples ({', '.join(f'{d}: {n}' for d, n in short.items())});"
                     f" approve them on the Review page, then resume the run", "warning")
            raise AwaitingReview(short)

    def _annotate(self, i: int) -> None:
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, i, "annotating")
        ids = picks.to_annotate(self.conn, self.run_id, i)
        if ids and not self.method.cot:
            # Random FT trains on gold answers only: no rationale, no teacher call.
            with store.transaction(self.conn):
                picks.keep_without_rationale(self.conn, self.run_id, i, ids)
        elif ids:
            self._ask_teacher(i, ids)
        with store.transaction(self.conn):
            picks.resolve_duplicates(self.conn, self.run_id, i)
            runs.set_stage(self.conn, self.run_id, i, "training")
        kept, dropped = picks.kept_dropped(self.conn, self.run_id, i)
        self.log(f"stage {i}: annotated; kept {kept}, dropped {dropped} (answer mismatch)")
        self.tracker.spend(i, runs.spend(self.conn, self.run_id))

    def _ask_teacher(self, i: int, ids: list[str]) -> None:
        items = {e["id"]: e for e in store.examples(self.conn, self.cfg.dataset, "train", ids=ids)}
        # Checkpoint every chunk; a chunk several times the concurrency keeps the teacher's pool full.
        # In batch mode the whole stage is one batch (one request file, one wait).
        chunk = len(ids) if self.cfg.teacher.mode == "batch" else max(16, 4 * self.cfg.teacher.concurrency)
        unreachable: list[str] = []
        for s in range(0, len(ids), chunk):
            self.check_cancel()
            notes = self.teacher().annotate([items[x] for x in ids[s:s + chunk]])
            # A call that failed after its retries (endpoint down, timeouts) says nothing about the
            # example: leave it unannotated so a resume asks again, rather than dropping it for good.
            failed = [a for a in notes if (a.reason or "").startswith(TEACHER_ERROR)]
            unreachable += [a.reason for a in failed]
            with store.transaction(self.conn):
                picks.record_annotations(self.conn, self.run_id, i, [a for a in notes if a not in failed])
        if unreachable:
            raise TeacherUnavailable(
                f"stage {i}: the teacher could not annotate {len(unreachable)} of {len(ids)} examples "
                f"({unreachable[-1]}); nothing was dropped — check the endpoint and Resume: paid calls are "
                f"cached and only the missing ones are asked again")

    def training_examples(self, upto_stage: int, from_stage: int = 0) -> list[dict]:
        rows = [r for r in picks.training_rows(self.conn, self.run_id, self.cfg.dataset, upto_stage)
                if r["stage"] >= from_stage]
        return [self.view.training_pair(r, cot=self.method.cot) for r in rows]

    def _train(self, i: int) -> None:
        from baldistill_core.student.training import train_adapter

        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, i, "training")
        fresh = self.cfg.student.fresh_adapter_per_stage or i == 0
        examples = self.training_examples(i, 0 if fresh else i)
        out = self.folder / "stages" / str(i) / "adapter"
        if out.exists():
            shutil.rmtree(out)
        runs.clear_metrics(self.conn, self.run_id, i, "train")
        self.log(f"stage {i}: training a {'fresh' if fresh else 'continued'} adapter on {len(examples)} examples")
        self._loaded = self._engine = None  # free the scoring model before training
        reporting = self.tracker.training()

        def on_log(d: dict) -> None:
            runs.write_metrics(self.conn, self.run_id, i, "train", [("_all", "loss", d["loss"])],
                               step=int(d["step"]), replace=True)
            runs.set_progress(self.conn, self.run_id, i, f"training {d['step']}/{d.get('max_steps') or '?'}")

        init = None if fresh else Path(self.adapter_dir(i - 1))
        if self.cfg.student.accelerate_num_processes > 1:  # multi-GPU: `accelerate launch` child processes
            from baldistill_core.student.launch import launch

            result = launch(self.cfg.student, self.base_path(), examples, out, seed=self.cfg.seed + i,
                            init_adapter=init, reporting=reporting, stage=i)
        else:
            result = train_adapter(self.base_path(), examples, self.cfg.student, out, seed=self.cfg.seed + i,
                                   on_log=on_log, should_stop=self.cancel_event.is_set, init_adapter=init,
                                   reporting=reporting, stage=i)
        if result.stopped:
            raise Cancelled()
        self.actual.note(units=result.tokens_seen, train_seconds=result.train_seconds)
        with store.transaction(self.conn):
            runs.set_stage_detail(self.conn, self.run_id, i, train=result.to_json(), adapter_dir=str(out))
            runs.set_stage(self.conn, self.run_id, i, "evaluating")
        self.tracker.stage_trained(i, result)
        self.log(f"stage {i}: trained {result.steps} steps in {result.train_seconds:.0f}s, "
                 f"final loss {result.final_loss if result.final_loss is None else round(result.final_loss, 4)}")

    def _live_eval(self, i: int, adapter: str | None) -> None:
        if i < 0 and runs.has_metrics(self.conn, self.run_id, i, "live"):
            return
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, max(i, 0), "evaluating")
        items = evaluate.eval_subset(self.conn, self.cfg.dataset, self.cfg.eval.live_per_domain, seed=self.cfg.seed)
        report = self._evaluate(items, adapter)
        runs.write_metrics(self.conn, self.run_id, i, "live", report.rows(), step=runs.train_steps(
            self.conn, self.run_id, i))
        eval_items.write(self.conn, self.run_id, i, "live", report.predictions)
        self.tracker.stage_eval(i, report, self.head_tail)
        self.log(f"{'base student' if i < 0 else f'stage {i}'}: live {report.primary} macro "
                 f"{report.score('_macro'):.3f}, micro {report.score('_micro'):.3f}")

    def _evaluate(self, items: list[dict], adapter: str | None) -> evaluate.EvalReport:
        # Greedy decoding is deterministic: the same student on the same items (the final test
        # subset equals the live one when their per-domain caps match) reuses the last report.
        key = tuple(e["id"] for e in items)
        if self._last_eval is not None and self._last_eval[:2] == (adapter, key):
            return self._last_eval[2]
        self.actual.note(units=len(items) * self.cfg.student.max_new_tokens)
        report = evaluate.evaluate_with(self.engine(adapter), items, self.view, labels=self.labels,
                                        sizes=self.sizes, max_new_tokens=self.cfg.student.max_new_tokens,
                                        batch_size=self.cfg.ifd.batch_size)
        self._last_eval = (adapter, key, report)
        return report

    def _final_eval(self) -> None:
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, self.k - 1 if self.k else None, "final evaluation")
        adapter = self.adapter_dir(self.k - 1) if self.k else None
        items = evaluate.eval_subset(self.conn, self.cfg.dataset, self.cfg.eval.final_per_domain,
                                     seed=self.cfg.seed)
        report = self._evaluate(items, adapter)
        runs.write_metrics(self.conn, self.run_id, max(self.k - 1, 0), "test", report.rows())
        eval_items.write(self.conn, self.run_id, max(self.k - 1, 0), "test", report.predictions)
        self.tracker.final(max(self.k - 1, 0), report, self.head_tail)
        (self.folder / "final_predictions.jsonl").write_text(data.jsonl_dumps(report.predictions), encoding="utf-8")
        self.log(f"final test ({len(items)} examples): {report.primary} macro {report.score('_macro'):.3f}, "
                 f"micro {report.score('_micro'):.3f}")
