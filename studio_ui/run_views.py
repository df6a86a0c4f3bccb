"""Forms and figures of the Plan, Training and Compare pages (presentation over core results)."""

from __future__ import annotations

import shlex

import plotly.graph_objects as go
import streamlit as st

from baldistill_core.selection.methods import METHODS, label as method_label
from baldistill_core.config import STUDENT_PRESETS, EvalConfig, IFDConfig, RunConfig, StudentConfig, TrackingConfig
from studio_ui import auth, bridge, teacher_form
from studio_ui.charts import HEAD_COLOR, TAIL_COLOR

RUN_F, STUDENT_F = RunConfig.model_fields, StudentConfig.model_fields
HEATMAP_ABOVE = 12  # domains; above this one line per domain is unreadable


def _default(fields, name):
    f = fields[name]
    return f.default_factory() if f.default_factory is not None else f.default


def _base_default(base: dict, section: str | None, fields, name):
    """A widget's default: the starting config's value (see estimate_view.cpu_default), else config.py's."""
    src = base.get(section, {}) if section else base
    return src[name] if name in src else _default(fields, name)


def _merged(base: dict, values: dict) -> dict:
    out = dict(base)
    for k, v in values.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _options(fields, name) -> list[str]:
    from typing import get_args

    return list(get_args(fields[name].annotation))


def run_form(dataset: str, key: str, *, full: bool = True) -> tuple[RunConfig | None, str | None]:
    """The run config widgets (defaults and help from config.py). Returns (config, error message).

    ``full`` adds the run name, student and evaluation fields (Training); the Plan page gets the
    selection and teacher fields.
    """
    from studio_ui.estimate_view import cpu_default

    base = cpu_default(dataset)  # a fresh CPU-only workspace starts from the R52 CPU demo (minutes, not hours)

    def _default(fields, name):  # noqa: F811 - the form's defaults come from the starting config first
        section = next((sec for sec, marker in (("teacher", "backend"), ("student", "lora_r"), ("ifd", "variant"),
                                                 ("eval", "live_per_domain")) if marker in fields), None)
        return _base_default(base, section, fields, name)

    c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 2, 2])
    methods = list(METHODS)
    method = c1.selectbox("Method", methods, index=methods.index(_default(RUN_F, "method")), key=f"{key}_method",
                          format_func=method_label, help=RUN_F["method"].description)
    budget = c2.number_input("Budget B", min_value=1, value=_default(RUN_F, "budget"), key=f"{key}_budget",
                             help=RUN_F["budget"].description)
    stages = c3.number_input("Stages K", min_value=1, max_value=50, value=_default(RUN_F, "stages"),
                             key=f"{key}_stages", help=RUN_F["stages"].description)
    seed = c4.number_input("Seed", value=_default(RUN_F, "seed"), step=1, key=f"{key}_seed",
                           help="Every random pick depends only on (seed, stage, domain).")
    values: dict = dict(dataset=dataset, method=method, budget=int(budget), stages=int(stages), seed=int(seed))
    ifd_f = IFDConfig.model_fields
    cap = c5.number_input("IFD cap per domain", min_value=1,
                          value=_default(ifd_f, "candidate_cap_per_domain"), key=f"{key}_ifdcap",
                          help=ifd_f["candidate_cap_per_domain"].description)
    values["ifd"] = dict(candidate_cap_per_domain=int(cap))
    m = METHODS[method]
    st.caption(f"Policy of **{m.label}**: {m.policy or 'none (no training)'}"
               + (" · head picks by the student's IFD from stage 1" if m.ifd else "")
               + (" · tail gaps filled by teacher synthesis" if m.synth else ""))
    if full:
        values["name"] = st.text_input("Run name", value=_default(RUN_F, "name"), key=f"{key}_name",
                                       help=RUN_F["name"].description)
    # The Plan page asks the same teacher question as the run: a recorded teacher limits the pool.
    values["teacher"] = teacher_form.teacher_fields(key)
    if full:
        s1, s2, s3 = st.columns(3)
        model = s1.text_input("Student model", value=_default(STUDENT_F, "model"), key=f"{key}_smodel",
                              help=STUDENT_F["model"].description + " 'tiny-llama-test' = a 2-layer test model.")
        presets = list(STUDENT_PRESETS)
        preset = s2.selectbox("Student preset", presets, index=presets.index(_default(STUDENT_F, "preset")),
                              key=f"{key}_preset", help=STUDENT_F["preset"].description)
        values["auto_approve"] = s3.checkbox("Auto-approve synthetic data", value=_default(RUN_F, "auto_approve"),
                                             key=f"{key}_auto", help=RUN_F["auto_approve"].description)
        clip = st.number_input("Clip inputs to N tokens (0 = no clip)", min_value=0,
                               value=_default(STUDENT_F, "max_input_tokens") or 0, key=f"{key}_clip",
                               help=STUDENT_F["max_input_tokens"].description)
        values["student"] = dict(model=model, preset=preset)
        if clip:
            values["student"]["max_input_tokens"] = int(clip)
        user = auth.current_user()
        if user is not None and user.via != "local" and _is_path(model):
            from baldistill_core.data.loading import DataError, confine
            from baldistill_core.workspace import model_cache_dir

            try:  # a remote user may only point at models inside the workspace or the model cache
                confine(model, [bridge.workspace().root, model_cache_dir()])
            except DataError as e:
                return None, f"This configuration is not valid — student model: {e}"
        ev_f = EvalConfig.model_fields
        e1, e2 = st.columns(2)
        live = e1.number_input("Live eval examples per domain", min_value=1, value=_default(ev_f, "live_per_domain"),
                               key=f"{key}_live", help=ev_f["live_per_domain"].description)
        final = e2.number_input("Final test examples per domain", min_value=1,
                                value=_default(ev_f, "final_per_domain"), key=f"{key}_final",
                                help=ev_f["final_per_domain"].description)
        values["eval"] = dict(live_per_domain=int(live), final_per_domain=int(final))
        engines = _options(STUDENT_F, "engine")
        values["student"]["engine"] = st.selectbox(
            "Generation engine (IFD + evaluation)", engines, index=engines.index(_default(STUDENT_F, "engine")),
            key=f"{key}_engine", help=STUDENT_F["engine"].description)
        values["tracking"] = tracking_fields(key)
    try:
        return RunConfig.model_validate(_merged(base, values)), None
    except ValueError as e:
        msgs = [f"{'.'.join(map(str, er['loc']))}: {er['msg']}" if er.get("loc") else er["msg"]
                for er in getattr(e, "errors", lambda: [])()] or [str(e)]
        return None, "This configuration is not valid — " + "; ".join(msgs)


def tracking_fields(key: str) -> dict:
    """The experiment-tracker widgets (RunConfig.tracking); only the backend when it is none."""
    tf = TrackingConfig.model_fields
    k1, k2, k3 = st.columns(3)
    backends = _options(tf, "backend")
    backend = k1.selectbox("Experiment tracker", backends, index=backends.index(_default(tf, "backend")),
                           key=f"{key}_tracker", help=tf["backend"].description)
    out: dict = dict(backend=backend)
    if backend != "none":
        out["project"] = k2.text_input("Tracker project", value=_default(tf, "project"), key=f"{key}_tproject",
                                       help=tf["project"].description)
        out["run_name"] = k3.text_input("Tracker run name", value="", key=f"{key}_trun",
                                        help=tf["run_name"].description) or None
        out["uri"] = st.text_input("Tracker location", value="", key=f"{key}_turi",
                                   help=tf["uri"].description) or None
        if backend == "wandb":
            out["wandb_offline"] = st.checkbox("W&B offline", value=_default(tf, "wandb_offline"),
                                               key=f"{key}_toffline", help=tf["wandb_offline"].description)
    return out


def tracker_line(rec: dict) -> None:
    """The run's experiment tracker: backend, its run id, and the link or command that opens it."""
    if rec["status"] == "failed":
        st.warning(f"Experiment tracker {rec['backend']} is off for this run (the run itself goes on). Why:")
        st.code(rec["message"] or "", language=None)
        return
    st.caption(f"Experiment tracker: **{rec['backend']}** ({rec['status']}) · tracker run id")
    st.text(rec["tracker_run_id"] or "—")
    if rec.get("url"):
        if rec["url"].startswith(("http://", "https://")):
            st.link_button(f"Open in {rec['backend']}", rec["url"])
        st.code(rec["url"], language=None)


def _is_path(model: str) -> bool:
    from pathlib import Path

    return model.startswith(("/", ".", "~")) or Path(model).exists()


def minimal_config(cfg: RunConfig) -> dict:
    """The config's fields that differ from the defaults (a preset stands for its expanded fields)."""
    out = cfg.model_dump(mode="json", exclude_defaults=True)
    out["dataset"] = cfg.dataset
    if "student" in out:
        out["student"] = {k: v for k, v in out["student"].items()
                          if k in ("model", "preset", "max_input_tokens", "engine")}
    return out


def cli_twin(cfg: RunConfig, file: str, verb: list[str]) -> str:
    """A copy-pastable shell snippet: write the config YAML, then run the CLI verb on it."""
    import yaml

    body = yaml.safe_dump(minimal_config(cfg), sort_keys=False).rstrip()
    return f"cat > {file} <<'YAML'\n{body}\nYAML\n" + shell(["baldistill", verb[0], file, *verb[1:]])


def shell(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


# ---------------------------------------------------------------- figures


def _domain_style(d: str, tail: set[str]) -> dict:
    if d in tail:
        return dict(dash="dot", width=1.5, color=TAIL_COLOR)
    return dict(dash="solid", width=1.5, color=HEAD_COLOR)


def accuracy_figure(live: list[dict], head: list[str], tail: list[str], metric: str) -> go.Figure:
    """Per-domain live score by stage: lines (head solid blue, tail dotted orange, macro black) or,
    above ``HEATMAP_ABOVE`` domains, a domain × stage heatmap. Stage -1 is the base student."""
    domains = sorted({r["domain"] for r in live if not r["domain"].startswith("_")})
    stages = sorted({r["stage"] for r in live})
    val = {(r["domain"], r["stage"]): r["value"] for r in live}
    label = {s: ("base" if s < 0 else f"stage {s}") for s in stages}
    fig = go.Figure()
    if len(domains) > HEATMAP_ABOVE:
        tails = set(tail)
        order = sorted(domains, key=lambda d: (d in tails, d))
        fig.add_heatmap(z=[[val.get((d, s)) for s in stages] for d in order], x=[label[s] for s in stages],
                        y=[("◦ " if d in tails else "") + d for d in order], colorscale="Viridis", zmin=0, zmax=1,
                        colorbar=dict(title=metric), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>")
        fig.update_layout(height=max(360, 14 * len(order) + 80), yaxis=dict(autorange="reversed", dtick=1),
                          title=f"Live {metric} per domain (◦ = tail domain)")
    else:
        tails = set(tail)
        for d in domains:
            xs = [label[s] for s in stages if (d, s) in val]
            fig.add_scatter(x=xs, y=[val[(d, s)] for s in stages if (d, s) in val], mode="lines+markers", name=d,
                            line=_domain_style(d, tails), legendgroup="tail" if d in tails else "head",
                            legendgrouptitle_text="tail" if d in tails else "head")
        if any(("_macro", s) in val for s in stages):
            fig.add_scatter(x=[label[s] for s in stages if ("_macro", s) in val],
                            y=[val[("_macro", s)] for s in stages if ("_macro", s) in val], mode="lines+markers",
                            name="macro", line=dict(color="black", width=3))
        fig.update_layout(height=380, yaxis=dict(range=[0, 1.02], title=metric),
                          title=f"Live {metric} per domain (solid = head, dotted = tail)")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), xaxis=dict(type="category", title=None))
    return fig


def loss_figure(loss: list[dict]) -> go.Figure:
    fig = go.Figure()
    for s in sorted({r["stage"] for r in loss}):
        pts = sorted((r["step"], r["value"]) for r in loss if r["stage"] == s)
        fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=f"stage {s}")
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), title="Training loss",
                      xaxis_title="step", yaxis_title="loss")
    return fig


def grouped_bars(scores: list[dict], metric: str) -> go.Figure:
    fig = go.Figure()
    domains = sorted({d for s in scores for d in s["per_domain"]})
    for s in scores:
        ys = [s["per_domain"].get(d) for d in domains]
        ci = s.get("domain_ci") or {}
        err = None
        if ci:  # 95% bootstrap interval of each domain's score (reports.significance.add_intervals)
            err = dict(type="data", symmetric=False, color="#495057", thickness=1,
                       array=[ci[d].high - ci[d].value if d in ci else 0 for d in domains],
                       arrayminus=[ci[d].value - ci[d].low if d in ci else 0 for d in domains])
        fig.add_bar(name=f"{s['name']} ({s['method']}) · {s['run_id'][-4:]}", x=domains, y=ys, error_y=err,
                    text=[None if y is None else f"{y:.2f}" for y in ys], textposition="outside", cliponaxis=False)
    fig.update_layout(barmode="group", height=420, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(title=metric, range=[0, 1.08]),
                      title=f"{metric} per domain", xaxis_tickangle=-45 if len(domains) > 12 else 0,
                      legend=dict(orientation="h"))
    return fig


def head_tail_scatter(scores: list[dict], metric: str) -> go.Figure:
    pts = [s for s in scores if s["head"] is not None and s["tail"] is not None]
    fig = go.Figure(go.Scatter(
        x=[s["head"] for s in pts], y=[s["tail"] for s in pts], mode="markers+text",
        text=[s["name"] for s in pts], textposition="top center", marker=dict(size=14, color=HEAD_COLOR),
        customdata=[[s["method"], s["run_id"]] for s in pts],
        hovertemplate="%{text} · %{customdata[0]}<br>head %{x:.3f} · tail %{y:.3f}<extra>%{customdata[1]}</extra>"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"), showlegend=False,
                    hoverinfo="skip")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10), title=f"Head vs tail {metric}",
                      xaxis=dict(title=f"head {metric}", range=[0, 1]), yaxis=dict(title=f"tail {metric}", range=[0, 1]),
                      showlegend=False)
    return fig


def spend_bars(scores: list[dict]) -> go.Figure:
    names = [s["name"] + " · " + s["run_id"][-4:] for s in scores]
    fig = go.Figure()
    fig.add_bar(name="budget B", x=names, y=[s["budget"] for s in scores], marker_color="#ced4da")
    fig.add_bar(name="examples selected", x=names, y=[s["selected"] for s in scores], marker_color=TAIL_COLOR)
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=40, b=10), title="Budget spent",
                      yaxis_title="examples")
    return fig


PNG_COLORS = ["#3b5bdb", "#f08c00", "#2f9e44", "#c2255c", "#7048e8", "#0c8599", "#e8590c", "#5c940d"]


def png_figure(fig: go.Figure) -> go.Figure:
    """A copy of ``fig`` that renders the same outside the browser. Streamlit's template leaves trace
    colours to its frontend (kaleido drew black legend swatches) and the page's tight margins clipped
    the y ticks and the title: give every trace its colour, a plain white template and room around."""
    out = go.Figure(fig)
    out.update_layout(template="plotly_white", margin=dict(l=80, r=40, t=80, b=60), title_x=0.02,
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"),  # clear of ticks
                      yaxis=dict(automargin=True), xaxis=dict(automargin=True))
    for i, tr in enumerate(out.data):
        if getattr(tr, "marker", None) is not None and tr.marker.color is None:
            tr.marker.color = PNG_COLORS[i % len(PNG_COLORS)]
        if getattr(tr, "line", None) is not None and getattr(tr.line, "color", None) is None and tr.type == "scatter":
            tr.line.color = PNG_COLORS[i % len(PNG_COLORS)]
    return out


def figure_png(fig: go.Figure) -> bytes | None:
    """PNG bytes via kaleido + the system Chromium, or None when that is unavailable (a few seconds:
    call it on demand, never on every render)."""
    import os

    if not os.environ.get("BROWSER_PATH") and os.path.exists("/usr/bin/chromium"):
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"
    try:
        fig = png_figure(fig)
        return fig.to_image(format="png", width=1200, height=int(fig.layout.height or 500) + 40, scale=1)
    except Exception:  # kaleido missing, no Chrome, or it failed to start
        return None


def figure_html(fig: go.Figure) -> str:
    """Self-contained HTML of a figure (plotly.js inlined, works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


# ---------------------------------------------------------------- the stage preview (Plan page)


def quota_figure(pv) -> go.Figure:
    a = pv.allocation
    order = sorted(a.quota, key=lambda d: (-a.quota[d], d))
    fig = go.Figure()
    fig.add_bar(name="real (head picks / tail's real examples)", x=order, y=[a.real[d] for d in order],
                marker_color=[HEAD_COLOR if d in a.head else TAIL_COLOR for d in order])
    fig.add_bar(name="gap filled (synthetic / duplicate)", x=order, y=[a.fill[d] for d in order],
                marker_color=TAIL_COLOR, marker_pattern_shape="/")
    fig.update_layout(barmode="stack", height=340, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="examples",
                      title=f"Stage {pv.stage} quota per domain (blue = head, orange = tail)",
                      xaxis_tickangle=-45 if len(order) > 12 else 0, legend=dict(orientation="h"))
    return fig


def preview_panels(pv) -> None:
    a = pv.allocation
    if a is None:
        return
    m = st.columns(4)
    m[0].metric("Stage budget", a.budget)
    m[1].metric("Head domains", len(a.head))
    m[2].metric("Tail domains", len(a.tail))
    m[3].metric("Gap to fill", sum(a.fill.values()))
    st.plotly_chart(quota_figure(pv), width="stretch", key="plan_quota")
    st.dataframe(pv.rows(), hide_index=True, width="stretch")
    st.subheader("Head picks" + (" — highest IFD first" if pv.by_ifd else " — random"))
    if pv.head_picks:
        st.dataframe(pv.head_picks, hide_index=True, width="stretch",
                     column_config={"ifd": st.column_config.NumberColumn("IFD", format="%.4f")})
    else:
        st.caption("No head picks at this stage.")
    if pv.runners_up:
        st.caption("Runners-up (the next candidates by IFD, not picked):")
        st.dataframe(pv.runners_up, hide_index=True, width="stretch",
                     column_config={"ifd": st.column_config.NumberColumn("IFD", format="%.4f")})
    st.subheader("Tail gaps")
    if not pv.tail_gaps:
        st.caption("No tail domain at this stage: every domain's pool covers its quota.")
    for g in pv.tail_gaps:
        with st.container(border=True):
            st.text(f"{g['domain']}: {g['real']} real + gap of {g['gap']} filled by {g['fill']} · "
                    f"{g['approved']} approved synthetic ready · {g['pending']} pending review · "
                    f"{g['short']} still to synthesize")
            if g["items"]:
                st.dataframe(g["items"], hide_index=True, width="stretch")
    if any(g["short"] for g in pv.tail_gaps):
        nav_link("pages/review.py", "Review synthetic examples", ":material/fact_check:")


def nav_link(path: str, label: str, icon: str | None = None) -> None:
    """``st.page_link`` that degrades to a plain label when the page runs outside ``app.py``'s
    navigation (a page script tested on its own)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(path, label=label, icon=icon)
    except StreamlitAPIException:
        st.caption(f"{label} (open it from the navigation)")
