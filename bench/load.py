"""Load test: 20 concurrent reviewers deciding on synthetic examples in one workspace for 60 s, while a
worker process writes metrics and logs as a training run does.

Reviewers are threads of one process, each with its own SQLite connection — the shape of the Streamlit
server, whose sessions are threads — and they go through the same write path as the Review page
(``review.approve`` / ``review.reject``). The writer is a separate OS process, like a run's worker.

Lost decision = a call that returned success but whose decision is missing from the audit trail, or an
example whose final state is not its reviewer's last successful decision. 10 % of calls target a shared
"hot" set with the version the reviewer last saw, so real conflicts happen: those must fail with a clear
StaleDecision, never silently overwrite. Any "database is locked" error reaching a reviewer is counted.

    .venv/bin/python bench/load.py [--seconds 60] [--reviewers 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baldistill_core import store
from baldistill_core.synthetic import review
from baldistill_core.runs import records as runs  # noqa: E402
from baldistill_core.data.loading import dataset_spec  # noqa: E402
from baldistill_core.synthetic.synthesis import import_recorded_synthetic  # noqa: E402
from baldistill_core.workspace import open_workspace  # noqa: E402


def writer(db_path: str, stop_at: float, out: "mp.Queue") -> None:
    conn = store.connect(db_path)
    n = errors = 0
    while time.time() < stop_at:
        try:
            runs.write_metrics(conn, "load-bench", n % 5, "live",
                               [(f"d{i}", "accuracy", random.random()) for i in range(52)], step=n, replace=True)
            conn.execute("INSERT INTO logs(run_id, level, message, at) VALUES (?,?,?,?)",
                         ("load-bench", "info", f"step {n}", time.time()))
            n += 1
        except sqlite3.OperationalError:
            errors += 1
        time.sleep(0.02)
    out.put((n, errors))


def main() -> int:
    # Long on purpose: a benchmark script's steps in the order it runs them.
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--reviewers", type=int, default=20)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="baldistill-load-"))
    ws, conn = open_workspace(root / "ws")
    n_items = import_recorded_synthetic(conn, dataset_spec(conn, "r52"))
    ids = review.queue_ids(conn, "r52")
    hot = ids[:10]
    own = ids[10:]
    per = len(own) // args.reviewers
    print(f"workspace {ws.root}: {len(ids)} synthetic examples ({n_items} pending), {args.reviewers} reviewers "
          f"with {per} own examples each + {len(hot)} shared, {args.seconds:.0f} s")

    stop_at = time.time() + args.seconds
    q: mp.Queue = mp.get_context("spawn").Queue()
    wproc = mp.get_context("spawn").Process(target=writer, args=(str(ws.db_path), stop_at, q))
    wproc.start()

    latencies: list[float] = []
    results = []
    lock = threading.Lock()

    def reviewer(k: int) -> None:
        c = store.connect(ws.db_path)
        rng = random.Random(k)
        mine = own[k * per:(k + 1) * per]
        last: dict[str, str] = {}
        ok = stale = locked = other = 0
        lat = []
        name = f"reviewer-{k:02d}"
        while time.time() < stop_at:
            action = rng.choice(["approve", "reject"])
            if rng.random() < 0.1:
                sid = rng.choice(hot)
                seen = review.get(c, sid)["version"]
                time.sleep(rng.random() * 0.005)  # think time between reading and clicking
            else:
                sid, seen = rng.choice(mine), None
            t0 = time.perf_counter()
            try:
                if action == "approve":
                    review.approve(c, sid, name, expected_version=seen)
                else:
                    review.reject(c, sid, name, "load test", expected_version=seen)
                ok += 1
                if seen is None:
                    last[sid] = "approved" if action == "approve" else "rejected"
            except review.StaleDecision:
                stale += 1
            except sqlite3.OperationalError as e:
                locked += "locked" in str(e)
                other += "locked" not in str(e)
            except Exception:
                other += 1
            lat.append(time.perf_counter() - t0)
        c.close()
        with lock:
            latencies.extend(lat)
            results.append(dict(name=name, ok=ok, stale=stale, locked=locked, other=other, last=last,
                                own_ok=ok))

    threads = [threading.Thread(target=reviewer, args=(k,)) for k in range(args.reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metric_writes, writer_errors = q.get(timeout=60)
    wproc.join(timeout=30)

    # Verify: every successful decision is in the audit trail, every own example ends at its last decision.
    lost = 0
    audit = {r["reviewer"]: r["n"] for r in store.rows(
        conn, "SELECT reviewer, COUNT(*) AS n FROM reviews GROUP BY reviewer")}
    for r in results:
        lost += abs(audit.get(r["name"], 0) - r["ok"])
        for sid, status in r["last"].items():
            row = review.get(conn, sid)
            lost += row["status"] != status or row["reviewer"] != r["name"]
    total_ok = sum(r["ok"] for r in results)
    stale = sum(r["stale"] for r in results)
    locked = sum(r["locked"] for r in results)
    other = sum(r["other"] for r in results)
    latencies.sort()
    p = lambda q_: latencies[min(len(latencies) - 1, int(q_ * len(latencies)))] * 1000  # noqa: E731
    print(f"decisions saved: {total_ok} ({total_ok / args.seconds:.0f}/s); stale conflicts refused: {stale}; "
          f"'database is locked' reaching a reviewer: {locked}; other errors: {other}")
    print(f"worker: {metric_writes} metric batches written alongside, {writer_errors} errors")
    print(f"approve/reject latency ms: p50 {p(0.5):.1f}, p95 {p(0.95):.1f}, p99 {p(0.99):.1f}")
    print(f"RESULT lost_decisions {lost} (target = 0)")
    print(f"RESULT locked_errors {locked + writer_errors} (target = 0)")
    print(f"RESULT approve_p95_ms {p(0.95):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
