"""The teacher: rationales and tail synthesis through one cache, one ledger and one budget.

``build_teacher(cfg, conn, spec=..., labels=..., run_id=..., budget_examples=...)`` picks a backend
by name from ``teacher.backends.BACKENDS`` (openai / recorded / local) and wraps it in a
``Teacher``. Every call of every backend goes the same way:

1. the request (messages + parameters) is hashed into a cache key (``ledger.cache_key``);
2. cached replies cost nothing; misses run in a pool of ``backend.max_workers`` (``cfg.mode == "batch"``:
   first as one batch, ``teacher.batch``; failed lines singly); a call at an unknown price is unpriced;
3. each finished call writes its cache entry and ledger row at once, from the calling thread (the
   only one touching SQLite), so a crash loses nothing and a re-run pays nothing;
4. the budget is checked *before* spending: ``BudgetExceeded`` when the example budget (the method's
   B, per run in the ledger) would be passed, before any call of the batch, or when the next call's
   estimated cost would pass ``cfg.cost_cap_usd`` (calls in flight finish first; ``set_budget``).

``annotate`` returns one ``Annotation`` per item; ``kept`` is True only when the rationale's own final
answer (``answers.extract_answer``) matches the gold one. ``synthesize`` returns new, unstored tail items.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from baldistill_core import store
from baldistill_core.teacher import ledger, prompts as tp
from baldistill_core.task.answers import extract_answer, is_correct, normalize_answer
from baldistill_core.config import DatasetSpec, TeacherConfig
from baldistill_core.teacher.ledger import Budget, BudgetExceeded
from baldistill_core.teacher.backends import BACKENDS, NoRecording, Reply, TeacherCallError, TeacherConfigError, TeacherError
from baldistill_core.teacher.parsing import (count_items, norm_input, parse_items, refusal_check, synthesis_check,
                                             validate_items)

__all__ = ["Annotation", "BudgetExceeded", "NoRecording", "Teacher", "TeacherCallError", "TeacherConfigError",
           "TeacherError", "build_teacher"]

Progress = Callable[[int, int], None] | None
SYNTH_BATCH = 5  # items asked per synthesis call; several calls run in parallel


@dataclass
class Annotation:
    id: str
    rationale: str
    predicted: str | None
    kept: bool
    reason: str | None = None
    cached: bool = False


@dataclass
class _Call:
    messages: list[dict]
    params: dict
    purpose: str
    context: dict
    examples: int = 0                                    # budget units asked for (upper bound)
    examples_of: Callable[[Reply], int] | None = None    # actual units once the reply is in
    check: Callable[[Reply], str | None] | None = None   # reply problem -> failed call, not cached
    key: str = ""


@dataclass
class _Outcome:
    reply: Reply | None = None
    error: str | None = None
    no_recording: bool = False
    cached: bool = False
    batch_id: str | None = None  # sent in this batch: priced at the batch rate


@dataclass
class Teacher:
    backend: object
    cfg: TeacherConfig
    conn: object
    spec: DatasetSpec
    labels: list[str] | None
    run_id: str | None = None
    budget: Budget = field(default_factory=Budget)
    _synth_seq: dict = field(default_factory=dict)
    _returned: dict = field(default_factory=dict)
    last_rejections: list = field(default_factory=list)
    check_cancel: Callable[[], None] | None = None  # raises to stop (batch polling checks it)

    name = property(lambda self: self.backend.name)
    low_quality = property(lambda self: bool(self.backend.low_quality))

    @property
    def task_type(self) -> str:
        return self.spec.task_type

    def set_budget(self, *, max_examples: int | None = None, cost_cap_usd: float | None = None) -> None:
        self.budget = Budget(max_examples, cost_cap_usd)

    def can_annotate(self, item: dict) -> bool:
        has = getattr(self.backend, "has_rationale", None)
        return True if has is None else bool(has(item["id"]))

    # ------------------------------------------------------------ calls

    def _key(self, c: _Call) -> str:
        return ledger.cache_key(self.backend.name, self.backend.model, c.messages, c.params)

    def _invoke(self, c: _Call) -> tuple[_Outcome, float]:
        t0 = time.perf_counter()
        try:
            reply = self.backend.complete(c.messages, params=c.params, purpose=c.purpose, context=c.context)
            out = _Outcome(reply=reply)
        except NoRecording as e:
            out = _Outcome(error=str(e), no_recording=True)
        except TeacherConfigError:
            raise
        except TeacherCallError as e:
            out = _Outcome(error=str(e))
        except Exception as e:  # a backend bug must fail one item, never the run
            out = _Outcome(error=f"{type(e).__name__}: {str(e)[:200]}")
        return out, time.perf_counter() - t0

    @property
    def priced(self) -> bool:  # False: a paid backend at an unknown price (calls counted, not costed)
        return getattr(self.backend, "free", False) or (
            self.cfg.price_in_per_mtok is not None and self.cfg.price_out_per_mtok is not None)

    def _cost(self, tin: int, tout: int) -> float:
        if getattr(self.backend, "free", False) or not self.priced:
            return 0.0
        return ledger.call_cost(tin, tout, self.cfg.price_in_per_mtok, self.cfg.price_out_per_mtok)

    def _record(self, c: _Call, out: _Outcome, latency: float) -> ledger.CallRecord | None:
        if out.no_recording:
            return None  # nothing was asked of any model
        if out.reply is None:
            return ledger.CallRecord(key=c.key, purpose=c.purpose, cached=False, ok=False, latency_s=latency,
                                     error=out.error)
        r = out.reply
        problem = c.check(r) if c.check else None
        if problem and not out.cached:
            out.error = problem
        cost = 0.0 if out.cached else self._cost(r.tokens_in, r.tokens_out) * (
            self.cfg.batch_price_factor if out.batch_id else 1.0)
        examples = 0 if problem else (c.examples_of(r) if c.examples_of else c.examples)
        return ledger.CallRecord(
            key=c.key, purpose=c.purpose, cached=out.cached, ok=problem is None, tokens_in=r.tokens_in,
            tokens_out=r.tokens_out, latency_s=latency, cost_usd=cost, priced=out.cached or self.priced,
            examples=examples, error=problem,
            backend=self.backend.name, model=self.backend.model,
            request=None if out.cached else {"messages": c.messages, "params": c.params},
            response=None if (out.cached or problem) else {"text": r.text, "refusal": r.refusal,
                                                            "finish_reason": r.finish_reason})

    def _settle(self, calls, i, out: _Outcome, latency: float, first_of_key, outcomes) -> tuple[list, int]:
        """Record call ``i``'s outcome (and copies for the same request later in ``calls``)."""
        outcomes[i] = out
        recs = [r for r in (self._record(calls[i], out, latency),) if r is not None]
        for j in first_of_key.get(calls[i].key, []):  # same request twice in one batch
            outcomes[j] = _Outcome(reply=out.reply, error=out.error, no_recording=out.no_recording,
                                   cached=out.reply is not None)
            if out.reply is not None and not out.error:
                recs.append(self._record(calls[j], outcomes[j], 0.0))
        return recs, 1 + len(first_of_key.get(calls[i].key, []))

    def _execute(self, calls: list[_Call], progress: Progress = None) -> list[_Outcome]:
        """Run calls through cache + ledger + budget; outcomes in the order of ``calls``."""
        # Long on purpose: the cache lookup, the budget reservation, the bounded thread pool and the
        # ledger write share one loop's state (in-flight set, reservations), and splitting them would
        # spread the pay-once invariant over several functions.
        for c in calls:
            c.key = self._key(c)
        total = len(calls)
        outcomes: list[_Outcome | None] = [None] * total
        cache = ledger.cache_get_many(self.conn, [c.key for c in calls])
        counted = ledger.counted_keys(self.conn, self.run_id, [c.key for c in calls])
        need, seen = 0, set()
        for c in calls:
            if c.examples and c.key not in counted and c.key not in seen:
                need += c.examples
                seen.add(c.key)
        self.budget.check(self.conn, self.run_id, need_examples=need)

        done = 0
        cached_recs, first_of_key, misses = [], {}, []
        for i, c in enumerate(calls):
            hit = cache.get(c.key)
            if hit is not None:
                resp = hit["response"]
                reply = Reply(text=resp.get("text") or "", tokens_in=hit["tokens_in"], tokens_out=hit["tokens_out"],
                              refusal=resp.get("refusal"), finish_reason=resp.get("finish_reason"), attempts=0)
                outcomes[i] = _Outcome(reply=reply, cached=True)
                cached_recs.append(self._record(c, outcomes[i], 0.0))
                done += 1
            elif c.key in first_of_key:
                first_of_key[c.key].append(i)
            else:
                first_of_key[c.key] = []
                misses.append(i)
        ledger.write_calls(self.conn, self.run_id, [r for r in cached_recs if r is not None])
        if progress and done:
            progress(done, total)
        if misses and self.cfg.mode == "batch" and getattr(self.backend, "supports_batch", False):
            from baldistill_core.teacher.batch import execute_batch  # the misses as one batch; returns those left
            misses, n = execute_batch(self, calls, misses, first_of_key, outcomes, _Outcome)
            done += n
            if progress:
                progress(done, total)
        if not misses:
            return outcomes  # type: ignore[return-value]

        cap = self.budget.cost_cap_usd if not getattr(self.backend, "free", False) else None
        spent = ledger.spent_cost(self.conn, self.run_id) if cap is not None else 0.0
        # Reply length estimate for the cost cap: past replies of this purpose, else max_tokens.
        avg_out = float(ledger.mean_tokens_out(self.conn, calls[misses[0]].purpose) or self.cfg.max_tokens)
        n_out = 0
        stop: str | None = None
        fatal: BaseException | None = None
        pending = deque(misses)
        inflight: dict = {}
        workers = max(1, min(int(getattr(self.backend, "max_workers", 1)), len(misses)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="teacher") as pool:
            while pending or inflight:
                while pending and len(inflight) < workers and stop is None and fatal is None:
                    i = pending[0]
                    est = 0.0
                    if cap is not None:
                        est = self._cost(ledger.messages_tokens(calls[i].messages), int(avg_out))
                        if spent + sum(e for _, e in inflight.values()) + est > cap + 1e-12:
                            stop = (f"teacher cost cap reached: ${spent:.4f} spent of ${cap:.4f}; raise cost_cap_usd "
                                    f"to continue (finished calls are cached, the run can resume)")
                            break
                    pending.popleft()
                    inflight[pool.submit(self._invoke, calls[i])] = (i, est)
                if not inflight:
                    break
                finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                recs = []
                for fut in finished:
                    i, _est = inflight.pop(fut)
                    try:
                        out, latency = fut.result()
                    except TeacherConfigError as e:
                        fatal = fatal or e
                        out, latency = _Outcome(error=str(e)), 0.0
                    new, n = self._settle(calls, i, out, latency, first_of_key, outcomes)
                    recs += new
                    spent += sum(r.cost_usd for r in new)
                    if out.reply is not None:
                        n_out += 1
                        avg_out += (out.reply.tokens_out - avg_out) / n_out
                    done += n
                ledger.write_calls(self.conn, self.run_id, recs)
                if progress:
                    progress(done, total)
        if fatal is not None:
            raise fatal
        if stop is not None:
            raise BudgetExceeded(stop)
        return outcomes  # type: ignore[return-value]

    # ------------------------------------------------------------ rationales

    def _rationale_call(self, item: dict) -> _Call:
        msgs = tp.rationale_messages(item, self.task_type, instruction=self.spec.instruction, labels=self.labels)
        params = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        return _Call(msgs, params, "rationale", {"id": item["id"], "domain": item.get("domain")}, examples=1,
                     check=refusal_check)

    def annotate(self, items: list[dict], *, progress: Progress = None) -> list[Annotation]:
        """Zero-shot CoT rationale per item (gold given); keep it only if it ends at the gold answer."""
        out: list[Annotation | None] = [None] * len(items)
        todo = []
        for k, it in enumerate(items):
            if self.can_annotate(it):
                todo.append(k)
            else:
                out[k] = Annotation(it["id"], "", None, False, "no recording")
        results = self._execute([self._rationale_call(items[k]) for k in todo], progress)
        for k, res in zip(todo, results):
            it = items[k]
            if res.reply is None:
                reason = "no recording" if res.no_recording else f"teacher error: {res.error}"
                out[k] = Annotation(it["id"], "", None, False, reason)
                continue
            text = res.reply.text
            if res.error:  # a refusal
                out[k] = Annotation(it["id"], text, None, False, res.error, res.cached)
                continue
            pred = extract_answer(text, self.task_type, self.labels)
            kept = is_correct(pred, it["answer"], self.task_type)
            reason = None if kept else ("no final answer in the rationale" if pred is None else "answer mismatch")
            out[k] = Annotation(it["id"], text, pred, kept, reason, res.cached)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------ synthesis

    def _answer_hint(self, domain: str) -> str | None:
        if self.task_type == "classification" and self.labels:
            canon = {normalize_answer(lab, "classification"): lab for lab in self.labels}
            return canon.get(normalize_answer(domain, "classification"))
        return None

    def synthesize(self, domain: str, shots: list[dict], n: int, *, avoid_texts: list[str] = (),
                   progress: Progress = None) -> list[dict]:
        """Ask for ``n`` new examples of ``domain`` in the format of ``shots`` (not stored).

        Items: {domain, input, answer, rationale, teacher_answer, verified, verify_answer,
        duplicate_of}. Malformed items and exact repeats are dropped (see ``last_rejections``).
        Raises ``NoRecording`` / ``TeacherCallError`` when no call produced any item.
        """
        if n <= 0:
            return []
        hint = self._answer_hint(domain)
        returned = self._returned.setdefault(domain, [])
        avoid = list(avoid_texts) + list(returned)
        calls = []
        sizes = [min(SYNTH_BATCH, n - s) for s in range(0, n, SYNTH_BATCH)]
        for size in sizes:
            seq = self._synth_seq.get(domain, 0)
            self._synth_seq[domain] = seq + 1
            msgs = tp.synthesis_messages(domain, shots, size, self.task_type, instruction=self.spec.instruction,
                                         labels=self.labels, avoid_texts=avoid, answer_hint=hint)
            params = {"temperature": self.cfg.synthesis_temperature,
                      "max_tokens": min(32768, self.cfg.max_tokens * size + 256),
                      "json_schema": tp.SYNTHESIS_SCHEMA if self.backend.uses_prompts else None, "seq": seq}
            calls.append(_Call(msgs, params, "synthesis", {"domain": domain, "n": size, "avoid_texts": avoid},
                               examples=size, examples_of=count_items(size), check=synthesis_check))
        results = self._execute(calls, progress)
        items, errors, self.last_rejections = [], [], []
        seen = {norm_input(t) for t in avoid} | {norm_input(s["input"]) for s in shots}
        no_rec = False
        for c, res in zip(calls, results):
            if res.reply is None or res.error:
                errors.append(res.error or "no reply")
                no_rec = no_rec or res.no_recording
                continue
            raw = parse_items(res.reply.text)[: c.context["n"]]
            good, rejected = validate_items(raw, domain, self.task_type, self.labels, seen)
            self.last_rejections += rejected
            items += good
        if hasattr(self.backend, "note_served"):
            self.backend.note_served([it["input"] for it in items])
        returned += [it["input"] for it in items]
        if not items and errors:
            exc = NoRecording if no_rec else TeacherCallError
            raise exc(f"synthesis for domain {domain!r} produced no usable items: {errors[0]}")
        for it in items:
            it["teacher_answer"] = extract_answer(it["rationale"], self.task_type, self.labels)
        if self.cfg.verify_synthetic and items:
            self.verify(items)
        return items

    def verify(self, items: list[dict], *, progress: Progress = None) -> list[dict]:
        """The teacher solves each input blind; ``verified`` = its answer matches the item's."""
        calls = [
            _Call(tp.verification_messages(it["input"], self.task_type, instruction=self.spec.instruction,
                                           labels=self.labels),
                  {"temperature": 0.0, "max_tokens": self.cfg.max_tokens}, "verification",
                  {"rationale": it.get("rationale"), "domain": it.get("domain")}, check=refusal_check)
            for it in items
        ]
        for it, res in zip(items, self._execute(calls, progress)):
            if res.reply is None or res.error:
                it["verified"], it["verify_answer"] = None, None
                continue
            ans = extract_answer(res.reply.text, self.task_type, self.labels)
            it["verify_answer"] = ans
            it["verified"] = bool(is_correct(ans, it["answer"], self.task_type))
        return items


def build_teacher(cfg: TeacherConfig, conn, *, spec: DatasetSpec, labels: list[str] | None = None,
                  run_id: str | None = None, api_key: str | None = None, recordings_dir=None,
                  budget_examples: int | None = None, **backend_kwargs) -> Teacher:
    """A ``Teacher`` for ``cfg.backend`` (openai / recorded / local) on dataset ``spec``.

    ``labels`` defaults to the dataset's label set in the workspace (classification);
    ``recordings_dir`` points the recorded teacher at another folder holding
    teacher_rationales.jsonl / teacher_synthetic.jsonl; ``budget_examples`` is the example budget
    B of the run (the cost cap comes from ``cfg.cost_cap_usd``).
    """
    if cfg.backend not in BACKENDS:
        raise TeacherConfigError(f"unknown teacher backend {cfg.backend!r}; choose one of {', '.join(BACKENDS)}")
    if recordings_dir is not None:
        d = Path(recordings_dir)
        spec = spec.model_copy(update={"recorded_rationales": str(d / "teacher_rationales.jsonl"),
                                       "recorded_synthetic": str(d / "teacher_synthetic.jsonl")})
    if labels is None and spec.task_type == "classification":
        got = store.get_dataset(conn, spec.name)
        labels = got["label_set"] if got else None
    backend = BACKENDS[cfg.backend](cfg, spec=spec, api_key=api_key,
                                      conn=conn if recordings_dir is None else None, **backend_kwargs)
    return Teacher(backend=backend, cfg=cfg, conn=conn, spec=spec, labels=labels, run_id=run_id,
                   budget=Budget(budget_examples, cfg.cost_cap_usd))
