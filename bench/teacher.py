"""Teacher throughput and cache-hit cost, against the real local OpenAI-compatible server.

1. The openai backend with 32 requests in flight vs. one at a time, same requests, same run,
   against a server adding 100 ms to every reply (target: >= 15x). The server runs in its own
   process, as a real endpoint does, so it shares no GIL with the client.
2. A cached re-run of 1,000 rationale calls: cache lookups + 1,000 ledger rows (target: < 2 s).
3. Batch mode (``teacher.mode: batch``) through the server's /v1/files + /v1/batches: the ledger cost
   of N_BATCH rationale calls sent as one batch over the cost of the same calls one by one, at the
   same price table (target: <= 0.55); then a worker process is killed (SIGKILL) while it polls a
   held batch and a second worker resumes: batches submitted a second time (target: 0).

Run from the repo root: ``.venv/bin/python bench/teacher.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from _openai_server import ServerProcess  # noqa: E402
from _teacher_helpers import small_dataset  # noqa: E402

from baldistill_core import store
from baldistill_core.teacher import ledger  # noqa: E402
from baldistill_core.config import TeacherConfig  # noqa: E402
from baldistill_core.teacher.client import build_teacher  # noqa: E402
from baldistill_core.workspace import open_workspace  # noqa: E402

N_LATENCY = 96
N_CACHED = 1000
N_BATCH = 200
_WORKER = """
import sys
from baldistill_core.config import TeacherConfig
from baldistill_core.data.loading import dataset_spec
from baldistill_core import store
from baldistill_core.teacher.client import build_teacher
from baldistill_core.workspace import open_workspace
_, conn = open_workspace(sys.argv[1], bundled=False)
cfg = TeacherConfig(backend="openai", base_url=sys.argv[2], model="killed", mode="batch", batch_poll_s=0.05)
t = build_teacher(cfg, conn, spec=dataset_spec(conn, "mini"), run_id="bench-kill", api_key="bench")
anns = t.annotate(store.examples(conn, "mini", limit=int(sys.argv[3])))
print("kept", sum(a.kept for a in anns))
"""


def batch_bench(conn, spec, items, server, ws_dir: Path) -> tuple[float, int]:
    """(batch cost / one-by-one cost, batches resubmitted after a kill -9 while polling)."""
    from baldistill_core.teacher.batch import batches_of_run

    def teacher(model, run_id, mode):
        cfg = TeacherConfig(backend="openai", base_url=server.base_url, model=model, mode=mode, batch_poll_s=0.05,
                            max_retries=0)
        return build_teacher(cfg, conn, spec=spec, run_id=run_id, api_key="bench")

    t0 = time.perf_counter()
    batch = teacher("same-prices-b", "bench-batch", "batch").annotate(items[:N_BATCH])
    t_batch = time.perf_counter() - t0
    single = teacher("same-prices-s", "bench-single", "online").annotate(items[:N_BATCH])
    assert all(a.kept for a in batch + single)
    c_batch, c_single = (ledger.summary(conn, r)["cost_usd"] for r in ("bench-batch", "bench-single"))
    print(f"{N_BATCH} calls: batch ${c_batch:.6f} in {t_batch:.2f} s (one batch), one by one ${c_single:.6f}")

    before = server.batch_creations
    server.hold_batches(True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(ws_dir), server.base_url, "40"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not any(b["remote_id"] and b["status"] == "in_progress" for b in batches_of_run(conn, "bench-kill")):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"the worker never polled a batch: {proc.stdout.read()[-2000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    server.hold_batches(False)
    resumed = subprocess.run([sys.executable, "-c", _WORKER, str(ws_dir), server.base_url, "40"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0 and "kept 40" in resumed.stdout, resumed.stdout + resumed.stderr
    resubmitted = server.batch_creations - before - 1
    print(f"kill -9 while polling, then resume: {server.batch_creations - before} batch(es) created, "
          f"{resubmitted} resubmitted")
    return c_batch / c_single, resubmitted


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-teacher-"))
    _, conn = open_workspace(tmp / "ws", bundled=False)
    spec = small_dataset(conn, tmp, n_per_label=N_CACHED // 5)
    items = store.examples(conn, spec.name)
    assert len(items) == N_CACHED

    def teacher(server, model, concurrency, run_id):
        cfg = TeacherConfig(backend="openai", base_url=server.base_url, model=model, concurrency=concurrency,
                            max_retries=0)
        return build_teacher(cfg, conn, spec=spec, run_id=run_id, api_key="bench")

    with ServerProcess(latency_s=0.1) as server:
        # Different model names give different cache keys: both runs really call the server.
        t0 = time.perf_counter()
        serial = teacher(server, "serial", 1, "bench-serial").annotate(items[:N_LATENCY])
        t_serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        par = teacher(server, "parallel", 32, "bench-parallel").annotate(items[:N_LATENCY])
        t_par = time.perf_counter() - t0
        assert all(a.kept for a in serial + par) and server.count(200) == 2 * N_LATENCY
        print(f"{N_LATENCY} calls at 100 ms: one at a time {t_serial:.2f} s, 32 in flight {t_par:.2f} s "
              f"(max in flight seen by the server: {server.max_inflight})")

        server.set_latency(0.0)
        t0 = time.perf_counter()
        teacher(server, "cached", 32, "bench-fill").annotate(items)
        t_fill = time.perf_counter() - t0
        hits = server.count()
        t0 = time.perf_counter()
        again = teacher(server, "cached", 32, "bench-cached").annotate(items)
        t_cached = time.perf_counter() - t0
        assert server.count() == hits, "the cached re-run reached the server"
        assert all(a.cached for a in again)
        s = ledger.summary(conn, "bench-cached")
        assert s["calls"] == N_CACHED and s["cached_calls"] == N_CACHED and s["cost_usd"] == 0
        print(f"{N_CACHED} calls: first run {t_fill:.2f} s (no latency), cached re-run {t_cached:.3f} s "
              f"({N_CACHED} ledger rows, $0)")
        ratio, resubmitted = batch_bench(conn, spec, items, server, tmp / "ws")
    conn.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"RESULT teacher_concurrency_speedup {t_serial / t_par:.1f} (target >= 15)")
    print(f"RESULT teacher_cached_1k_s {t_cached:.3f} (target < 2)")
    print(f"RESULT teacher_batch_cost_ratio {ratio:.3f} (target <= 0.55)")
    print(f"RESULT batch_resubmissions_after_kill {resubmitted} (target = 0)")


if __name__ == "__main__":
    main()
