"""`baldistill run`, `runs ...`, `preview`, `evaluate`, `export`: the run verbs.

`run <config.yaml>` creates a run and executes it in the foreground (or with --detach in a
background worker); `run --run-id ID` is the worker entry the UI and `runs resume` start.
"""

from __future__ import annotations

from baldistill_core.errors import ConfigError

import json
import time
from typing import get_args

from baldistill_core.config import StudentConfig, TrackerBackend
from baldistill_core.workspace import open_workspace


def register(sub, common) -> None:
    # Long on purpose: a flat list of argparse verbs and flags, read top to bottom like `--help`.
    p = sub.add_parser("run", parents=[common], help="create and execute a run from a YAML config (or resume one)")
    p.add_argument("config", nargs="?", help="run config YAML (see assets/configs/)")
    p.add_argument("--run-id", help="execute (resume) an existing run: the background worker's entry point")
    p.add_argument("--detach", action="store_true", help="start a background worker and return at once")
    p.add_argument("--yes", action="store_true",
                   help="confirm a run estimated to take longer than confirm_above_minutes or to cost more than the cap")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set budget=42 --set student.epochs=1")
    p.add_argument("--tracker", choices=list(get_args(TrackerBackend)),
                   help="report to this experiment tracker (= --set tracking.backend=...)")
    p.add_argument("--tracker-project", help="tracker project / experiment name (= --set tracking.project=...)")
    p.add_argument("--tracker-uri", help="MLflow tracking URI or the tracker's folder (= --set tracking.uri=...)")
    p.add_argument("--engine", choices=list(get_args(StudentConfig.model_fields["engine"].annotation)),
                   help="generation engine for IFD scoring and evaluation (= --set student.engine=...)")
    p.set_defaults(func=_run)

    rs = sub.add_parser("runs", help="list, inspect, cancel and resume runs")
    rsub = rs.add_subparsers(dest="runs_command", required=True)
    ls = rsub.add_parser("list", parents=[common], help="list runs")
    ls.add_argument("--dataset")
    ls.set_defaults(func=_list)
    for name, fn, hlp in (("show", _show, "status, stages, spend, metrics and log tail of a run"),
                          ("cancel", _cancel, "cancel a run (its worker stops at the next step)"),
                          ("resume", _resume, "resume an interrupted, failed, cancelled or review-waiting run"),
                          ("delete", _delete, "delete a stopped run: its rows and folder (adapters included)"),
                          ("rename", _rename, "change a run's display name")):
        q = rsub.add_parser(name, parents=[common], help=hlp)
        q.add_argument("run_id")
        if name == "cancel":
            q.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the worker to stop")
            q.add_argument("--kill", action="store_true", help="terminate the worker if it has not stopped by then")
        if name == "resume":
            q.add_argument("--foreground", action="store_true", help="run in this process instead of a worker")
            q.add_argument("--teacher", action="append", default=[], metavar="KEY=VALUE",
                           help="resume with another teacher, e.g. --teacher backend=openai --teacher "
                                "model=gpt-4o-mini (recorded in the run's log)")
        if name == "delete":
            q.add_argument("--yes", action="store_true", help="confirm the deletion")
        if name == "rename":
            q.add_argument("name")
        if name == "show":
            q.add_argument("--json", action="store_true")
        q.set_defaults(func=fn)

    cp = rsub.add_parser("compare", parents=[common],
                         help="scores with 95% bootstrap intervals; the paired difference of the first run and each other")
    cp.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    cp.add_argument("--boot", type=int, default=1000, help="bootstrap draws (default 1000)")
    cp.add_argument("--seed", type=int, default=0, help="bootstrap seed: the same seed gives the same intervals")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=_compare)

    pv = sub.add_parser("preview", parents=[common], help="the plan of one stage: quotas, head picks, tail gaps")
    pv.add_argument("config", help="run config YAML")
    pv.add_argument("--stage", type=int, default=0)
    pv.add_argument("--run-id", help="use this run's pool and its stage-(i-1) student for IFD scores")
    pv.set_defaults(func=_preview)

    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a run's final student (or a base model)")
    ev.add_argument("run_id", nargs="?", help="run whose final adapter to evaluate")
    ev.add_argument("--dataset", help="with --model: dataset to evaluate on")
    ev.add_argument("--model", help="evaluate this base student (no adapter), e.g. smollm2-135m")
    ev.add_argument("--per-domain", type=int, default=None, help="examples per domain (default: the run's final cap)")
    ev.add_argument("--stage", type=int, help="evaluate this stage's adapter instead of the last one")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_evaluate)

    ex = sub.add_parser("export", parents=[common], help="export a run's data, adapter, merged model or metrics")
    ex.add_argument("run_id")
    ex.add_argument("--format", "-f", required=True, choices=["jsonl", "datasets", "csv", "adapter", "merged"])
    ex.add_argument("--out", "-o", help="output path (default: <run folder>/export/<format>)")
    ex.set_defaults(func=_export)


def _apply_overrides(data: dict, pairs: list[str]) -> dict:
    import yaml

    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: use KEY=VALUE, e.g. --set budget=42")
        key, value = pair.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return data


def load_config(path: str, overrides: list[str] | None = None):
    from pathlib import Path

    import yaml

    from baldistill_core.config import RunConfig

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: run config not found; presets are in assets/configs/")
    raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    return RunConfig.model_validate(_apply_overrides(raw, overrides or []))


def _run(args) -> int:
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs

    # A run's worker needs only the run's own dataset, which is in the workspace already: it never
    # imports the demos (two workers starting together would race to).
    ws, conn = open_workspace(args.workspace, bundled=not args.run_id)
    if args.run_id:
        return jobs.run_worker(ws, conn, args.run_id, echo=lambda m: print(m, flush=True))
    if not args.config:
        raise ConfigError("give a run config YAML (e.g. assets/configs/math_lt-cpu-demo.yaml) or --run-id ID")
    shortcuts = [("tracking.backend", args.tracker), ("tracking.project", args.tracker_project),
                 ("tracking.uri", args.tracker_uri), ("student.engine", args.engine)]
    cfg = load_config(args.config, list(args.set) + [f"{k}={v}" for k, v in shortcuts if v])
    from baldistill_core.runs import estimate

    est = estimate.estimate_run(conn, cfg, ws_root=ws.root)
    print("\n".join(estimate.summary_lines(est)), flush=True)
    if args.detach:
        run_id, proc = jobs.submit(ws, conn, cfg, confirmed=args.yes, estimate=est)
        print(f"run {run_id} started in the background (pid {proc.pid}); follow it with "
              f"`baldistill runs show {run_id}`")
        return 0
    from baldistill_core.teacher.preflight import check_teacher

    for w in check_teacher(conn, cfg).raise_if_blocked():
        print(f"warning: {w}")
    run_id = jobs.create_checked(ws, conn, cfg, confirmed=args.yes, estimate=est)
    print(f"run {run_id}: folder {ws.runs_dir / run_id}", flush=True)
    code = jobs.run_worker(ws, conn, run_id, echo=lambda m: print(m, flush=True))
    print(f"run {run_id}: {runs.get_run(conn, run_id)['status']}")
    return code


def _fmt_time(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _list(args) -> int:
    from baldistill_core.runs import records as runs

    _, conn = open_workspace(args.workspace)
    rows = runs.list_runs(conn, args.dataset)
    if not rows:
        print("no runs yet: start one with `baldistill run assets/configs/<preset>.yaml`")
    for r in rows:
        print(f"{r['id']:<52} {r['method']:<16} {r['dataset']:<10} {r['state']:<16} "
              f"stage {r['current_stage'] if r['current_stage'] is not None else '-'} {r['current_step'] or ''}")
    return 0


def _show(args) -> int:
    from baldistill_core.evaluation import evaluate
    from baldistill_core.runs import records as runs
    from baldistill_core.selection.methods import label as method_label

    _, conn = open_workspace(args.workspace)
    run = runs.get_run(conn, args.run_id)
    backend = (run["config"].get("teacher") or {}).get("backend", "recorded")
    info = dict(run=run, progress=runs.progress(conn, args.run_id), stages=runs.stage_rows(conn, args.run_id),
                spend=runs.spend(conn, args.run_id), tracker=runs.tracker(conn, args.run_id))
    if args.json:
        from baldistill_core.runs import actuals, estimate

        info["metrics"] = runs.metrics(conn, args.run_id)
        info["estimate_vs_actual"] = actuals.compare(estimate.load(run["folder"]), actuals.load(run["folder"]))
        print(json.dumps(info, default=str))
        return 0
    pr = info["progress"]
    print(f"{run['id']}  {method_label(run['method'])} on {run['dataset']}  state {run['state']}"
          + (f"  error: {run['error']}" if run["error"] else ""))
    eta = f", ETA {pr['eta_s']:.0f}s" if pr["eta_s"] is not None else ""
    print(f"stages done {pr['stages_done']}/{pr['stages']}, now: {pr['step'] or '-'}{eta}")
    tr = runs.tracker(conn, args.run_id)
    if tr:
        print(f"tracker {tr['backend']} ({tr['status']}): run {tr['tracker_run_id'] or '-'}"
              + (f", open with: {tr['url']}" if tr["url"] else "") + (f" — {tr['message']}" if tr["message"] else ""))
    sp = info["spend"]
    print(f"budget {sp['budget']} examples; selected {sp['selected']}; teacher calls {sp['calls']} "
          f"({sp['paid_calls']} {'recorded replays' if backend == 'recorded' else 'paid'}, "
          f"{sp['cached_calls']} cached), {sp['cost_text']}")
    for s in info["stages"]:
        tr = s["train"] or {}
        print(f"  stage {s['stage']}: {s['status']:<10} picked {s['picked']} kept {s['kept']} dropped {s['dropped']}"
              f" steps {tr.get('steps', '-')} loss {tr.get('final_loss', '-')}")
    by = {}
    for m in runs.metrics(conn, args.run_id):
        if m["split"] in ("live", "test") and m["domain"] in ("_macro", "_micro", "_head", "_tail"):
            group = evaluate.group_name(m["domain"]).replace(" domains", "")  # large / small: the size groups
            by.setdefault((m["split"], m["stage"]), {})[f"{group}_{m['metric']}"] = m["value"]
    for (split, stage), vals in sorted(by.items()):
        print(f"  {split} stage {stage}: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(vals.items())
                                                     if not k.endswith("_n")))
    from baldistill_core.runs import actuals, estimate

    print("\n".join(actuals.compare_lines(estimate.load(run["folder"]), actuals.load(run["folder"]))))
    print("log:")
    for line in runs.log_tail(conn, args.run_id, 15):
        print(f"  {_fmt_time(line['at'])} {line['level']:<7} {line['message'].splitlines()[-1][:160]}")
    return 0


def _compare(args) -> int:
    from dataclasses import asdict

    from baldistill_core.reports import compare, significance

    _, conn = open_workspace(args.workspace)
    scores = significance.add_intervals(conn, compare.compare(conn, args.run_ids), n_boot=args.boot, seed=args.seed)
    pairs = [p for b in scores[1:]
             if (p := significance.paired(conn, scores[0], b, n_boot=args.boot, seed=args.seed)) is not None]
    if args.json:
        for s in scores:
            s["ci"] = {k: asdict(v) for k, v in (s["ci"] or {}).items()} or None
        for p in pairs:
            p["diffs"] = {k: asdict(v) for k, v in p["diffs"].items()}
        print(json.dumps(dict(runs=scores, pairs=pairs), default=str))
        return 0
    print(significance.format_report(scores, pairs))
    return 0


def _cancel(args) -> int:
    from baldistill_core.runs import jobs

    _, conn = open_workspace(args.workspace)
    status = jobs.cancel(conn, args.run_id, wait_s=args.wait, kill_after=args.kill)
    print(f"run {args.run_id}: {status}")
    return 0


def _resume(args) -> int:
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs

    ws, conn = open_workspace(args.workspace, bundled=False)  # an existing run: no demo import
    teacher = None
    if args.teacher:
        from baldistill_core.config import TeacherConfig

        current = runs.run_config(conn, args.run_id).teacher.model_dump()
        teacher = TeacherConfig.model_validate(_apply_overrides(current, args.teacher))
    if args.foreground:
        from baldistill_core.runs import manage
        from baldistill_core.teacher.preflight import check_teacher

        run = runs.get_run(conn, args.run_id)
        if run["worker_alive"]:
            raise runs.RunError(f"run {args.run_id} is running (process {run['pid']})")
        if teacher is not None:
            cfg = runs.run_config(conn, args.run_id).model_copy(update={"teacher": teacher})
            check_teacher(conn, cfg).raise_if_blocked()
            manage.change_teacher(conn, args.run_id, teacher)
        return jobs.run_worker(ws, conn, args.run_id, echo=lambda m: print(m, flush=True))
    proc = jobs.resume(ws, conn, args.run_id, teacher=teacher)
    print(f"run {args.run_id} resumed in the background (pid {proc.pid})")
    return 0


def _delete(args) -> int:
    from baldistill_core.runs import manage
    from baldistill_core.runs import records as runs

    _, conn = open_workspace(args.workspace, bundled=False)
    run = runs.get_run(conn, args.run_id)
    if not args.yes:
        raise ValueError(f"deleting run {args.run_id} ({run['name']}, {run['state']}) and its folder cannot be "
                         f"undone; add --yes to confirm")
    manage.delete_run(conn, args.run_id)
    print(f"deleted run {args.run_id}")
    return 0


def _rename(args) -> int:
    from baldistill_core.runs import manage

    _, conn = open_workspace(args.workspace, bundled=False)
    manage.rename_run(conn, args.run_id, args.name)
    print(f"run {args.run_id} is now called {args.name!r}")
    return 0


def _preview(args) -> int:
    from baldistill_core.runs import preview

    _, conn = open_workspace(args.workspace)
    cfg = load_config(args.config)
    scorer = None
    if args.run_id and args.stage > 0:
        from baldistill_core.runs.scoring import stage_scorer

        scorer = stage_scorer(conn, args.run_id, args.stage - 1)
    pv = preview.preview_stage(conn, cfg, args.stage, run_id=args.run_id, scorer=scorer)
    print(preview.format_preview(pv))
    return 0


def _evaluate(args) -> int:
    from baldistill_core.runs.evaluation import evaluate_run

    _, conn = open_workspace(args.workspace)
    report = evaluate_run(conn, run_id=args.run_id, model=args.model, dataset=args.dataset,
                                   per_domain=args.per_domain, stage=args.stage)
    if args.json:
        print(json.dumps(dict(per_domain=report.per_domain, overall=report.overall)))
        return 0
    print(f"{'domain':<28} {'n':>5} " + " ".join(f"{m:>9}" for m in _metric_names(report)))
    for d, ms in list(report.per_domain.items()) + list(report.overall.items()):
        print(f"{d[:28]:<28} {int(ms.get('n', 0)):>5} "
              + " ".join(f"{ms.get(m, float('nan')):>9.3f}" for m in _metric_names(report)))
    return 0


def _metric_names(report) -> list[str]:
    names = []
    for ms in report.per_domain.values():
        names += [m for m in ms if m != "n" and m not in names]
    return names


def _export(args) -> int:
    from pathlib import Path

    from baldistill_core.reports import export
    from baldistill_core.runs import records as runs

    _, conn = open_workspace(args.workspace)
    run = runs.get_run(conn, args.run_id)
    suffix = {"jsonl": "train.jsonl", "csv": "metrics.csv"}.get(args.format, args.format)
    out = Path(args.out) if args.out else Path(run["folder"]) / "export" / suffix
    path = export.export_run(conn, args.run_id, args.format, out)
    print(f"wrote {path}")
    return 0

