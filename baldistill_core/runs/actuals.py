"""What a run really took, step by step, next to its launch estimate; and the throughputs it measured.

The pipeline opens :meth:`Recorder.step` around every step (selection, IFD scoring, annotation,
synthesis, training, evaluation). A step's time excludes the steps nested in it (IFD scoring and
synthesis happen inside selection); its teacher calls, tokens and cost are the ledger's growth over
the step, by purpose (verification calls are split out of synthesis, their time by the ledger's
latencies). Rows are appended to ``<run folder>/actual.json`` as each step ends, so a killed worker
loses nothing, and the throughputs they imply go to ``runs.throughput`` for the next estimate.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from baldistill_core.runs import throughput
from baldistill_core.teacher import ledger

ACTUAL_FILE = "actual.json"
_PURPOSE_STEP = {"rationale": "annotation", "synthesis": "synthesis", "verification": "verification"}


def _ledger(conn, run_id: str) -> dict:
    return ledger.summary(conn, run_id)["by_purpose"]


def _delta(after: dict, before: dict, purpose: str) -> dict:
    a, b = after.get(purpose) or {}, before.get(purpose) or {}
    return {k: (a.get(k) or 0) - (b.get(k) or 0)
            for k in ("calls", "cached_calls", "tokens_in", "tokens_out", "cost_usd", "latency_s", "unpriced_calls")}


def load(folder: str | Path) -> list[dict]:
    p = Path(folder) / ACTUAL_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


_recorders_in_process = 0   # a sweep on a CPU runs its runs one after another in one process


class Recorder:
    def __init__(self, conn, run_id: str, folder: str | Path, cfg):
        global _recorders_in_process
        self.conn, self.run_id, self.folder, self.cfg = conn, run_id, Path(folder), cfg
        self._open: list[dict] = []
        self.created = time.time()
        self.first_in_process = _recorders_in_process == 0
        _recorders_in_process += 1

    def startup(self, build_s: float = 0.0) -> None:
        """Record the time from this process's start to now (call it just before the first step);
        ``build_s`` of it built the model once, a one-off the next run's startup does not pay.

        A later run in the same process (the next run of a sweep) counts from its own start instead:
        from the process's start it would count every run before it as its startup, and teach the
        next estimate a startup of many minutes."""
        try:
            import psutil

            since = psutil.Process().create_time() if self.first_in_process else self.created
        except Exception:  # no psutil or no /proc: nothing to record
            return
        seconds = time.time() - since
        rec = {"stage": -1, "step": "startup", "units": 0}
        row = self._row(rec, "startup", seconds, None)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / ACTUAL_FILE).write_text(json.dumps(load(self.folder) + [row], indent=1), encoding="utf-8")
        throughput.record(self.cfg.student.model, {"startup_s": max(seconds - build_s, 0.1)},
                          f"measured by run {self.run_id}")

    def note(self, **kw) -> None:
        """Facts of the innermost open step: ``units`` (student tokens), ``train_seconds``."""
        if self._open:
            self._open[-1].update(kw)

    def note_load(self, seconds: float) -> None:
        if self._open:
            self._open[-1]["load_s"] = self._open[-1].get("load_s", 0.0) + seconds

    @contextmanager
    def step(self, stage: int, name: str):
        rec = {"stage": stage, "step": name, "t0": time.perf_counter(), "child_s": 0.0,
               "ledger": _ledger(self.conn, self.run_id)}
        self._open.append(rec)
        try:
            yield rec
        finally:
            self._open.pop()
            wall = time.perf_counter() - rec["t0"]
            if self._open:
                self._open[-1]["child_s"] += wall
            try:
                self._finish(rec, wall - rec["child_s"])
            except Exception:  # bookkeeping must never fail the step it measured
                pass

    def _finish(self, rec: dict, seconds: float) -> None:
        after = _ledger(self.conn, self.run_id)
        rows = []
        purposes = [p for p, s in _PURPOSE_STEP.items() if s == rec["step"] or
                    (rec["step"] == "synthesis" and p == "verification")]
        deltas = {p: _delta(after, rec["ledger"], p) for p in purposes}
        lat = {p: d["latency_s"] for p, d in deltas.items()}
        for p, d in deltas.items():
            if p == "verification" and not d["calls"]:
                continue
            share = (lat[p] / sum(lat.values())) if len(deltas) > 1 and sum(lat.values()) > 0 else (
                1.0 if p != "verification" else 0.0)
            rows.append(self._row(rec, _PURPOSE_STEP[p], seconds * share, d))
        if not purposes:
            rows.append(self._row(rec, rec["step"], seconds, None))
        data = load(self.folder) + rows
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / ACTUAL_FILE).write_text(json.dumps(data, indent=1), encoding="utf-8")
        for r in rows:
            self._learn(r, rec)

    def _row(self, rec: dict, step: str, seconds: float, d: dict | None) -> dict:
        d = d or {}
        return {"stage": rec["stage"], "step": step, "seconds": round(seconds, 3), "units": int(rec.get("units") or 0),
                "calls": int(d.get("calls") or 0), "cached_calls": int(d.get("cached_calls") or 0),
                "tokens_in": int(d.get("tokens_in") or 0), "tokens_out": int(d.get("tokens_out") or 0),
                "cost_usd": round(float(d.get("cost_usd") or 0.0), 8), "unpriced_calls": int(d.get("unpriced_calls") or 0),
                "at": time.time()}

    def _learn(self, row: dict, rec: dict) -> None:
        """Store the throughputs this step implies (only from steps long enough to mean something)."""
        s, units, model = row["seconds"], row["units"], self.cfg.student.model
        src = f"measured by run {self.run_id}"
        fig: dict[str, float] = {}
        if row["step"] == "training" and rec.get("train_seconds") and units:
            fig = {"train_tok_s": units / rec["train_seconds"], "train_overhead_s": max(s - rec["train_seconds"], 0.01)}
        elif row["step"] == "evaluation" and units and s > 0.2:
            load = rec.get("load_s", 0.0)
            fig = {"gen_tok_s": units / max(s - load, 0.05 * s)}
            if load:
                fig["load_s"] = load
        elif row["step"] == "ifd scoring" and units and s > 0.2:
            fig = {"ifd_tok_s": units / s}
        elif row["step"] == "selection":
            fig = {"select_s": max(s, 0.01)}
        elif row["step"] in ("annotation", "synthesis") and row["calls"] > row["cached_calls"]:
            t = self.cfg.teacher
            per_call = s / max(row["calls"] - row["cached_calls"], 1)
            throughput.record_teacher(t.backend, t.model, t.concurrency,
                                      per_call * (t.concurrency if t.backend == "openai" else 1), src)
        if fig:
            throughput.record(model, fig, src)


def compare(est, rows: list[dict]) -> list[dict]:
    """Estimate vs actual per step (all stages together): time, tokens (in + out) and cost."""
    from baldistill_core.runs.estimate import STEPS, by_step

    e = by_step(est.steps) if est is not None else {}
    a: dict[str, dict] = {}
    for r in rows:
        x = a.setdefault(r["step"], dict(seconds=0.0, tokens=0, cost_usd=0.0, calls=0, unpriced=0))
        x["unpriced"] += r.get("unpriced_calls", 0)
        x["seconds"] += r["seconds"]
        x["tokens"] += r["tokens_in"] + r["tokens_out"]
        x["cost_usd"] += r["cost_usd"]
        x["calls"] += r["calls"]
    out = []
    for name in [s for s in STEPS if s in e or s in a]:
        ee, aa = e.get(name), a.get(name)
        out.append({"step": name,
                    "est_seconds": ee["seconds"] if ee else None, "actual_seconds": aa["seconds"] if aa else None,
                    "est_tokens": ee["tokens_in"] + ee["tokens_out"] if ee else None,
                    "actual_tokens": aa["tokens"] if aa else None,
                    # None where nothing ran, or where a call's price is unknown (shown as "unknown")
                    "est_cost_usd": ee["cost_usd"] if ee else None,
                    "actual_cost_usd": aa["cost_usd"] if aa and not aa["unpriced"] else None,
                    "est_calls": ee["calls"] if ee else None, "actual_calls": aa["calls"] if aa else None})
    return out


def compare_lines(est, rows: list[dict]) -> list[str]:
    """The comparison as text (``baldistill runs show``)."""
    from baldistill_core.runs.estimate import fmt_cost, fmt_seconds

    if est is None:
        return ["estimate vs actual: no estimate stored for this run (launched before estimates existed)"]
    lines = ["estimate vs actual (time | teacher tokens | cost):"]
    for r in compare(est, rows):
        def t(v):
            return "-" if v is None else fmt_seconds(v)
        lines.append(f"  {r['step']:<13} {t(r['est_seconds']):>8} vs {t(r['actual_seconds']):>8} | "
                     f"{r['est_tokens'] if r['est_tokens'] is not None else '-':>7} vs "
                     f"{r['actual_tokens'] if r['actual_tokens'] is not None else '-':>7} | "
                     f"{fmt_cost(r['est_cost_usd'])} vs "
                     f"{'-' if r['actual_seconds'] is None else fmt_cost(r['actual_cost_usd'])}")
    return lines
