"""Seed sweeps: one run per (method, seed); a sweep killed mid-run resumes without redoing finished
runs or paying the teacher twice; a sweep summary is mean ± CI over seeds and items."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from baldistill_core import store
from baldistill_core.cli import main
from baldistill_core.errors import ConfigError
from baldistill_core.runs import records as runs
from baldistill_core.runs import sweeps
from conftest import REPO
from _run_helpers import import_tiny, tiny_config


def _paid(conn, run_id=None):
    sql = "SELECT key, COUNT(*) AS n FROM ledger WHERE cached = 0"
    params = ()
    if run_id:
        sql, params = sql + " AND run_id = ?", (run_id,)
    return store.rows(conn, sql + " GROUP BY key", params)


def test_parse_and_validate():
    assert sweeps.parse_list("0, 1,1,2", int) == [0, 1, 2]
    with pytest.raises(ConfigError, match="comma-separated"):
        sweeps.parse_list("0,x", int)


def test_killed_sweep_resumes_without_redoing_or_paying_twice(tmp_path, capsys):
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    cfg_file = tmp_path / "sweep.yaml"
    cfg_file.write_text(tiny_config(method="random_ft_cot", budget=6, eval=dict(final_per_domain=3)).to_yaml())
    argv = ["sweep", str(cfg_file), "--seeds", "0,1", "-w", str(ws.root)]
    env = dict(os.environ, BALDISTILL_FAULT_KILL_AT="0:training", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "baldistill_core.cli", *argv], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    (sw,) = sweeps.list_sweeps(conn)
    (first,) = sweeps.members(conn, sw["id"])
    assert first["seed"] == 0 and runs.get_run(conn, first["run_id"])["state"] == "interrupted"
    paid_before = _paid(conn)
    assert paid_before   # stage 0 was annotated before the kill

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{first['run_id']}: resuming" in out
    rows = sweeps.members(conn, sw["id"])
    assert [(r["method"], r["seed"]) for r in rows] == [("random_ft_cot", 0), ("random_ft_cot", 1)]
    assert all(runs.get_run(conn, r["run_id"])["status"] == "finished" for r in rows)
    assert all(r["n"] == 1 for r in _paid(conn))          # no teacher call paid twice, across runs either
    assert {r["key"] for r in paid_before} <= {r["key"] for r in _paid(conn)}
    assert "mean over seeds" in out and "random_ft_cot    seeds 0,1:" in out

    ledger_rows = store.one(conn, "SELECT COUNT(*) AS n FROM ledger")["n"]
    assert main(argv) == 0                                 # the same command again: nothing to do
    out = capsys.readouterr().out
    assert out.count("finished already, skipped") == 2
    assert store.one(conn, "SELECT COUNT(*) AS n FROM ledger")["n"] == ledger_rows
    assert main(["sweep", "--id", sw["id"], "--summary", "-w", str(ws.root)]) == 0
    assert "random_ft_cot    seeds 0,1: macro" in capsys.readouterr().out


def test_cells_run_at_once_one_per_device(tmp_path, monkeypatch):
    """On a machine with several GPUs a sweep's cells run as parallel workers, one per device
    (CUDA_VISIBLE_DEVICES); here two 'devices' on the CPU stand in for them."""
    from baldistill_core.workspace import open_workspace

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    monkeypatch.setenv("PYTHONPATH", str(REPO))                      # the workers import this checkout
    monkeypatch.setenv("BALDISTILL_SWEEP_DEVICES", "")
    assert sweeps.parallel_devices() == []                           # set and empty: one after another
    monkeypatch.setenv("BALDISTILL_SWEEP_DEVICES", "0, 1")
    assert sweeps.parallel_devices() == ["0", "1"]
    sid = sweeps.create(conn, tiny_config(method="random_ft_cot", budget=6, eval=dict(final_per_domain=2)), [0, 1])
    said: list[str] = []
    states = sweeps.execute(ws, conn, sid, echo=said.append, poll_s=0.2)
    assert sorted(states.values()) == ["finished", "finished"], said
    started = {}
    for m in sweeps.members(conn, sid):
        logs = runs.log_tail(conn, m["run_id"], 200)
        first = next(r for r in logs if "worker" in r["message"] and "started" in r["message"])
        started[m["seed"]] = (first["message"].rsplit("CUDA_VISIBLE_DEVICES=", 1)[-1].rstrip(")"), first["at"],
                              logs[-1]["at"])
    assert {d for d, *_ in started.values()} == {"0", "1"}             # each worker had its own device
    (d0, s0, e0), (d1, s1, e1) = started[0], started[1]
    assert s1 < e0 and s0 < e1                                        # and they ran at the same time
    assert any("starting on device" in m for m in said)
    assert main(["sweep", "--id", sid, "-w", str(ws.root)]) == 0     # again: both finished, nothing to run
