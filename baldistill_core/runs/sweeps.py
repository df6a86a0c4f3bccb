"""Seed sweeps: one run per (method, seed) of a base config, as a group.

``baldistill sweep CONFIG --seeds 0,1,2 --methods a,b`` creates the sweep (its id is a hash of
the base config, the seeds and the methods, so the same command again continues the same sweep)
and executes its runs one after another in this process. Resumable like a run: a finished run is
never redone, an interrupted or failed one resumes at the step it died in (its teacher answers come
from the teacher cache, and runs of different seeds share that cache, so no call is paid twice).
A run waiting for review is left waiting (approve on the Review page, then sweep again).

Compare reads a sweep's runs through ``members`` and aggregates them as mean ± CI over seeds
and items (``reports.significance.group_rows``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.errors import ConfigError
from baldistill_core.runs import records as runs
from baldistill_core.selection.methods import METHODS


def parse_list(text: str | None, kind: type = str) -> list:
    """``"0,1,2"`` → ``[0, 1, 2]`` (order kept, duplicates dropped)."""
    out: list = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = kind(part)
        except ValueError:
            raise ConfigError(f"{part!r} is not a valid {kind.__name__}; give a comma-separated list, e.g. 0,1,2") from None
        if v not in out:
            out.append(v)
    return out


def sweep_id(cfg: RunConfig, seeds: list[int], methods: list[str]) -> str:
    base = cfg.model_copy(update={"seed": 0, "method": methods[0]}).model_dump_json()
    digest = hashlib.sha256(json.dumps([base, seeds, methods]).encode()).hexdigest()[:10]
    return f"sweep-{cfg.dataset}-{digest}"


def create(conn: sqlite3.Connection, cfg: RunConfig, seeds: list[int], methods: list[str] | None = None) -> str:
    """Record the sweep (idempotent: the same config, seeds and methods give the same id)."""
    methods = methods or [cfg.method]
    if not seeds:
        raise ConfigError("a sweep needs at least one seed, e.g. --seeds 0,1,2")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    sid = sweep_id(cfg, seeds, methods)
    conn.execute("INSERT OR IGNORE INTO sweeps(id, name, dataset, config, seeds, methods, created_at)"
                 " VALUES (?,?,?,?,?,?,?)", (sid, cfg.name, cfg.dataset, cfg.model_dump_json(), json.dumps(seeds),
                                             json.dumps(methods), store.now()))
    return sid


def get(conn: sqlite3.Connection, sid: str) -> dict:
    r = store.one(conn, "SELECT * FROM sweeps WHERE id = ?", (sid,))
    if r is None:
        raise runs.RunError(f"sweep {sid!r} not found; list sweeps with `baldistill sweep --list`")
    r["config"] = RunConfig.model_validate_json(r["config"])
    r["seeds"], r["methods"] = json.loads(r["seeds"]), json.loads(r["methods"])
    return r


def list_sweeps(conn: sqlite3.Connection, dataset: str | None = None) -> list[dict]:
    sql, params = "SELECT id FROM sweeps", []
    if dataset:
        sql, params = sql + " WHERE dataset = ?", [dataset]
    return [get(conn, r["id"]) for r in store.rows(conn, sql + " ORDER BY created_at DESC", params)]


def members(conn: sqlite3.Connection, sid: str) -> list[dict]:
    """``{method, seed, run_id}`` of the runs created so far, by method then seed."""
    return store.rows(conn, "SELECT method, seed, run_id FROM sweep_runs WHERE sweep_id = ? ORDER BY method, seed",
                      (sid,))


def cell_config(base: RunConfig, method: str, seed: int) -> RunConfig:
    return base.model_copy(update={"method": method, "seed": seed, "name": f"{base.name} {method} s{seed}"})


def ensure_run(conn: sqlite3.Connection, runs_dir, sid: str, method: str, seed: int) -> str:
    """The run of one cell, created (and recorded in the sweep in the same step) if it does not exist."""
    have = store.one(conn, "SELECT run_id FROM sweep_runs WHERE sweep_id = ? AND method = ? AND seed = ?",
                     (sid, method, seed))
    if have:
        return have["run_id"]
    cfg = cell_config(get(conn, sid)["config"], method, seed)
    run_id = runs.create_run(conn, runs_dir, cfg, run_id=f"{sid}-{method}-s{seed}")
    conn.execute("INSERT INTO sweep_runs(sweep_id, method, seed, run_id) VALUES (?,?,?,?)", (sid, method, seed, run_id))
    return run_id


def parallel_devices() -> list[str]:
    """The devices a sweep spreads its cells over, one run per device at a time:
    ``$BALDISTILL_SWEEP_DEVICES`` (e.g. ``0,1``; empty = none), else every CUDA GPU when there are
    several. An empty list (a CPU, or one GPU) runs the cells one after another in this process."""
    env = os.environ.get("BALDISTILL_SWEEP_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # no torch, or a broken driver: run one after another
        n = 0
    return [str(i) for i in range(n)] if n > 1 else []


def execute(ws, conn: sqlite3.Connection, sid: str, *, echo=print, run_worker=None,
            devices: list[str] | None = None, poll_s: float = 1.0) -> dict[str, str]:
    """Run every cell; returns ``{run_id: state}``. Finished runs are skipped.

    Seed by seed, every method within a seed: a sweep stopped part-way leaves whole seeds, each a
    complete paired comparison of the methods, rather than some methods with all seeds and others
    with none. With several ``devices`` (default :func:`parallel_devices`: the GPUs of a multi-GPU
    machine) the cells run as worker processes at once, one per device (``CUDA_VISIBLE_DEVICES``);
    each stays resumable on its own. Parallel cells share the teacher cache but may both pay for the
    same request if they send it at the same moment; on a CPU they run one after another."""
    from baldistill_core.runs import jobs

    devices = parallel_devices() if devices is None else devices
    sw = get(conn, sid)
    states: dict[str, str] = {}
    todo: list[str] = []
    for seed in sw["seeds"]:
        for method in sw["methods"]:
            rid = ensure_run(conn, ws.runs_dir, sid, method, seed)
            state = runs.get_run(conn, rid)["state"]
            if state == runs.RunStatus.FINISHED:
                echo(f"{rid}: finished already, skipped")
            elif state == runs.RunStatus.AWAITING_REVIEW:
                echo(f"{rid}: waiting for review of synthetic examples; approve them, then sweep again")
            elif len(devices) > 1 and run_worker is None:
                todo.append(rid)
            else:
                echo(f"{rid}: {'resuming' if state != runs.RunStatus.CREATED else 'starting'} ({method}, seed {seed})")
                (run_worker or jobs.run_worker)(ws, conn, rid, echo=echo)
            states[rid] = runs.get_run(conn, rid)["state"]
    if todo:
        states.update(_execute_parallel(ws, conn, todo, devices, echo=echo, poll_s=poll_s))
    return states


def _execute_parallel(ws, conn, run_ids: list[str], devices: list[str], *, echo, poll_s: float) -> dict[str, str]:
    """Worker processes for ``run_ids``, at most one per device at a time, polled until all have ended."""
    import time

    from baldistill_core.runs import jobs

    pending, free = list(run_ids), list(devices)
    busy: dict[str, tuple[str, object]] = {}   # device -> (run id, worker process)
    states: dict[str, str] = {}
    while pending or busy:
        while pending and free:
            rid, dev = pending.pop(0), free.pop(0)
            echo(f"{rid}: starting on device {dev} (CUDA_VISIBLE_DEVICES={dev})")
            busy[dev] = (rid, jobs.start_worker(ws, rid, env={"CUDA_VISIBLE_DEVICES": dev}))
        time.sleep(poll_s)
        for dev, (rid, proc) in list(busy.items()):
            run = runs.get_run(conn, rid)
            # a worker that found the run held by another live one exits at once: wait for that one
            if proc.poll() is not None and not (run["status"] in runs.ACTIVE and run["worker_alive"]):
                states[rid] = run["state"]
                echo(f"{rid}: {states[rid]} (device {dev})")
                del busy[dev]
                free.append(dev)
    return states


def guard(conn: sqlite3.Connection, cfg: RunConfig, n_runs: int, *, ws_root=None, confirmed: bool = False,
          estimate=None):
    """The launch guard rails for ``n_runs`` runs of ``cfg``: the estimate of one run (given or made
    here) times ``n_runs``, refused above the hard cost cap and confirmed above the time or cost
    thresholds (``runs.estimate.guard``). Returns the sweep's estimate."""
    from baldistill_core.runs import estimate as estimates

    one = estimate or estimates.estimate_run(conn, cfg, ws_root=ws_root)
    total = one.repeated(n_runs)
    estimates.guard(total, cfg, confirmed=confirmed)
    return total


def start(ws, conn: sqlite3.Connection, cfg: RunConfig, seeds: list[int], methods: list[str] | None = None, *,
          api_key: str | None = None, confirmed: bool = False, estimate=None):
    """Check the guard rails for the whole sweep (:func:`guard`), create the sweep and all its runs, then
    execute it in a background process (``baldistill sweep --id``; log in ``<workspace>/sweeps/<id>.log``).

    ``api_key`` (typed in the UI) reaches the sweep process's environment only, as ``jobs.submit`` does
    for a single run. Returns ``(sweep id, run ids, process)``."""
    import subprocess
    import sys
    from pathlib import Path

    from baldistill_core.teacher.preflight import check_teacher

    n = len(seeds) * len(methods or [cfg.method])
    check_teacher(conn, cfg, api_key=api_key).raise_if_blocked()
    guard(conn, cfg, n, ws_root=ws.root, confirmed=confirmed, estimate=estimate)
    sid = create(conn, cfg, seeds, methods)
    sw = get(conn, sid)
    ids = [ensure_run(conn, ws.runs_dir, sid, m, s) for m in sw["methods"] for s in sw["seeds"]]
    folder = Path(ws.root) / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"), TOKENIZERS_PARALLELISM="false")
    if api_key:
        env[cfg.teacher.api_key_env] = api_key
    with open(folder / f"{sid}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "baldistill_core.cli", "sweep", "--id", sid,
                                 "--workspace", str(ws.root)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                cwd=str(Path(__file__).resolve().parents[2]))
    return sid, ids, proc
