"""`baldistill teacher ...`: annotate with rationales, synthesize tail examples, fill the review queue."""

from __future__ import annotations

from baldistill_core.errors import DataError

import json
import sys
import time
from collections import Counter

from baldistill_core import store
from baldistill_core.teacher import ledger
from baldistill_core.config import TeacherConfig
from baldistill_core.data.loading import dataset_spec
from baldistill_core.synthetic.synthesis import import_recorded_synthetic, synthesize_for_gap
from baldistill_core.teacher.client import BudgetExceeded, TeacherError, build_teacher
from baldistill_core.workspace import open_workspace

_F = TeacherConfig.model_fields


def _teacher_args(p) -> None:
    g = p.add_argument_group("teacher (defaults from TeacherConfig)")
    g.add_argument("--backend", choices=["recorded", "openai", "local"], default=None,
                   help=f"{_F['backend'].description} (default: {_F['backend'].default})")
    g.add_argument("--model", default=None, help=f"{_F['model'].description} (default: {_F['model'].default})")
    g.add_argument("--base-url", default=None, help=_F["base_url"].description)
    g.add_argument("--api-key-env", default=None, help=_F["api_key_env"].description)
    g.add_argument("--concurrency", type=int, default=None, help=_F["concurrency"].description)
    g.add_argument("--timeout-s", type=float, default=None, help=_F["timeout_s"].description)
    g.add_argument("--max-retries", type=int, default=None, help=_F["max_retries"].description)
    g.add_argument("--cost-cap-usd", type=float, default=None, help=_F["cost_cap_usd"].description)
    g.add_argument("--mode", choices=["online", "batch"], default=None, help=_F["mode"].description)
    g.add_argument("--batch-poll-s", type=float, default=None, help=_F["batch_poll_s"].description)
    g.add_argument("--budget", type=int, default=None, help="example budget for this command (default: none)")
    g.add_argument("--run-id", default=None, help="account the calls to this run id (ledger / budget)")
    g.add_argument("--json", action="store_true", help="print the result as JSON")


def register(sub, common) -> None:
    p = sub.add_parser("teacher", help="teacher rationales, tail synthesis, recorded review queue")
    tsub = p.add_subparsers(dest="teacher_command", required=True)

    an = tsub.add_parser("annotate", parents=[common], help="write rationales for training examples")
    an.add_argument("dataset")
    an.add_argument("--limit", type=int, default=None, help="at most this many examples")
    an.add_argument("--domain", default=None, help="only this domain")
    _teacher_args(an)
    an.set_defaults(func=_annotate)

    sy = tsub.add_parser("synthesize", parents=[common], help="synthesize tail examples into the review queue")
    sy.add_argument("dataset")
    sy.add_argument("--domain", required=True)
    sy.add_argument("-n", type=int, required=True, help="how many examples")
    sy.add_argument("--shots", type=int, default=3, help="real in-domain examples shown to the teacher")
    sy.add_argument("--no-verify", action="store_true", help="skip the blind verification call")
    _teacher_args(sy)
    sy.set_defaults(func=_synthesize)

    im = tsub.add_parser("import-recorded", parents=[common],
                         help="fill the review queue with the dataset's recorded synthetic examples")
    im.add_argument("dataset")
    im.add_argument("--per-domain", type=int, default=None, help="at most this many per domain")
    im.set_defaults(func=_import_recorded)

    ti = tsub.add_parser("import", parents=[common],
                         help="import your own teacher rationales and/or synthetic examples (JSONL, CSV, Parquet, or "
                              "an OpenAI/vLLM batch result file)")
    ti.add_argument("dataset")
    ti.add_argument("--rationales", default=None, help="file of (id, rationale[, model]) rows")
    ti.add_argument("--synthetic", default=None, help="file of (domain, input, answer, rationale[, model]) rows")
    ti.add_argument("--teacher-model", default=None, help="teacher model name for rows without a model column")
    for fld, dflt in (("id", "id"), ("rationale", "rationale"), ("model", "model")):
        ti.add_argument(f"--{fld}-field", default=dflt, help=f"rationales file: column of the {fld} (default {dflt})")
    for fld in ("domain", "input", "answer", "rationale", "model"):
        ti.add_argument(f"--synthetic-{fld}-field", default=fld,
                        help=f"synthetic file: column of the {fld} (default {fld})")
    ti.add_argument("--json", action="store_true", help="print the result as JSON")
    ti.set_defaults(func=_import_outputs)

    bf = tsub.add_parser("batch-file", parents=[common],
                         help="write the rationale requests of a dataset as a batch request file (OpenAI batch / "
                              "vLLM offline runner format), without sending anything")
    bf.add_argument("dataset")
    bf.add_argument("--out", required=True, help="the JSONL request file to write")
    bf.add_argument("--limit", type=int, default=None, help="at most this many examples")
    bf.add_argument("--domain", default=None, help="only this domain")
    bf.add_argument("--model", default=None, help=f"{_F['model'].description} (default: {_F['model'].default})")
    bf.set_defaults(func=_batch_file)

    lg = tsub.add_parser("ledger", parents=[common], help="teacher calls, tokens and cost so far")
    lg.add_argument("--run-id", default=None)
    lg.set_defaults(func=_ledger)


def _config(args) -> TeacherConfig:
    over = {k: getattr(args, k) for k in ("backend", "model", "base_url", "api_key_env", "concurrency",
                                          "timeout_s", "max_retries", "cost_cap_usd", "mode", "batch_poll_s")
            if getattr(args, k, None) is not None}
    if getattr(args, "no_verify", False):
        over["verify_synthetic"] = False
    return TeacherConfig(**over)


class ProgressBar:
    """A one-line stderr bar: ``[#####-----] 12/40 3.1/s``."""

    def __init__(self, label: str, width: int = 30, stream=None):
        self.label, self.width, self.t0 = label, width, time.time()
        self.stream = stream or sys.stderr  # looked up now, not at import (tests swap sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        fill = int(frac * self.width)
        rate = done / max(1e-9, time.time() - self.t0)
        self.stream.write(f"\r{self.label} [{'#' * fill}{'-' * (self.width - fill)}] {done}/{total} {rate:.1f}/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _annotate(args) -> int:
    _, conn = open_workspace(args.workspace)
    spec = dataset_spec(conn, args.dataset)
    teacher = build_teacher(_config(args), conn, spec=spec, run_id=args.run_id, budget_examples=args.budget)
    items = store.examples(conn, args.dataset, "train", domain=args.domain, limit=args.limit)
    if not items:
        raise DataError(f"no training examples in {args.dataset!r}" + (f" for domain {args.domain!r}" if args.domain else ""))
    try:
        anns = teacher.annotate(items, progress=ProgressBar("annotate"))
    except BudgetExceeded as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 3
    except TeacherError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reasons = Counter(a.reason for a in anns if not a.kept)
    result = {"examples": len(anns), "kept": sum(a.kept for a in anns), "dropped": dict(reasons),
              "cached": sum(a.cached for a in anns), "ledger": ledger.summary(conn, args.run_id)}
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(f"{result['kept']} of {len(anns)} rationales kept ({result['cached']} from cache)"
              + (f"; dropped: {', '.join(f'{k} x{v}' for k, v in reasons.items())}" if reasons else ""))
        s = result["ledger"]
        print(f"ledger: {s['calls']} calls ({s['cached_calls']} cached, {s['failed_calls']} failed), "
              f"{s['tokens_in']}+{s['tokens_out']} tokens, {ledger.cost_text(s)}, {s['examples']} examples")
        if teacher.low_quality:
            print("note: the local teacher is low quality; use it for offline trials only")
    return 0


def _synthesize(args) -> int:
    _, conn = open_workspace(args.workspace)
    spec = dataset_spec(conn, args.dataset)
    shots = store.examples(conn, args.dataset, "train", domain=args.domain, limit=args.shots)
    if not shots:
        raise DataError(f"domain {args.domain!r} has no training examples in {args.dataset!r} to show the teacher")
    teacher = build_teacher(_config(args), conn, spec=spec, run_id=args.run_id, budget_examples=args.budget)
    bar = ProgressBar("synthesize")
    try:
        ids = synthesize_for_gap(teacher, conn, spec, args.domain, args.n, run_id=args.run_id, stage=None, shots=shots)
    except BudgetExceeded as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 3
    except TeacherError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bar(1, 1)
    if args.json:
        print(json.dumps({"ids": ids, "rejected": teacher.last_rejections}))
    else:
        print(f"{len(ids)} synthetic {args.domain!r} examples pending review (Review page or `baldistill review`)")
        for why, k in Counter(teacher.last_rejections).items():
            print(f"  rejected {k}: {why}")
    return 0


def _import_recorded(args) -> int:
    _, conn = open_workspace(args.workspace)
    spec = dataset_spec(conn, args.dataset)
    n = import_recorded_synthetic(conn, spec, per_domain=args.per_domain)
    print(f"{n} recorded synthetic examples added to the review queue of {args.dataset}")
    return 0


def _ledger(args) -> int:
    _, conn = open_workspace(args.workspace)
    print(json.dumps(ledger.summary(conn, args.run_id), indent=2, default=str))
    return 0


def _import_outputs(args) -> int:
    from baldistill_core.teacher.imports import RationaleFields, SyntheticFields, import_teacher_outputs

    _, conn = open_workspace(args.workspace)
    rep = import_teacher_outputs(
        conn, args.dataset, rationales=args.rationales, synthetic=args.synthetic, teacher_model=args.teacher_model,
        rationale_fields=RationaleFields(args.id_field, args.rationale_field, args.model_field),
        synthetic_fields=SyntheticFields(*(getattr(args, f"synthetic_{f}_field")
                                           for f in ("domain", "input", "answer", "rationale", "model"))))
    if args.json:
        print(json.dumps(rep.as_dict()))
        return 0
    if args.rationales:
        print(f"rationales: {'unchanged (this file was imported already)' if rep.rationales_unchanged else 'imported'}"
              f" — {rep.rationales} for {args.dataset}, {rep.rationales_flagged} flagged (their final answer is not"
              f" the gold one: a run drops them); a run with teacher backend 'recorded' replays them")
    if args.synthetic:
        if rep.synthetic_unchanged:
            print("synthetic: unchanged (this file was imported already)")
        else:
            print(f"synthetic: {rep.synthetic_new} new pending review, {rep.synthetic_updated} updated, "
                  f"{rep.synthetic_kept_reviewed} already reviewed (kept), {rep.synthetic_removed} removed; flagged: "
                  f"{rep.synthetic_near_train} near a train input, {rep.synthetic_flagged} answer disagreement")
    return 0


def _batch_file(args) -> int:
    from baldistill_core.teacher.batch import write_request_file

    _, conn = open_workspace(args.workspace)
    spec = dataset_spec(conn, args.dataset)
    cfg = TeacherConfig(backend="openai", **({"model": args.model} if args.model else {}))
    teacher = build_teacher(cfg, conn, spec=spec, api_key="not-sent")  # nothing is sent: the key is never used
    items = store.examples(conn, args.dataset, "train", domain=args.domain, limit=args.limit)
    if not items:
        raise ValueError(f"no training examples in {args.dataset!r}" + (f" for domain {args.domain!r}" if args.domain else ""))
    n = write_request_file(teacher, items, args.out)
    print(f"{n} requests written to {args.out}; run them, e.g. `python -m vllm.entrypoints.openai.run_batch -i "
          f"{args.out} -o results.jsonl --model {cfg.model}`, then `baldistill teacher import {args.dataset} "
          f"--rationales results.jsonl`")
    return 0
