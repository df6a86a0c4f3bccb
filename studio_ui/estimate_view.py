"""The run estimate on the Training form and the Plan page, its launch gate, and estimate vs actual.

Pages call one function each: :func:`launch_gate` (Training: estimate + confirmation + hard-cap
refusal next to the Launch button), :func:`estimate_panel` (Plan), :func:`estimate_vs_actual`
(a run's summary). :func:`cpu_default` gives a fresh CPU-only workspace the R52 CPU demo as the
form's starting point, so the first launch finishes in minutes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
import yaml

from baldistill_core.config import RunConfig
from baldistill_core.errors import BalDistillError
from baldistill_core.runs import actuals, estimate
from studio_ui import bridge

CPU_DEMO = Path(__file__).resolve().parents[1] / "assets" / "configs" / "r52-cpu-demo.yaml"


def _cpu_only() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def cpu_default(dataset: str | None = None) -> dict:
    """On a CPU-only machine, the bundled CPU demo config of ``dataset`` (as a dict), else {}.

    Without ``dataset``: the R52 CPU demo when the workspace has no run yet (a fresh workspace).
    """
    if not _cpu_only():
        return {}
    if dataset is None:
        from baldistill_core.runs import records as runs

        return {} if runs.list_runs(bridge.conn()) else yaml.safe_load(CPU_DEMO.read_text(encoding="utf-8"))
    for p in sorted(CPU_DEMO.parent.glob("*-cpu-demo.yaml")):
        cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
        if cfg.get("dataset") == dataset:
            return cfg
    return {}


def preferred_dataset(names: list[str]) -> str:
    """The sidebar's first choice: the R52 CPU demo's dataset in a fresh CPU workspace, else the first one."""
    demo = cpu_default().get("dataset")
    return demo if demo in names else names[0]


@st.cache_data(show_spinner=False, ttl=120, max_entries=32)
def _estimate(cfg_json: str, root: str) -> estimate.Estimate:
    return estimate.estimate_run(bridge.conn(), RunConfig.model_validate_json(cfg_json), ws_root=root)


def _compute(cfg: RunConfig) -> estimate.Estimate | None:
    with st.spinner("Estimating (the first time on this machine it measures the student's speed, ≤ 20 s)…"):
        try:
            # only the fields the form set: prices it did not set come from the price table
            return _estimate(cfg.model_dump_json(exclude_unset=True), str(bridge.workspace().root))
        except (BalDistillError, ValueError, OSError) as e:
            st.error(f"No estimate for this configuration — {e}")
            return None


def _step_table(est: estimate.Estimate) -> pd.DataFrame:
    rows = [{"step": name, "time": estimate.fmt_seconds(r["seconds"]), "teacher calls": r["calls"],
             "input tokens": r["tokens_in"], "output tokens": r["tokens_out"], "cost": estimate.fmt_cost(r["cost_usd"]),
             "student tokens": r["units"]} for name, r in estimate.by_step(est.steps).items()]
    return pd.DataFrame(rows)


def estimate_panel(cfg: RunConfig | None, *, key: str = "est",
                   shown: estimate.Estimate | None = None) -> estimate.Estimate | None:
    """Totals, per-step table, sources and warnings of ``cfg``'s estimate (or of ``shown``, e.g. a sweep's)."""
    if cfg is None:
        return None
    est = shown or _compute(cfg)
    if est is None:
        return None
    tin, tout = est.tokens
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Estimated time", estimate.fmt_seconds(est.seconds), help="On this machine, all steps together.")
    c2.metric("Teacher calls", est.calls)
    c3.metric("Teacher tokens", f"{tin + tout:,}", help=f"{tin:,} input (counted on the real prompts) + {tout:,} output")
    c4.metric("Teacher cost", estimate.fmt_cost(est.cost_usd), help=est.price["source"])
    for w in est.warnings:
        st.warning(w)
    with st.expander("Estimate per step, and where each figure comes from"):
        st.dataframe(_step_table(est), hide_index=True, width="stretch")
        st.text(f"price: {est.price['source']}")
        st.text("\n".join(f"{k}: {v}" for k, v in sorted(est.sources.items())))
    return est


def launch_gate(cfg: RunConfig | None, *, key: str = "launch",
                repeat: int = 1) -> tuple[bool, bool, estimate.Estimate | None]:
    """The estimate next to the Launch button, of all ``repeat`` runs when it launches a seed sweep.

    Returns (launch allowed, confirmed, estimate of one run)."""
    if cfg is not None and repeat > 1:
        one = _compute(cfg)
        est = None if one is None else estimate_panel(cfg, key=key, shown=one.repeated(repeat))
    else:
        est = one = estimate_panel(cfg, key=key)
    if est is None:
        return False, False, None
    try:
        reasons = estimate.guard(est, cfg, confirmed=True)
    except estimate.CostRefused as e:
        st.error(f"Launch refused — {e}")
        return False, False, one
    if not reasons:
        return True, True, one
    confirmed = st.checkbox("I confirm: " + "; ".join(reasons), key=f"{key}_confirm")
    return confirmed, confirmed, one


def estimate_vs_actual(run: dict) -> None:
    """The run's launch estimate next to what each step really took (time, teacher tokens, cost)."""
    est = estimate.load(run["folder"])
    if est is None:
        st.caption("No launch estimate stored for this run.")
        return
    rows = actuals.compare(est, actuals.load(run["folder"]))

    def t(v):
        return "-" if v is None else estimate.fmt_seconds(v)

    table = pd.DataFrame([{"step": r["step"], "time est.": t(r["est_seconds"]), "time actual": t(r["actual_seconds"]),
                           "tokens est.": r["est_tokens"], "tokens actual": r["actual_tokens"],
                           "cost est.": estimate.fmt_cost(r["est_cost_usd"]),
                           "cost actual": "-" if r["actual_seconds"] is None else estimate.fmt_cost(r["actual_cost_usd"])}
                          for r in rows])
    with st.expander(f"Estimate vs actual (estimated {estimate.fmt_seconds(est.seconds)}, "
                     f"{estimate.fmt_cost(est.cost_usd)})"):
        st.dataframe(table, hide_index=True, width="stretch")
