"""The stage loop of a run (ALGORITHM.md "The loop"), checkpointed step by step.

Each stage goes selecting → annotating → training → evaluating → done; ``stages.status`` holds
the first step that is NOT complete yet, and every step commits its results before advancing it.
A worker killed anywhere (``kill -9``) resumes at that step: selections are written in one
transaction, teacher calls are served from the teacher cache (and counted once by the ledger),
a finished stage's adapter is never retrained, and the seeds depend only on (run seed, stage,
domain), so the final data equal an uninterrupted run's.

Every method of the paper's comparison runs through this one runner (``config.METHODS``):
zero-shot CoT evaluates the base student only; Random FT trains on answer sentences only (no
teacher call); one-stage baselines spend the whole budget in one stage.

Continued training (``student.fresh_adapter_per_stage = False``) starts from the previous
stage's adapter and trains on the new stage's data only; the paper's default is a fresh adapter
on all the data so far.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Callable

from . import data, evaluate, review, runs, selection, store
from .config import RunConfig
from .prompts import student_prompt, task_instruction, training_completion
from .selection import effective_stages  # noqa: F401  (re-exported for runs.progress and pages)
from .stage_scoring import checkpoint_id, ifd_scorer

_STEP_ORDER = {s: i for i, s in enumerate(runs.STAGE_STEPS)}


class Cancelled(Exception):
    """The run was cancelled; the worker stops at a step boundary (or after a training step)."""


class AwaitingReview(Exception):
    """A stage needs synthetic examples that a person has not approved yet."""


TEACHER_ERROR = "teacher error"


class TeacherUnavailable(RuntimeError):
    """Calls failed after their retries: the run stops (resumable) instead of dropping examples."""


class Pipeline:
    def __init__(self, conn, run_id: str, *, api_key: str | None = None,
                 cancel_event: threading.Event | None = None, teacher=None, echo: Callable[[str], None] | None = None):
        self.conn = conn
        self.run_id = run_id
        self.run = runs.get_run(conn, run_id)
        self.cfg = RunConfig.model_validate(self.run["config"])
        self.folder = Path(self.run["folder"])
        self.spec = data.dataset_spec(conn, self.cfg.dataset)
        ds = store.get_dataset(conn, self.cfg.dataset)
        self.labels = ds["label_set"]
        self.method = selection.method_info(self.cfg)
        self.k = effective_stages(self.cfg)
        self.sizes = selection.domain_sizes(conn, self.cfg.dataset)
        self.instruction = task_instruction(self.spec.task_type, self.spec.instruction, self.labels)
        self.api_key = api_key
        self.cancel_event = cancel_event or threading.Event()
        self._teacher = teacher
        self._echo = echo
        self._base_path = None
        self._loaded: tuple[str | None, object, object] | None = None
        self._tokenizer = None
        self._last_eval: tuple[str | None, tuple, evaluate.EvalReport] | None = None

    # ------------------------------------------------------------ small helpers

    def log(self, message: str, level: str = "info") -> None:
        runs.log(self.conn, self.run_id, message, level)
        if self._echo:
            self._echo(message)

    def check_cancel(self) -> None:
        if self.cancel_event.is_set() or runs.get_run(self.conn, self.run_id)["status"] == "cancelling":
            raise Cancelled()

    def teacher(self):
        if self._teacher is None:
            from .teacher import build_teacher

            self._teacher = build_teacher(self.cfg.teacher, self.conn, spec=self.spec, labels=self.labels,
                                          run_id=self.run_id, api_key=self.api_key,
                                          budget_examples=self.cfg.budget)
        return self._teacher

    def base_path(self):
        if self._base_path is None:
            from .student import resolve_model

            self._base_path = resolve_model(self.cfg.student.model)
        return self._base_path

    def model(self, adapter_dir: str | None):
        """The student (base + adapter), loaded once per adapter and reused for IFD and evaluation."""
        if self._loaded is None or self._loaded[0] != adapter_dir:
            from .student import load_model

            self._loaded = None
            m, tok = load_model(self.base_path(), adapter_dir=adapter_dir, quantization=self.cfg.student.quantization)
            self._loaded = (adapter_dir, m, tok)
        return self._loaded[1], self._loaded[2]

    def prompt_of(self, e: dict) -> str:
        return student_prompt(self.instruction, self.clip_input(e["input"]), self.spec.task_type)

    def clip_input(self, text: str) -> str:
        """The input cut to ``student.max_input_tokens`` tokens (the same cut for training, IFD, evaluation)."""
        limit = self.cfg.student.max_input_tokens
        if not limit or len(text) <= limit:  # a token is at least one character
            return text
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.base_path()))
        enc = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= limit:
            return text
        return text[:enc["offset_mapping"][limit - 1][1]].rstrip()

    def adapter_dir(self, stage: int) -> str | None:
        r = store.one(self.conn, "SELECT adapter_dir FROM stage_details WHERE run_id = ? AND stage = ?",
                      (self.run_id, stage))
        return r["adapter_dir"] if r else None

    def restrict_pool(self) -> bool:
        # Recorded rationales exist for only part of the train inputs: the demo pool is those.
        return self.cfg.teacher.backend == "recorded"

    def pool(self) -> dict[str, list[dict]]:
        keep = self.teacher().can_annotate if self.restrict_pool() else None
        return selection.candidate_pool(self.conn, self.cfg.dataset, keep)

    # ------------------------------------------------------------ the loop

    def execute(self) -> str:
        runs.set_status(self.conn, self.run_id, "running")
        self.log(f"run {self.run_id}: method {self.cfg.method}, B={self.cfg.budget}, K={self.k}, "
                 f"student {self.cfg.student.model}, teacher {self.cfg.teacher.backend}")
        if self.method["train"]:
            pool = self.pool()
            selection.check_budget(self.cfg, sum(len(v) for v in pool.values()))
        self._live_eval(-1, None)   # the base student: the first point of every live curve
        for i in range(self.k):
            status = runs.stage_status(self.conn, self.run_id, i) or "selecting"
            if status == "done":
                continue
            runs.set_stage(self.conn, self.run_id, i, status)
            if _STEP_ORDER[status] <= _STEP_ORDER["selecting"]:
                self._select(i)
            if _STEP_ORDER[status] <= _STEP_ORDER["annotating"]:
                self._annotate(i)
            if _STEP_ORDER[status] <= _STEP_ORDER["training"]:
                self._train(i)
            if _STEP_ORDER[status] <= _STEP_ORDER["evaluating"]:
                self._live_eval(i, self.adapter_dir(i))
                runs.set_stage(self.conn, self.run_id, i, "done")
                self.log(f"stage {i}: done")
        self._final_eval()
        runs.set_status(self.conn, self.run_id, "finished")
        runs.set_progress(self.conn, self.run_id, self.k - 1 if self.k else None, "finished")
        self.log("run finished")
        return "finished"

    # ------------------------------------------------------------ steps

    def _select(self, i: int) -> None:
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, i, "selecting")
        taken = selection.picked_ids(self.conn, self.run_id, i)
        pool = selection.remaining(self.pool(), taken)
        alloc = selection.allocate(self.method["policy"], self.method["fill"], self.sizes,
                                   {d: len(v) for d, v in pool.items()}, self.cfg.budget, self.k, i)
        scorer = None
        if self.method["ifd"] and i > 0:
            scorer = self._scorer(i - 1)
        earlier = {}
        for r in store.rows(self.conn, "SELECT domain, example_id FROM selections WHERE run_id = ? AND stage < ?"
                            " AND kind IN ('head', 'tail_real') ORDER BY stage, example_id", (self.run_id, i)):
            earlier.setdefault(r["domain"], []).append(r["example_id"])
        sel = selection.select_stage(
            alloc, pool, seed=self.cfg.seed, use_ifd=self.method["ifd"], scorer=scorer, prompt_of=self.prompt_of,
            ifd_cap=self.cfg.ifd.candidate_cap_per_domain, fill=self.method["fill"],
            synthetic=lambda d: self._usable_synthetic(d, i), earlier_real=earlier)
        if sel.synth_short:
            self._synthesize(i, sel.synth_short)
            sel = selection.select_stage(
                alloc, pool, seed=self.cfg.seed, use_ifd=self.method["ifd"], scorer=scorer,
                prompt_of=self.prompt_of, ifd_cap=self.cfg.ifd.candidate_cap_per_domain, fill=self.method["fill"],
                synthetic=lambda d: self._usable_synthetic(d, i), earlier_real=earlier)
            if sel.synth_short:
                raise ValueError(f"stage {i}: still short of synthetic examples {sel.synth_short} after synthesis")
        with store.transaction(self.conn):
            selection.save_selection(self.conn, self.run_id, sel)
            runs.set_stage_detail(self.conn, self.run_id, i, plan=alloc.as_dict())
            runs.set_stage(self.conn, self.run_id, i, "annotating", quota=alloc.quota)
        kinds = {}
        for p in sel.picks:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        self.log(f"stage {i}: selected {len(sel.picks)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))});"
                 f" head {len(alloc.head)} domains, tail {len(alloc.tail)}"
                 + (f"; IFD scored {sum(sel.scored.values())} candidates" if sel.scored else ""))

    def _scorer(self, prev_stage: int):
        model, tok = self.model(self.adapter_dir(prev_stage))
        runs.set_progress(self.conn, self.run_id, prev_stage + 1, "ifd scoring")
        return ifd_scorer(self.conn, self.cfg, checkpoint_id(self.run_id, prev_stage), model, tok)

    def _used_synthetic(self, stage: int) -> set[str]:
        return {r["example_id"] for r in store.rows(
            self.conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage < ? AND kind = 'synthetic'",
            (self.run_id, stage))}

    def _usable_synthetic(self, domain: str, stage: int) -> list[dict]:
        from . import synthesis

        return synthesis.approved_synthetic(self.conn, self.cfg.dataset, domain,
                                            exclude_ids=tuple(sorted(self._used_synthetic(stage))))

    def _synthesize(self, i: int, short: dict[str, int]) -> None:
        """Ask the teacher for the missing tail examples; without auto-approve, wait for review."""
        from . import synthesis

        runs.set_progress(self.conn, self.run_id, i, "synthesizing")
        for d, n in sorted(short.items()):
            # synthesize_for_gap counts this stage's non-rejected items; approved ones are already
            # in the usable list, so ask for enough that ``n`` more are queued.
            approved_here = store.one(
                self.conn, "SELECT COUNT(*) AS n FROM synthetic WHERE run_id = ? AND stage = ? AND domain = ?"
                           " AND status IN ('approved', 'edited')", (self.run_id, i, d))["n"]
            shots = store.examples(self.conn, self.cfg.dataset, "train", domain=d, limit=3)
            ids = synthesis.synthesize_for_gap(self.teacher(), self.conn, self.spec, d, approved_here + n,
                                               run_id=self.run_id, stage=i, shots=shots)
            self.log(f"stage {i}: {d}: {len(ids) - approved_here} synthetic examples queued for a gap of {n}")
            if self.cfg.auto_approve:
                pending = [r["id"] for r in store.rows(
                    self.conn, "SELECT id FROM synthetic WHERE run_id = ? AND stage = ? AND domain = ?"
                               " AND status = 'pending' ORDER BY created_at, id", (self.run_id, i, d))]
                _auto_approve(self.conn, pending)
        if not self.cfg.auto_approve:
            runs.set_status(self.conn, self.run_id, "awaiting_review")
            self.log(f"stage {i}: waiting for review of synthetic examples ({', '.join(f'{d}: {n}' for d, n in short.items())});"
                     f" approve them on the Review page, then resume the run", "warning")
            raise AwaitingReview(short)

    def _annotate(self, i: int) -> None:
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, i, "annotating")
        todo = store.rows(self.conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage = ?"
                                     " AND kind IN ('head', 'tail_real') AND kept IS NULL ORDER BY example_id",
                          (self.run_id, i))
        ids = [r["example_id"] for r in todo]
        if ids and not self.method["cot"]:
            # Random FT trains on gold answers only: no rationale, no teacher call.
            with store.transaction(self.conn):
                self.conn.executemany("UPDATE selections SET kept = 1, rationale = '' WHERE run_id = ? AND stage = ?"
                                      " AND example_id = ?", [(self.run_id, i, x) for x in ids])
        elif ids:
            items = {e["id"]: e for e in store.examples(self.conn, self.cfg.dataset, "train", ids=ids)}
            # Checkpoint every chunk; a chunk several times the concurrency keeps the teacher's pool full.
            chunk = max(16, 4 * self.cfg.teacher.concurrency)
            unreachable: list[str] = []
            for s in range(0, len(ids), chunk):
                self.check_cancel()
                batch = [items[x] for x in ids[s:s + chunk]]
                notes = self.teacher().annotate(batch)
                # A call that failed after its retries (endpoint down, timeouts) says nothing about the
                # example: leave it unannotated so a resume asks again, rather than dropping it for good.
                failed = [a for a in notes if (a.reason or "").startswith(TEACHER_ERROR)]
                unreachable += [a.reason for a in failed]
                with store.transaction(self.conn):
                    self.conn.executemany(
                        "UPDATE selections SET kept = ?, drop_reason = ?, rationale = ? WHERE run_id = ? AND stage = ?"
                        " AND example_id = ? AND kind IN ('head', 'tail_real')",
                        [(1 if a.kept else 0, None if a.kept else (a.reason or "mismatch"), a.rationale or "",
                          self.run_id, i, a.id) for a in notes if a not in failed])
            if unreachable:
                raise TeacherUnavailable(
                    f"stage {i}: the teacher could not annotate {len(unreachable)} of {len(ids)} examples "
                    f"({unreachable[-1]}); nothing was dropped — check the endpoint and Resume: paid calls are "
                    f"cached and only the missing ones are asked again")
        with store.transaction(self.conn):
            self._resolve_duplicates(i)
            runs.set_stage(self.conn, self.run_id, i, "training")
        r = store.one(self.conn, "SELECT SUM(kept = 1) AS kept, SUM(kept = 0) AS dropped FROM selections"
                                 " WHERE run_id = ? AND stage = ?", (self.run_id, i))
        self.log(f"stage {i}: annotated; kept {r['kept'] or 0}, dropped {r['dropped'] or 0} (answer mismatch)")

    def _resolve_duplicates(self, i: int) -> None:
        dups = store.rows(self.conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage = ?"
                                     " AND kind = 'duplicate'", (self.run_id, i))
        for r in dups:
            src = store.one(self.conn, "SELECT kept, drop_reason, rationale FROM selections WHERE run_id = ?"
                                       " AND example_id = ? AND kind IN ('head', 'tail_real')",
                            (self.run_id, selection.duplicate_source(r["example_id"])))
            if src is not None:
                self.conn.execute("UPDATE selections SET kept = ?, drop_reason = ?, rationale = ? WHERE run_id = ?"
                                  " AND stage = ? AND example_id = ? AND kind = 'duplicate'",
                                  (src["kept"], src["drop_reason"], src["rationale"], self.run_id, i,
                                   r["example_id"]))

    def training_examples(self, upto_stage: int, from_stage: int = 0) -> list[dict]:
        rows = [r for r in selection.training_rows(self.conn, self.run_id, self.cfg.dataset, upto_stage)
                if r["stage"] >= from_stage]
        return [dict(prompt=self.prompt_of(r),
                     completion=training_completion(r["rationale"], r["answer"], cot=self.method["cot"]))
                for r in rows]

    def _train(self, i: int) -> None:
        from .training import train_adapter

        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, i, "training")
        fresh = self.cfg.student.fresh_adapter_per_stage or i == 0
        examples = self.training_examples(i, 0 if fresh else i)
        out = self.folder / "stages" / str(i) / "adapter"
        if out.exists():
            shutil.rmtree(out)
        runs.clear_metrics(self.conn, self.run_id, i, "train")
        self.log(f"stage {i}: training a {'fresh' if fresh else 'continued'} adapter on {len(examples)} examples")
        self._loaded = None  # free the scoring model before training

        def on_log(d: dict) -> None:
            runs.write_metrics(self.conn, self.run_id, i, "train", [("_all", "loss", d["loss"])],
                               step=int(d["step"]), replace=True)
            runs.set_progress(self.conn, self.run_id, i, f"training {d['step']}/{d.get('max_steps') or '?'}")

        init = None if fresh else Path(self.adapter_dir(i - 1))
        if self.cfg.student.accelerate_num_processes > 1:  # multi-GPU: `accelerate launch` child processes
            from .train_stage import launch

            result = launch(self.cfg.student, self.base_path(), examples, out, seed=self.cfg.seed + i,
                            init_adapter=init)
        else:
            result = train_adapter(self.base_path(), examples, self.cfg.student, out, seed=self.cfg.seed + i,
                                   on_log=on_log, should_stop=self.cancel_event.is_set, init_adapter=init)
        if result.stopped:
            raise Cancelled()
        with store.transaction(self.conn):
            runs.set_stage_detail(self.conn, self.run_id, i, train=result.to_json(), adapter_dir=str(out))
            runs.set_stage(self.conn, self.run_id, i, "evaluating")
        self.log(f"stage {i}: trained {result.steps} steps in {result.train_seconds:.0f}s, "
                 f"final loss {result.final_loss if result.final_loss is None else round(result.final_loss, 4)}")

    def _live_eval(self, i: int, adapter: str | None) -> None:
        done = store.one(self.conn, "SELECT COUNT(*) AS n FROM metrics WHERE run_id = ? AND stage = ? AND split = 'live'",
                         (self.run_id, i))["n"]
        if i < 0 and done:
            return
        self.check_cancel()
        runs.set_progress(self.conn, self.run_id, max(i, 0), "evaluating")
        items = evaluate.eval_subset(self.conn, self.cfg.dataset, self.cfg.eval.live_per_domain, seed=self.cfg.seed)
        report = self._evaluate(items, adapter)
        train = store.one(self.conn, "SELECT train FROM stage_details WHERE run_id = ? AND stage = ?",
                          (self.run_id, i))
        steps = 0
        if train and train["train"]:
            import json

            steps = int(json.loads(train["train"]).get("steps") or 0)
        runs.write_metrics(self.conn, self.run_id, i, "live", report.rows(), step=steps)
        self.log(f"{'base student' if i < 0 else f'stage {i}'}: live {report.primary} macro "
                 f"{report.score('_macro'):.3f}, micro {report.score('_micro'):.3f}")

    def _evaluate(self, items: list[dict], adapter: str | None) -> evaluate.EvalReport:
        # Greedy decoding is deterministic: the same student on the same items (the final test
        # subset equals the live one when their per-domain caps match) reuses the last report.
        key = tuple(e["id"] for e in items)
        if self._last_eval is not None and self._last_eval[:2] == (adapter, key):
            return self._last_eval[2]
        model, tok = self.model(adapter)
        clipped = [dict(e, input=self.clip_input(e["input"])) for e in items]
        report = evaluate.evaluate_model(
            model, tok, clipped, task_type=self.spec.task_type, instruction=self.spec.instruction, labels=self.labels,
            sizes=self.sizes, max_new_tokens=self.cfg.student.max_new_tokens, batch_size=self.cfg.ifd.batch_size)
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
        (self.folder / "final_predictions.jsonl").write_text(data.jsonl_dumps(report.predictions), encoding="utf-8")
        self.log(f"final test ({len(items)} examples): {report.primary} macro {report.score('_macro'):.3f}, "
                 f"micro {report.score('_micro'):.3f}")


def _auto_approve(conn, ids: list[str]) -> None:
    """Approve synthetic examples of a run configured to skip human review (audited as 'auto-approve')."""
    for x in ids:
        review.approve(conn, x, reviewer="auto-approve")
