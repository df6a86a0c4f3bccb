"""Background runs: one OS process per run, a lease in the database, heartbeat, cancel, resume.

The UI (or ``baldistill runs resume``) starts ``baldistill run --run-id ID`` as its own process
session (``start_new_session``), so closing a browser tab or restarting Streamlit never touches a
run. The worker claims the run in one ``BEGIN IMMEDIATE`` transaction: it may take it only when
no other live process holds it (pid alive, not a zombie, heartbeat younger than
``runs.HEARTBEAT_STALE_S``). A heartbeat thread with its own connection refreshes the lease every
couple of seconds and turns a ``cancelling`` status into a stop signal for the pipeline.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from baldistill_core import store
from baldistill_core.runs import records as runs
from baldistill_core.student.threads import configure_threads

HEARTBEAT_EVERY_S = 2.0
EXIT_OK, EXIT_FAILED, EXIT_LOCKED = 0, 1, 3


def claim(conn, run_id: str, pid: int | None = None) -> tuple[bool, int | None]:
    """Take the run's lease for ``pid``; returns (claimed, pid of the current holder)."""
    pid = pid or os.getpid()
    with store.transaction(conn):
        r = store.one(conn, "SELECT pid, heartbeat_at FROM runs WHERE id = ?", (run_id,))
        if r is None:
            raise runs.RunError(f"run {run_id!r} not found; list runs with `baldistill runs list`")
        holder = r["pid"]
        if holder and holder != pid and runs.worker_alive(r):
            return False, holder
        conn.execute("UPDATE runs SET pid = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                     (pid, store.now(), store.now(), run_id))
    return True, pid


def release(conn, run_id: str, pid: int | None = None) -> None:
    conn.execute("UPDATE runs SET pid = NULL WHERE id = ? AND pid = ?", (run_id, pid or os.getpid()))


class Heartbeat(threading.Thread):
    """Refreshes the lease; sets ``cancel`` when the run is being cancelled or the lease was lost."""

    def __init__(self, db_path: str | Path, run_id: str, pid: int | None = None, every_s: float = HEARTBEAT_EVERY_S):
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.db_path, self.run_id, self.pid, self.every_s = str(db_path), run_id, pid or os.getpid(), every_s
        self.cancel = threading.Event()
        self.lost = False
        self._halt = threading.Event()

    def run(self) -> None:
        conn = store.connect(self.db_path)
        try:
            while not self._halt.is_set():
                try:
                    cur = conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND pid = ?",
                                       (store.now(), self.run_id, self.pid))
                    if cur.rowcount == 0:
                        self.lost = True
                        self.cancel.set()
                    st = store.one(conn, "SELECT status FROM runs WHERE id = ?", (self.run_id,))
                    if st and st["status"] == "cancelling":
                        self.cancel.set()
                except Exception:  # a locked database for a moment must not kill the heartbeat
                    pass
                self._halt.wait(self.every_s)
        finally:
            conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def run_worker(ws, conn, run_id: str, *, api_key: str | None = None, echo=None) -> int:
    """Execute (or resume) a run in this process under its lease. Returns the process exit code."""
    from baldistill_core.runs.pipeline import AwaitingReview, Cancelled, Pipeline

    ok, holder = claim(conn, run_id)
    if not ok:
        msg = f"run {run_id} is already being run by process {holder}; not starting a second worker"
        print(msg, file=sys.stderr)
        return EXIT_LOCKED
    import torch

    threads_before = torch.get_num_threads()
    hb = Heartbeat(ws.db_path, run_id)
    hb.start()
    try:
        dev = os.environ.get("CUDA_VISIBLE_DEVICES")
        runs.log(conn, run_id, f"worker {os.getpid()} started ({configure_threads()} torch threads"
                 + (f", CUDA_VISIBLE_DEVICES={dev})" if dev is not None else ")"))
        run = runs.get_run(conn, run_id)
        if run["status"] == "cancelling":
            raise Cancelled()
        if run["status"] in runs.ENDED:
            print(f"run {run_id} is already {run['status']}", file=sys.stderr)
            return EXIT_OK
        check_hard_cap(conn, run_id)  # a run created around the UI/CLI guard still meets the hard cap
        if api_key is None:
            cfg = runs.run_config(conn, run_id)
            api_key = os.environ.get(cfg.teacher.api_key_env)
        Pipeline(conn, run_id, api_key=api_key, cancel_event=hb.cancel, echo=echo).execute()
        return EXIT_OK
    except Cancelled:
        if hb.lost:  # another worker took the run over (our heartbeat went stale): leave it be
            runs.log(conn, run_id, f"worker {os.getpid()} lost the run's lease and stopped", "warning")
            return EXIT_LOCKED
        runs.set_status(conn, run_id, "cancelled")
        runs.log(conn, run_id, "run cancelled", "warning")
        return EXIT_OK
    except AwaitingReview:
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C on a foreground run: a cancel, resumable like one
        runs.set_status(conn, run_id, "cancelled")
        runs.log(conn, run_id, "run interrupted from the keyboard", "warning")
        raise
    except Exception as e:  # record every failure, then let the caller see the exit code
        runs.log(conn, run_id, traceback.format_exc(), "error")
        hint = ""
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            hint = " — free disk space under the workspace, then Resume: finished stages are kept"
        runs.set_status(conn, run_id, "failed", error=f"{type(e).__name__}: {e}{hint}")
        return EXIT_FAILED
    finally:
        hb.stop()
        release(conn, run_id)
        torch.set_num_threads(threads_before)


def worker_command(ws_root: str | Path, run_id: str) -> list[str]:
    """The command line of a run's worker (the UI shows it; the same command works headless)."""
    exe = Path(sys.executable).parent / "baldistill"
    head = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                            "import sys; from baldistill_core.cli import main; sys.exit(main())"]
    return [*head, "run", "--run-id", run_id, "--workspace", str(ws_root)]


def start_worker(ws, run_id: str, *, env: dict | None = None) -> subprocess.Popen:
    """Spawn the run's worker as its own process session; output goes to ``<run folder>/worker.log``."""
    c = ws.connect()
    try:
        run = runs.get_run(c, run_id)
    finally:
        c.close()
    folder = Path(run["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "worker.log", "ab")
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("HF_HUB_OFFLINE", "1")
    full_env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return subprocess.Popen(worker_command(ws.root, run_id), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=full_env,
                                cwd=str(Path(__file__).resolve().parents[2]))
    finally:
        log.close()


def _key_env(cfg, api_key: str | None, env: dict | None) -> dict | None:
    """The worker's environment with a key typed in the UI: it lives in the child's memory only."""
    return dict(env or {}, **{cfg.teacher.api_key_env: api_key}) if api_key else env


def create_checked(ws, conn, cfg, *, created_by: str | None = None, confirmed: bool = True, estimate=None,
                   probe: bool = True) -> str:
    """Estimate ``cfg`` (unless given), apply the guard rails, create the run and store its estimate.

    Raises ``estimate.CostRefused`` above the hard cost cap and, unless ``confirmed``,
    ``estimate.NeedsConfirmation`` for a long or costly run; nothing is created then.
    """
    from baldistill_core.runs import estimate as estimates
    from baldistill_core.teacher import prices

    est = estimate or estimates.estimate_run(conn, cfg, ws_root=ws.root, probe=probe)
    estimates.guard(est, cfg, confirmed=confirmed)
    price = prices.Price(est.price["in_per_mtok"], est.price["out_per_mtok"], est.price["source"])
    run_id = runs.create_run(conn, ws.runs_dir, prices.with_prices(cfg, price), created_by=created_by)
    estimates.save(runs.get_run(conn, run_id)["folder"], est)
    return run_id


def check_hard_cap(conn, run_id: str) -> None:
    """The worker's guard: the stored launch estimate (or a fresh one, unprobed) against the hard cap."""
    from baldistill_core.runs import estimate as estimates

    run, cfg = runs.get_run(conn, run_id), runs.run_config(conn, run_id)
    if cfg.teacher.hard_cost_cap_usd is None:
        return
    est = estimates.load(run["folder"]) or estimates.estimate_run(conn, cfg, probe=False)
    estimates.guard(est, cfg, confirmed=True)


def submit(ws, conn, cfg, *, created_by: str | None = None, env: dict | None = None,
           api_key: str | None = None, confirmed: bool = True, estimate=None) -> tuple[str, subprocess.Popen]:
    """Check the teacher, create a run from ``cfg`` (through the guard rails of ``create_checked``) and
    start its worker in the background.

    A teacher that cannot supply the run (no recordings, no API key) raises ``ConfigError`` before
    anything is created."""
    from baldistill_core.teacher.preflight import check_teacher

    check_teacher(conn, cfg, api_key=api_key).raise_if_blocked()
    run_id = create_checked(ws, conn, cfg, created_by=created_by, confirmed=confirmed, estimate=estimate)
    return run_id, start_worker(ws, run_id, env=_key_env(cfg, api_key, env))


def resume(ws, conn, run_id: str, *, env: dict | None = None, teacher=None,
           api_key: str | None = None) -> subprocess.Popen:
    """Start a worker for an interrupted, failed, cancelled or review-waiting run. ``teacher`` (a
    ``TeacherConfig``) replaces the run's teacher first (see ``runs.manage.change_teacher``)."""
    from baldistill_core.runs import manage
    from baldistill_core.teacher.preflight import check_teacher

    run = runs.get_run(conn, run_id)
    if run["worker_alive"]:
        raise runs.RunError(f"run {run_id} is running (process {run['pid']}); cancel it first to restart it")
    if run["status"] == "finished":
        raise runs.RunError(f"run {run_id} has finished; start a new run to train again")
    cfg = runs.run_config(conn, run_id)
    if teacher is not None:
        cfg = cfg.model_copy(update={"teacher": teacher})
    check_teacher(conn, cfg, api_key=api_key).raise_if_blocked()
    if teacher is not None:
        manage.change_teacher(conn, run_id, teacher)
    env = _key_env(cfg, api_key, env)
    runs.set_status(conn, run_id, "created")
    runs.log(conn, run_id, f"resume requested (was {run['state']})")
    return start_worker(ws, run_id, env=env)


def cancel(conn, run_id: str, *, wait_s: float = 0.0, kill_after: bool = False) -> str:
    """Ask the run's worker to stop (status ``cancelling``); a run without a live worker is
    cancelled at once. With ``wait_s`` waits for the worker to acknowledge; ``kill_after`` then
    terminates its process group. Returns the final status."""
    run = runs.get_run(conn, run_id)
    if run["status"] in runs.ENDED:
        return run["status"]
    if not run["worker_alive"]:
        runs.set_status(conn, run_id, "cancelled")
        runs.log(conn, run_id, "run cancelled (no worker was running)", "warning")
        return "cancelled"
    runs.set_status(conn, run_id, "cancelling")
    runs.log(conn, run_id, "cancel requested")
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if runs.get_run(conn, run_id)["status"] != "cancelling":
            break
        time.sleep(0.3)
    run = runs.get_run(conn, run_id)
    if run["status"] == "cancelling" and kill_after and run["pid"]:
        try:
            os.killpg(int(run["pid"]), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        runs.set_status(conn, run_id, "cancelled")
        return "cancelled"
    return run["status"]


def delete_run_folder(conn, run_id: str) -> None:  # pragma: no cover - used by the UI's clean-up
    run = runs.get_run(conn, run_id)
    if run["worker_alive"]:
        raise runs.RunError(f"run {run_id} is running; cancel it first")
    shutil.rmtree(run["folder"], ignore_errors=True)
