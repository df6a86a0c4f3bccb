"""Forms and figures of the Plan, Training and Compare pages (presentation over core results)."""

from __future__ import annotations

import shlex

import plotly.graph_objects as go
import streamlit as st

from baldistill_core.selection.methods import METHODS, label as method_label
from baldistill_core.selection.policy import POLICIES
from baldistill_core.config import STUDENT_PRESETS, EvalConfig, IFDConfig, RunConfig, StudentConfig
from studio_ui import auth, bridge, settings, teacher_form
from studio_ui.charts import HEAD_COLOR, TAIL_COLOR

RUN_F, STUDENT_F = RunConfig.model_fields, StudentConfig.model_fields
STAGE_ROLES_HELP = ("At this stage a domain is head when its remaining pool of real examples covers its quota, "
                    "tail when it cannot (the gap is filled), none when its quota is 0. The Training and Compare "
                    "pages group domains differently: large / small domains by training size.")
HEATMAP_ABOVE = 12  # domains; above this one line per domain is unreadable


def _default(fields, name):
    f = fields[name]
    return f.default_factory() if f.default_factory is not None else f.default


def run_form(dataset: str, key: str, *, full: bool = True) -> tuple[RunConfig | None, str | None]:
    """The run config widgets (defaults and help from config.py). Returns (config, error message).

    ``full`` adds the run name, student and evaluation fields (Training); the Plan page gets the
    selection and teacher fields.
    """
    c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 2, 2])
    methods = list(METHODS)
    for name in settings.SHARED:  # start from the choice made on another page (or the URL, or the default)
        settings.seed_widget(f"{key}_{name}", name)
    method = c1.selectbox("Method", methods, key=f"{key}_method", format_func=method_label,
                          help=RUN_F["method"].description)
    m = METHODS[method]
    budget = c2.number_input("Budget B", min_value=1, key=f"{key}_budget", help=RUN_F["budget"].description)
    stages = c3.number_input("Stages K", min_value=1, max_value=50, key=f"{key}_stages",
                             disabled=m.ignores_stages(), help=RUN_F["stages"].description
                             + (f" Ignored by {m.label}: {stages_note(m)}" if m.ignores_stages() else ""))
    seed = c4.number_input("Seed", step=1, key=f"{key}_seed",
                           help="Every random pick depends only on (seed, stage, domain).")
    settings.remember(method=method, budget=int(budget), stages=int(stages), seed=int(seed))
    values: dict = dict(dataset=dataset, method=method, budget=int(budget), stages=int(stages), seed=int(seed))
    ifd_f = IFDConfig.model_fields
    cap = c5.number_input("IFD cap per domain", min_value=1,
                          key=_init(f"{key}_ifdcap", _default(ifd_f, "candidate_cap_per_domain")),
                          help=ifd_f["candidate_cap_per_domain"].description)
    values["ifd"] = dict(candidate_cap_per_domain=int(cap))
    if m.ignores_stages():
        st.caption(f"**K is ignored by {m.label}**: {stages_note(m)}")
    st.caption(f"Policy of **{m.label}**: {POLICIES[m.policy].label.lower() if m.policy else 'none (no training)'}"
               + (" · head picks by the student's IFD from stage 1" if m.ifd else "")
               + (" · tail gaps filled by teacher synthesis" if m.synth else ""))
    if full:
        values["name"] = st.text_input("Run name", key=_init(f"{key}_name", _default(RUN_F, "name")),
                                       help=RUN_F["name"].description)
    # The Plan page asks the same teacher question as the run: a recorded teacher limits the pool.
    values["teacher"] = teacher_form.teacher_fields(key)
    if full:
        values.update(_full_fields(key))
        user = auth.current_user()
        model = values["student"]["model"]
        if user is not None and user.via != "local" and _is_path(model):
            from baldistill_core.data.loading import DataError, confine
            from baldistill_core.workspace import model_cache_dir

            try:  # a remote user may only point at models inside the workspace or the model cache
                confine(model, [bridge.workspace().root, model_cache_dir()])
            except DataError as e:
                return None, f"This configuration is not valid — student model: {e}"
        base = settings.base_config(key, dataset)
        if base:  # the fields the form has no widget for come from the config it started from
            clip = values["student"].get("max_input_tokens")
            values = settings.merged(base[1], values)
            if not clip:
                values["student"].pop("max_input_tokens", None)
    try:
        return RunConfig.model_validate(values), None
    except ValueError as e:
        msgs = [f"{'.'.join(map(str, er['loc']))}: {er['msg']}" if er.get("loc") else er["msg"]
                for er in getattr(e, "errors", lambda: [])()] or [str(e)]
        return None, "This configuration is not valid — " + "; ".join(msgs)


def _init(key: str, value) -> str:
    """A widget key whose first value is ``value`` (later runs keep what the user or a preset set)."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def _full_fields(key: str) -> dict:
    """Training's extra widgets: student, auto-approve, input clip, evaluation sizes."""
    values: dict = {}
    s1, s2, s3 = st.columns(3)
    model = s1.text_input("Student model", key=_init(f"{key}_smodel", _default(STUDENT_F, "model")),
                          help=STUDENT_F["model"].description + " 'tiny-llama-test' = a 2-layer test model.")
    preset = s2.selectbox("Student preset", list(STUDENT_PRESETS), key=_init(f"{key}_preset",
                                                                              _default(STUDENT_F, "preset")),
                          help=STUDENT_F["preset"].description + " Training settings: "
                          + "; ".join(f"{n}: lr {p['learning_rate']}, {p['epochs']:g} epochs, batch {p['batch_size']}"
                                      for n, p in STUDENT_PRESETS.items()))
    values["auto_approve"] = s3.checkbox("Auto-approve synthetic data",
                                         key=_init(f"{key}_auto", _default(RUN_F, "auto_approve")),
                                         help=RUN_F["auto_approve"].description)
    clip = st.number_input("Clip inputs to N tokens (0 = no clip)", min_value=0,
                           key=_init(f"{key}_clip", _default(STUDENT_F, "max_input_tokens") or 0),
                           help=STUDENT_F["max_input_tokens"].description)
    values["student"] = dict(model=model, preset=preset)
    if clip:
        values["student"]["max_input_tokens"] = int(clip)
    ev_f = EvalConfig.model_fields
    e1, e2 = st.columns(2)
    live = e1.number_input("Live eval examples per domain", min_value=1,
                           key=_init(f"{key}_live", _default(ev_f, "live_per_domain")),
                           help=ev_f["live_per_domain"].description)
    final = e2.number_input("Final test examples per domain", min_value=1,
                            key=_init(f"{key}_final", _default(ev_f, "final_per_domain")),
                            help=ev_f["final_per_domain"].description)
    values["eval"] = dict(live_per_domain=int(live), final_per_domain=int(final))
    return values


def stages_note(m) -> str:
    """Why a method ignores the Stages K setting (for the forms)."""
    if not m.train:
        return "it trains nothing, so it has no stage."
    return "it spends the whole budget in one stage."


def _is_path(model: str) -> bool:
    from pathlib import Path

    return model.startswith(("/", ".", "~")) or Path(model).exists()


def minimal_config(cfg: RunConfig) -> dict:
    """The config's fields that differ from the defaults (a preset stands for its expanded fields)."""
    out = cfg.model_dump(mode="json", exclude_defaults=True)
    out["dataset"] = cfg.dataset
    if "student" in out:  # the preset stands for its fields: keep only what differs from its expansion
        full = cfg.student.model_dump(mode="json")
        expanded = StudentConfig.model_validate(dict(model=full["model"], preset=full["preset"])).model_dump(mode="json")
        out["student"] = {k: v for k, v in full.items() if k in ("model", "preset") or v != expanded.get(k)}
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
    """Per-domain live score by stage: lines (large domains solid blue, small domains dotted orange, macro
    black) or, above ``HEATMAP_ABOVE`` domains, a domain × stage heatmap. Stage -1 is the base student.
    ``head`` / ``tail`` are the evaluation's size groups (``evaluate.head_tail_groups``)."""
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
                          title=f"Live {metric} per domain (◦ = small domain)")
    else:
        tails = set(tail)
        for d in domains:
            xs = [label[s] for s in stages if (d, s) in val]
            fig.add_scatter(x=xs, y=[val[(d, s)] for s in stages if (d, s) in val], mode="lines+markers", name=d,
                            line=_domain_style(d, tails), legendgroup="small" if d in tails else "large",
                            legendgrouptitle_text="small domains" if d in tails else "large domains")
        if any(("_macro", s) in val for s in stages):
            fig.add_scatter(x=[label[s] for s in stages if ("_macro", s) in val],
                            y=[val[("_macro", s)] for s in stages if ("_macro", s) in val], mode="lines+markers",
                            name="macro", line=dict(color="black", width=3))
        fig.update_layout(height=380, yaxis=dict(range=[0, 1.02], title=metric),
                          title=f"Live {metric} per domain (solid = large domains, dotted = small domains)")
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
        fig.add_bar(name=f"{s['name']} ({method_label(s['method'])}) · {s['run_id'][-4:]}", x=domains, y=ys,
                    text=[None if y is None else f"{y:.2f}" for y in ys], textposition="outside", cliponaxis=False)
    fig.update_layout(barmode="group", height=420, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(title=metric, range=[0, 1.08]),
                      title=f"{metric} per domain", xaxis_tickangle=-45 if len(domains) > 12 else 0,
                      legend=dict(orientation="h"))
    return fig


def size_groups_scatter(scores: list[dict], metric: str) -> go.Figure:
    """Each run as a point: its score on the large domains (x) against the small domains (y)."""
    lg, sm = "large domains", "small domains"
    pts = [s for s in scores if s[lg] is not None and s[sm] is not None]
    fig = go.Figure(go.Scatter(
        x=[s[lg] for s in pts], y=[s[sm] for s in pts], mode="markers+text",
        text=[s["name"] for s in pts], textposition="top center", marker=dict(size=14, color=HEAD_COLOR),
        customdata=[[method_label(s["method"]), s["run_id"]] for s in pts],
        hovertemplate="%{text} · %{customdata[0]}<br>large domains %{x:.3f} · small domains %{y:.3f}"
                      "<extra>%{customdata[1]}</extra>"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"), showlegend=False,
                    hoverinfo="skip")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Large vs small domains ({metric})",
                      xaxis=dict(title=f"{metric} on the large domains", range=[0, 1]),
                      yaxis=dict(title=f"{metric} on the small domains", range=[0, 1]), showlegend=False)
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
    # The legend sits above the plot, under the title: below it, it covered the (rotated) domain labels.
    fig.update_layout(barmode="stack", height=380, margin=dict(l=10, r=10, t=80, b=10), yaxis_title="examples",
                      title=dict(text=f"Stage {pv.stage} quota per domain (blue = head, orange = tail)", y=0.98),
                      xaxis_tickangle=-45 if len(order) > 12 else 0,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, xanchor="left"))
    return fig


def preview_panels(pv) -> None:
    a = pv.allocation
    if a is None:
        return
    m = st.columns(4)
    m[0].metric("Stage budget", a.budget)
    m[1].metric("Head domains", sum(1 for d in a.head if a.quota[d] > 0), help=STAGE_ROLES_HELP)
    m[2].metric("Tail domains", len(a.tail), help=STAGE_ROLES_HELP)
    m[3].metric("Gap to fill", sum(a.fill.values()))
    st.plotly_chart(quota_figure(pv), width="stretch", key="plan_quota")
    st.dataframe(pv.rows(), hide_index=True, width="stretch")
    st.subheader("Head picks" + (" — highest IFD first" if pv.by_ifd else " — random"))
    if pv.head_picks:
        picks = pv.head_picks if pv.by_ifd else [{k: v for k, v in r.items() if k != "ifd"} for r in pv.head_picks]
        st.dataframe(picks, hide_index=True, width="stretch",  # random picks have no IFD: no column of "None"
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


def nav_link(path: str, label: str, icon: str | None = None, query_params: dict | None = None) -> None:
    """``st.page_link`` that degrades to a plain label when the page runs outside ``app.py``'s
    navigation (a page script tested on its own)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(path, label=label, icon=icon, query_params=query_params)
    except StreamlitAPIException:
        st.caption(f"{label} (open it from the navigation)")
