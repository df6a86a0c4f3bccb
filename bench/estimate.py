"""The estimate made before launch against what the run then measured: time, teacher tokens, cost.

Runs each config once, through the real launch path (``jobs.submit``: the guard rails, the stored
estimate, a background worker process), in a fresh workspace and, by default, with a fresh
throughput store — the first run on a machine, so the time estimate comes from the <= 20 s probe
(``--stored`` uses this machine's stored throughputs instead, as a second run would).

* ``tiny``: ``assets/configs/test-tiny.yaml`` (2-layer test student) with an OpenAI-protocol teacher:
  the local server of the tests on 127.0.0.1, priced in the workspace's price table at
  $1 / $2 per million input / output tokens. It answers like the bundled recorded teacher: each
  problem's recorded rationale, or (for the problems nobody recorded) a recorded rationale of the
  same domain ending at the gold answer. The cost error is measured here.
* ``r52``: ``assets/configs/r52-cpu-demo.yaml`` (SmolLM2-135M, recorded teacher: free, so its cost
  error is 0 by construction). Several minutes on 2 shared cores; skip it with ``--only tiny``.

Relative error = |estimate - measured| / measured; time is the wall time from submit to the run's
end; tokens are the teacher's input + output tokens in the ledger. The RESULT lines give the
largest error over the configs run.

Run from the repo root: ``.venv/bin/python bench/estimate.py [--only tiny|r52] [--stored]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)  # worker: this checkout

import yaml  # noqa: E402
from _openai_server import FakeOpenAI  # noqa: E402

from baldistill_core.config import RunConfig  # noqa: E402
from baldistill_core.runs import estimate, jobs  # noqa: E402
from baldistill_core.runs import records as runs  # noqa: E402
from baldistill_core.teacher import ledger  # noqa: E402
from baldistill_core.workspace import open_workspace  # noqa: E402

PRICE_IN, PRICE_OUT = 1.0, 2.0
_INPUT = re.compile(r"<<<DATA input\n(.*?)\nDATA>>>", re.S)
_GOLD = re.compile(r"Correct answer:\n<<<DATA answer\n(.*?)\nDATA>>>", re.S)


class RecordedLikeServer(FakeOpenAI):
    """The tests' OpenAI-protocol server, answering rationale requests like the recorded teacher."""

    def __init__(self, dataset_dir: Path, **kw):
        super().__init__(**kw)
        train = [json.loads(x) for x in (dataset_dir / "train.jsonl").read_text().splitlines() if x.strip()]
        rats = {r["id"]: r["rationale"] for r in
                (json.loads(x) for x in (dataset_dir / "teacher_rationales.jsonl").read_text().splitlines() if x.strip())}
        self.by_input = {e["input"]: rats.get(e["id"]) for e in train}
        self.domain_of = {e["input"]: e["domain"] for e in train}
        self.by_domain: dict[str, list[str]] = {}
        for e in train:
            if e["id"] in rats:
                self.by_domain.setdefault(e["domain"], []).append(rats[e["id"]])

    def _reply_text(self, body: dict):
        user = body["messages"][-1]["content"]
        m, gold = _INPUT.search(user), _GOLD.search(user)
        if not (m and gold):
            return super()._reply_text(body)
        text = self.by_input.get(m.group(1))
        if text is None:  # nobody recorded this one: a same-domain recorded rationale, ending at the gold
            pool = self.by_domain.get(self.domain_of.get(m.group(1)), []) or [r for v in self.by_domain.values() for r in v]
            k = int(hashlib.sha256(m.group(1).encode()).hexdigest(), 16) % len(pool)
            text = pool[k].rsplit("The answer is:", 1)[0] + f"The answer is: {gold.group(1)}"
        return text, None


def _wait(conn, run_id: str, limit_s: float) -> str:
    t0 = time.time()
    while time.time() - t0 < limit_s:
        run = runs.get_run(conn, run_id)
        if run["status"] in runs.ENDED or (run["status"] != "created" and not run["worker_alive"]
                                           and time.time() - t0 > 30):
            return run["status"]
        time.sleep(0.5)
    return "timeout"


def _rel(est, got) -> float:
    if est is None:
        return float("inf")
    if got == 0:
        return 0.0 if est == 0 else float("inf")
    return abs(est - got) / abs(got)


def run_one(name: str, cfg: RunConfig, root: Path, limit_s: float) -> dict:
    ws, conn = open_workspace(root)
    table = ws.root / "prices.yaml"
    from baldistill_core.teacher import prices

    prices.workspace_table(ws.root)
    table.write_text(table.read_text().replace("models:\n", f"models:\n  bench-teacher: {{in: {PRICE_IN}, out: "
                                                            f"{PRICE_OUT}}}\n"))
    t0 = time.perf_counter()
    est = estimate.estimate_run(conn, cfg, ws_root=ws.root)
    est_s = time.perf_counter() - t0
    print("\n".join(estimate.summary_lines(est)))
    t1 = time.perf_counter()
    run_id, proc = jobs.submit(ws, conn, cfg, confirmed=True, estimate=est)
    status = _wait(conn, run_id, limit_s)
    wall = time.perf_counter() - t1
    proc.wait(timeout=60)
    led = ledger.summary(conn, run_id)
    tokens = led["tokens_in"] + led["tokens_out"]
    tin, tout = est.tokens
    res = dict(name=name, status=status, wall_s=wall, est_s=est.seconds, estimate_took_s=est_s,
               est_tokens=tin + tout, tokens=tokens, est_cost=est.cost_usd, cost=led["cost_usd"],
               time_err=_rel(est.seconds, wall), tokens_err=_rel(tin + tout, tokens),
               cost_err=_rel(est.cost_usd, led["cost_usd"]))
    from baldistill_core.runs import actuals

    print("\n".join(actuals.compare_lines(est, actuals.load(runs.get_run(conn, run_id)["folder"]))))
    print(f"[{name}] {status}: wall {wall:.1f} s vs estimate {est.seconds:.1f} s (err {res['time_err']:.3f}); "
          f"teacher tokens {tokens} vs {tin + tout} (err {res['tokens_err']:.3f}); cost ${led['cost_usd']:.6f} vs "
          f"{estimate.fmt_cost(est.cost_usd)} (err {res['cost_err']:.3f}); estimate itself took {est_s:.1f} s; "
          f"load avg {os.getloadavg()[0]:.2f}", flush=True)
    conn.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["tiny", "r52"])
    ap.add_argument("--stored", action="store_true", help="use this machine's stored throughputs (no fresh store)")
    ap.add_argument("--limit", type=float, default=900, help="seconds to wait for each run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-estimate-"))
    if not args.stored:
        os.environ["BALDISTILL_THROUGHPUTS"] = str(tmp / "throughputs.json")  # the worker inherits it
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = []
    with RecordedLikeServer(REPO / "assets" / "datasets" / "math_lt") as server:
        if args.only in (None, "tiny"):
            raw = yaml.safe_load((REPO / "assets" / "configs" / "test-tiny.yaml").read_text())
            raw["teacher"] = dict(backend="openai", model="bench-teacher", base_url=server.base_url,
                                  api_key_env="BENCH_API_KEY")  # priced by the workspace's table
            cfg = RunConfig.model_validate(raw)
            results.append(run_one("tiny", cfg, tmp / "ws-tiny", args.limit))
    if args.only in (None, "r52"):
        cfg = RunConfig.from_yaml(REPO / "assets" / "configs" / "r52-cpu-demo.yaml")
        results.append(run_one("r52", cfg, tmp / "ws-r52", args.limit))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for r in results:  # per config: a seconds-long tiny run is mostly fixed costs, the R52 demo is a real run
        print(f"RESULT estimate_time_rel_err_{r['name']} {r['time_err']:.3f} (target <= 0.3; wall {r['wall_s']:.0f} s, "
              f"estimate {r['est_s']:.0f} s)")
    print(f"RESULT estimate_time_rel_err {max(r['time_err'] for r in results):.3f} (target <= 0.3)")
    print(f"RESULT estimate_tokens_rel_err {max(r['tokens_err'] for r in results):.3f} (target <= 0.1)")
    print(f"RESULT estimate_cost_rel_err {max(r['cost_err'] for r in results):.3f} (target <= 0.1)")


if __name__ == "__main__":
    main()
