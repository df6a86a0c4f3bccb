"""Reproduce the paper's comparison at CPU scale: Random FT CoT vs BalDistill-N vs BalDistill-A.

Same dataset, budget, seed, student and teacher for every method (by default the CPU demo preset on
the bundled Reuters R52, assets/configs/r52-cpu-demo.yaml: bundled SmolLM2-135M student, recorded
teacher, auto-approved recorded synthetic tail examples). Writes a Markdown table (macro, micro, head,
tail accuracy on the final test subset; wall time and load average per run; the live curve per stage)
to docs/results.md with the command that produced it, and ends with one
``RESULT macro_<method> <score>`` line per method (macro accuracy, a fraction).

    .venv/bin/python bench/reproduce.py                      # R52 CPU preset: ~20 min on the shared 2 cores (3 runs of ~6-7 min)
    .venv/bin/python bench/reproduce.py --dataset math_lt    # the MATH preset (scores 0 at this scale)
    .venv/bin/python bench/reproduce.py --set budget=26      # smaller / faster
    .venv/bin/python bench/reproduce.py --student tiny-llama-test --no-write   # seconds: a smoke test
    .venv/bin/python bench/reproduce.py --workspace W --report-only           # redo the table from runs in W
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from baldistill_core.evaluation import evaluate
from baldistill_core.runs import jobs
from baldistill_core.runs import records as runs
from baldistill_core.selection import select as selection  # noqa: E402
from baldistill_core.selection.methods import effective_stages  # noqa: E402
from baldistill_core.cli.run import load_config  # noqa: E402
from baldistill_core.workspace import open_workspace  # noqa: E402

METHODS = ["random_ft_cot", "baldistill_n", "baldistill_a"]
LABEL = {"random_ft_cot": "Random FT CoT", "baldistill_n": "BalDistill-N", "baldistill_a": "BalDistill-A"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="r52", help="bundled dataset whose CPU preset to run "
                    "(assets/configs/<dataset>-cpu-demo.yaml): r52 (default) or math_lt")
    ap.add_argument("--config", help="run config YAML (overrides --dataset's preset)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    ap.add_argument("--student", help="shortcut for --set student.model=... (e.g. tiny-llama-test)")
    ap.add_argument("--workspace", help="workspace folder (default: a fresh temporary one)")
    ap.add_argument("--out", default=str(REPO / "docs/results.md"))
    ap.add_argument("--no-write", action="store_true", help="do not write docs/results.md")
    ap.add_argument("--report-only", action="store_true",
                    help="do not run: rebuild the table from the finished runs in --workspace (latest per method)")
    args = ap.parse_args()
    if args.report_only and not args.workspace:
        ap.error("--report-only needs --workspace (the folder of an earlier bench run)")
    overrides = list(args.set)
    if args.student:
        overrides.append(f"student.model={args.student}")
        if args.student == "tiny-llama-test":
            overrides.append("student.preset=test-tiny")
    config = args.config or str(REPO / f"assets/configs/{args.dataset}-cpu-demo.yaml")
    base_cfg = load_config(config, overrides)
    root = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="baldistill-reproduce-"))
    ws, conn = open_workspace(root)
    results = []
    for method in args.methods.split(","):
        cfg = base_cfg.model_copy(update={"method": method, "name": f"reproduce {method}"})
        if args.report_only:
            done = [r for r in runs.list_runs(conn) if r["method"] == method and r["status"] == "finished"]
            if not done:
                print(f"no finished {method} run in {root}", file=sys.stderr)
                return 1
            run_id = done[0]["id"]
            cfg = runs.run_config(conn, run_id)
            t0 = done[0]["created_at"]
            seconds = done[0]["updated_at"] - t0
            meta = _read_meta(root).get(run_id, {})
            seconds, load = meta.get("seconds", seconds), meta.get("load")
        else:
            run_id = runs.create_run(conn, ws.runs_dir, cfg)
            t0 = time.time()
            print(f"== {method}: run {run_id} (load average {os.getloadavg()[0]:.2f})", flush=True)
            with LoadSampler() as sampler:
                code = jobs.run_worker(ws, conn, run_id, echo=lambda m: print(f"   {m}", flush=True))
            seconds = time.time() - t0
            load = sampler.summary()
            _write_meta(root, run_id, dict(seconds=seconds, load=load))
            print(f"== {method}: {seconds / 60:.1f} min, load average {load[0]:.2f} mean / {load[1]:.2f} max",
                  flush=True)
            run = runs.get_run(conn, run_id)
            if code != 0 or run["status"] != "finished":
                print(f"{method} did not finish: {run['status']} {run['error']}", file=sys.stderr)
                return 1
        test = {(m["domain"], m["metric"]): m["value"] for m in runs.metrics(conn, run_id, "test")}
        live, per_domain = {}, {}
        for m in runs.metrics(conn, run_id, "live"):
            if m["domain"] == "_macro" and m["metric"] == "accuracy":
                live[m["stage"]] = m["value"]
            elif not m["domain"].startswith("_") and m["metric"] == "accuracy":
                per_domain.setdefault(m["stage"], {})[m["domain"]] = m["value"]
        first, last = (min(per_domain), max(per_domain)) if per_domain else (None, None)
        flips = dict(gained=sorted(d for d, v in per_domain.get(last, {}).items()
                                   if v > per_domain.get(first, {}).get(d, 0)),
                     lost=sorted(d for d, v in per_domain.get(first, {}).items()
                                 if v > per_domain.get(last, {}).get(d, 0)))
        sp = runs.spend(conn, run_id)
        trained = conn.execute("SELECT COUNT(*), COUNT(DISTINCT domain) FROM selections WHERE run_id = ? AND kept = 1",
                               (run_id,)).fetchone()
        results.append(dict(method=method, run_id=run_id, seconds=seconds, stages=effective_stages(cfg),
                            macro=test.get(("_macro", "accuracy")), micro=test.get(("_micro", "accuracy")),
                            macro_f1=test.get(("_macro", "f1")), load=load, flips=flips,
                            kept=trained[0], kept_domains=trained[1],
                            head=test.get(("_head", "accuracy")), tail=test.get(("_tail", "accuracy")),
                            n=int(test.get(("_micro", "n"), 0)), live=live, selected=sp["selected"],
                            synthetic=sum((s["picked"].get("synthetic", 0)) for s in runs.stage_rows(conn, run_id)),
                            loss=[(s["train"] or {}).get("final_loss") for s in runs.stage_rows(conn, run_id)]))
        if not args.no_write and not args.report_only and len(results) < len(args.methods.split(",")):
            # A partial table after each finished method, so an interrupted bench still leaves its numbers.
            Path(args.out).write_text(_markdown(results, base_cfg, _produced(args, root), conn)
                                      + f"\n(Partial: {len(results)} of {len(args.methods.split(','))} methods "
                                      "finished when this was written.)\n", encoding="utf-8")
    table = _markdown(results, base_cfg, _produced(args, root), conn)
    print(table)
    if not args.no_write:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table, encoding="utf-8")
        print(f"wrote {args.out}")
    for r in results:
        print(f"RESULT macro_{r['method']} {r['macro']:.4f}")
    return 0


def _read_meta(root: Path) -> dict:
    f = root / "reproduce_meta.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}


def _write_meta(root: Path, run_id: str, meta: dict) -> None:
    """Wall time and load average of each run, so --report-only can rebuild the full table."""
    allm = _read_meta(root)
    allm[run_id] = meta
    (root / "reproduce_meta.json").write_text(json.dumps(allm, indent=1), encoding="utf-8")


def _produced(args, root) -> str:
    cmd = " ".join([".venv/bin/python bench/reproduce.py", *(shlex.quote(a) for a in sys.argv[1:])]).strip()
    if args.report_only:
        return (f"Runs produced by `.venv/bin/python bench/reproduce.py --workspace {root}` (config "
                f"`{os.path.relpath(args.config or REPO / f'assets/configs/{args.dataset}-cpu-demo.yaml', REPO)}`); "
                f"table rebuilt by `{cmd}`")
    return f"Produced by `{cmd}` (config `{os.path.relpath(args.config or REPO / f'assets/configs/{args.dataset}-cpu-demo.yaml', REPO)}`)"


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a run executes (other agents may
    share the CPU; the report says how busy the machine was)."""

    def __init__(self, every: float = 10.0):
        self.every, self.samples, self._stop = every, [os.getloadavg()[0]], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> tuple[float, float]:
        return sum(self.samples) / len(self.samples), max(self.samples)


def _reading(results, cfg, conn, unit) -> list[str]:
    """What the numbers do and do not show, computed from the runs (not hand-written per run)."""
    import re

    if not results or any(r["macro"] is None for r in results):
        return []
    base = [r["live"].get(-1) for r in results if r["live"].get(-1) is not None]
    if not base:
        return []
    n = max(r["n"] for r in results) or 1
    items = evaluate.eval_subset(conn, cfg.dataset, cfg.eval.live_per_domain, seed=cfg.seed)
    by_domain = {}
    for e in items:
        by_domain.setdefault(e["domain"], []).append(e)

    def named(d):  # the gold label appears as a whole word in the story itself
        pat = re.compile(rf"(?<![A-Za-z0-9\-]){re.escape(d)}(?![A-Za-z0-9\-])", re.IGNORECASE)
        return all(pat.search(e["input"]) for e in by_domain.get(d, [])) and d in by_domain

    gained = sorted({d for r in results for d in (r.get("flips") or {}).get("gained", [])})
    in_text = [d for d in gained if named(d)]
    sizes = selection.domain_sizes(conn, cfg.dataset)
    right = {d for r in results for d in (r.get("flips") or {}).get("gained", [])}
    hard = [d for d in sorted(sizes, key=sizes.get, reverse=True)[:3] if d not in right and not named(d)]
    scores = sorted((r["macro"], LABEL.get(r["method"], r["method"])) for r in results)
    a_flat = [LABEL.get(r["method"], r["method"]) for r in results
              if len(r["live"]) > 2 and r["live"].get(0) == r["live"].get(-1)]
    spread = round((scores[-1][0] - scores[0][0]) * n)
    out = ["", "What this shows: every trained method moves the base student "
           f"({_fmt(base[0])}% live, the same {n} {unit} throughout) to {_fmt(scores[0][0])}-{_fmt(scores[-1][0])}%, "
           "so distilling the teacher's rationales visibly changes per-domain accuracy within a few CPU minutes. "
           f"Of the {len(gained)} domains that turned right for some method, {len(in_text)} have their topic word "
           f"in the story itself ({', '.join(in_text[:10])}{', ...' if len(in_text) > 10 else ''}): the student "
           "mostly learned the rationale's form (see `final_predictions.jsonl` in each run folder) and to name "
           "the topic the story spells out" + (f"; the largest topics ({', '.join(hard)}), whose label word the "
           "test story does not contain, stay wrong for every method." if hard else ".")]
    out += ["", f"What it does not show: the order of the methods. {scores[-1][1]} is ahead of {scores[0][1]} by "
            f"{spread} {unit} out of {n}, from one run per method; that is suggestive at best. The methods differ "
            "mainly in which domains the budget reached (the \"trained on\" column): Random FT CoT follows the "
            f"natural distribution (mostly {' and '.join(sorted(sizes, key=sizes.get, reverse=True)[:2])}), the naive policy spreads over many domains from stage 0, "
            "and the adaptive one starts near the natural distribution and moves towards balance"
            + (f" ({', '.join(a_flat)}: no change after stage 0)." if a_flat else ".")]
    return out


def _mid(results) -> float:
    xs = [r["macro"] for r in results if r.get("macro") is not None]
    return sum(xs) / len(xs) if xs else 0.0


def _se(p: float, n: int) -> float:
    return (p * (1 - p) / n) ** 0.5 if n else 0.0


def _fmt(v):
    return "-" if v is None else f"{100 * v:.1f}"


def _groups_text(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 8 else f"{len(names)} domains ({', '.join(names[:4])}, ...)"


def _markdown(results, cfg, cmd, conn) -> str:
    sizes = selection.domain_sizes(conn, cfg.dataset)
    head, tail = evaluate.head_tail_groups(sizes)
    clf = any(r.get("macro_f1") is not None for r in results)
    unit = "stories" if clf else "problems"
    n_test = max((r["n"] for r in results), default=0)
    s = cfg.student
    lines = [
        "# Results: Random FT CoT vs BalDistill-N vs BalDistill-A (CPU scale)",
        "",
        f"{cmd} on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Dataset `{cfg.dataset}` ({len(sizes)} domains); budget B={cfg.budget} teacher examples per method, "
        f"K={cfg.stages} stages for the multi-stage methods (Random FT CoT spends B in one stage); student "
        f"`{s.model}` (preset {s.preset}: LoRA r={s.lora_r} on {', '.join(s.target_modules)}, lr {s.learning_rate:g}, "
        f"{s.epochs:g} epoch(s) per stage, batch {s.batch_size}, max_seq_len {s.max_seq_len}, inputs clipped to "
        f"{s.max_input_tokens or 'no limit of'} tokens, {s.max_new_tokens} new tokens when generating; "
        + ("a fresh adapter per stage on all data so far" if s.fresh_adapter_per_stage else
           "each later stage continues the previous adapter on its new examples only") + "); teacher "
        f"`{cfg.teacher.backend}` (the paper's recorded GPT outputs), synthetic tail examples auto-approved; "
        f"IFD candidate cap {cfg.ifd.candidate_cap_per_domain} per domain; seed {cfg.seed}.",
        f"Scores: accuracy of the extracted final answer on a fixed stratified test subset of up to "
        f"{cfg.eval.final_per_domain} per domain ({n_test} {unit} in all, the same for every method), in percent. "
        f"Macro = mean over domains, micro = over {unit}; head = {_groups_text(head)}; tail = {_groups_text(tail)} "
        f"(domains above / at or below the median training size)"
        + ("; macro F1 = mean per-label F1 (the paper's primary metric for classification)." if clf else "."),
        "",
        "| method | macro | micro | head | tail |" + (" macro F1 |" if clf else "")
        + " stages | trained on (examples / domains) | synthetic used | wall time | load avg (mean / max) |",
        "|---|---:|---:|---:|---:|" + ("---:|" if clf else "") + "---:|---:|---:|---:|---:|",
    ]
    for r in results:
        load = "-" if not r.get("load") else f"{r['load'][0]:.1f} / {r['load'][1]:.1f}"
        lines.append(f"| {LABEL.get(r['method'], r['method'])} | {_fmt(r['macro'])} | {_fmt(r['micro'])} | "
                     f"{_fmt(r['head'])} | {_fmt(r['tail'])} | " + (f"{_fmt(r.get('macro_f1'))} | " if clf else "")
                     + f"{r['stages']} | {r.get('kept', '-')} / {r.get('kept_domains', '-')} | {r['synthetic']} | "
                     f"{r['seconds'] / 60:.1f} min | {load} |")
    lines += ["", "Wall times are this project's 2-core machine's, measured while other agents shared it (the load "
              "average column; above 2 the worker runs one torch thread, see `student.threads.configure_threads`). "
              "\"Trained on\" counts the teacher-annotated examples kept after the answer check (a rationale "
              "whose answer disagrees with the gold label is dropped but still spends budget) and the domains "
              "they cover."]
    lines += ["", "Live macro accuracy after each stage (stage -1 = the base student; the live subset is "
              f"{cfg.eval.live_per_domain} per domain) and the last logged training loss of each stage:", ""]
    for r in results:
        curve = ", ".join(f"{st}: {_fmt(v)}" for st, v in sorted(r["live"].items()))
        loss = ", ".join("-" if v is None else f"{v:.3f}" for v in r["loss"])
        lines.append(f"- {LABEL.get(r['method'], r['method'])}: accuracy {curve}; loss {loss}")
    lines += ["", "Domains whose live accuracy differs between the base student and the last stage (with one "
              "live example per domain, each is one example turning right or wrong):", ""]
    for r in results:
        f = r.get("flips") or {}
        lines.append(f"- {LABEL.get(r['method'], r['method'])}: now right: {', '.join(f.get('gained', [])) or 'none'}; "
                     f"now wrong: {', '.join(f.get('lost', [])) or 'none'}")
    lines += _reading(results, cfg, conn, unit)
    if all(not r["macro"] for r in results):
        lines += ["", "Every method scores 0 here: within the preset's "
                  f"{s.max_new_tokens} new tokens the 135M student does not reach a correct final answer "
                  "before and after distillation. The runs show the loop working end to end (selection, IFD, "
                  "teacher, training, per-domain evaluation), not an accuracy effect."]
    if all(not r["synthetic"] for r in results):
        lines += ["", "No domain ran short of real candidates at this budget (every domain's pool covers its "
                  "quota at every stage), so no synthetic tail example was used: BalDistill-N and BalDistill-A "
                  "differ here only in how the budget is spread over the domains and stages."]
    lines += [
        "",
        "Read with care: at this scale (a 135M-parameter student, tens of training examples, "
        f"{cfg.eval.final_per_domain} test example(s) per domain) one {'story' if clf else 'problem'} moves a domain's score by "
        f"{100 / max(cfg.eval.final_per_domain or 1, 1):.0f} points and the macro score by about "
        f"{100 / max(len(sizes), 1):.1f} points; with {n_test} {unit} the standard error of an accuracy near "
        f"{100 * _mid(results):.0f}% is about {100 * _se(_mid(results), n_test):.0f} points, and each method ran "
        f"once (seed {cfg.seed}), so differences of a few {unit} between methods are noise. "
        "These numbers show the pipeline working end to end and whether distillation moves the student at all, "
        "not the paper's effect sizes (see docs/method.md for the paper's GPU-scale results).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
