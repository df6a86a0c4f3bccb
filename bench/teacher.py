"""Teacher throughput and cache-hit cost, against the real local OpenAI-compatible server.

1. The openai backend with 32 requests in flight vs. one at a time, same requests, same run,
   against a server adding 100 ms to every reply (target: >= 15x). The server runs in its own
   process, as a real endpoint does, so it shares no GIL with the client.
2. A cached re-run of 1,000 rationale calls: cache lookups + 1,000 ledger rows (target: < 2 s).

Run from the repo root: ``.venv/bin/python bench/teacher.py``.
"""

from __future__ import annotations

import shutil
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
    conn.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"RESULT teacher_concurrency_speedup {t_serial / t_par:.1f} (target >= 15)")
    print(f"RESULT teacher_cached_1k_s {t_cached:.3f} (target < 2)")


if __name__ == "__main__":
    main()
