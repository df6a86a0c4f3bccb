"""Render time of every page once its data is cached (issue 7: no page over 1 s).

Builds a scratch workspace with the bundled datasets, recorded synthetic examples in the review
queue, and two evaluated runs (written through the real run-record functions), then renders each
page with streamlit's AppTest: one warm-up run, then the median of ``REPEATS`` timed runs. The
reference is a page with only a title, timed the same way in the same process, so the ratio shows
what a page costs above the harness itself.

    .venv/bin/python bench/pages.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPEATS = 3
PAGES = [("home", {}), ("data", {"dataset": "math_lt"}), ("map", {"dataset": "math_lt"}),
         ("plan", {"dataset": "r52"}), ("review", {"dataset": "math_lt"}), ("training", {"dataset": "math_lt"}),
         ("compare", {"dataset": "math_lt"})]


def _fake_run(ws, conn, name: str, method: str, scores: dict[str, float]) -> str:
    from baldistill_core.runs import records as runs
    from baldistill_core.config import RunConfig

    rid = runs.create_run(conn, ws.runs_dir, RunConfig(dataset="math_lt", name=name, method=method, budget=70,
                                                       stages=2))
    for st in (0, 1):
        runs.set_stage(conn, rid, st, "done", quota={})
        vals = {d: v * (0.6 + 0.4 * st) for d, v in scores.items()}
        rows = [(d, "accuracy", v) for d, v in vals.items()]
        rows += [(g, "accuracy", sum(vals.values()) / len(vals)) for g in ("_macro", "_micro", "_head", "_tail")]
        runs.write_metrics(conn, rid, st, "live", rows, step=st)
        for step in range(1, 6):
            runs.write_metrics(conn, rid, st, "train", [("_all", "loss", 2.0 / step)], step=step, replace=False)
    for i in range(60):
        runs.log(conn, rid, f"log line {i}")
    runs.set_status(conn, rid, "finished")
    return rid


def setup(root: Path) -> str:
    from baldistill_core import store
    from baldistill_core.synthetic import synthesis
    from baldistill_core.data.loading import dataset_spec
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(root)
    synthesis.import_recorded_synthetic(conn, dataset_spec(conn, "math_lt"), per_domain=20)
    doms = list(store.domain_counts(conn, "math_lt"))
    _fake_run(ws, conn, "adaptive", "baldistill_a", {d: 0.3 + 0.05 * i for i, d in enumerate(doms)})
    rid = _fake_run(ws, conn, "random", "random_ft_cot", {d: 0.6 - 0.05 * i for i, d in enumerate(doms)})
    conn.close()
    return rid


def time_page(script: Path, query: dict, state: dict | None = None) -> tuple[float, list[str]]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(script), default_timeout=300)
    for k, v in query.items():
        at.query_params[k] = v
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.run()  # warm-up: fills st.cache_data / st.cache_resource
    problems = [str(e.value)[:200] for e in at.exception]
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
    problems += [str(e.value)[:200] for e in at.exception]
    return statistics.median(times), problems


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        os.environ["BALDISTILL_WORKSPACE"] = str(root)
        t0 = time.perf_counter()
        run_id = setup(root)
        print(f"workspace ready in {time.perf_counter() - t0:.1f}s (bundled data, 80 synthetic, 2 runs)")
        ref = Path(tmp) / "reference.py"
        ref.write_text("import streamlit as st\nst.title('reference')\n", encoding="utf-8")
        ref_s, _ = time_page(ref, {})
        print(f"{'reference (title only)':<24} {ref_s:7.3f} s")
        worst, worst_name, failed = 0.0, "", []
        for name, query in PAGES:
            script = REPO / "pages" / f"{name}.py"
            if not script.exists():
                print(f"{name:<24} (page not present)")
                continue
            if name == "training":
                query = {**query, "run": run_id}
            s, problems = time_page(script, query, {"reviewer_name": "bench"} if name == "review" else None)
            print(f"{name:<24} {s:7.3f} s   ({s / ref_s:5.1f}x reference)" + (f"  ERROR {problems[0]}" if problems else ""))
            if problems:
                failed.append(name)
            if s > worst:
                worst, worst_name = s, name
        print(f"slowest page: {worst_name} ({worst / ref_s:.0f}x the title-only reference)")
        if failed:
            print(f"pages with errors: {', '.join(failed)}")
        print(f"RESULT slowest_page_s {worst:.3f} (target < 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
