"""Forms and figures of the Plan, Training and Compare pages (presentation over core results)."""

from __future__ import annotations

import shlex

import plotly.graph_objects as go
import streamlit as st

from baldistill_core.selection.methods import METHODS, label as method_label
from baldistill_core.selection.policy import POLICIES
from baldistill_core.config import STUDENT_PRESETS, EvalConfig, IFDConfig, RunConfig, StudentConfig, TrackingConfig
from studio_ui import auth, bridge, settings, teacher_form
from studio_ui.charts import HEAD_COLOR, TAIL_COLOR
from studio_ui.run_figures import (accuracy_figure, figure_html, figure_png, grouped_bars,  # noqa: F401  (re-exported)
                                   loss_figure, png_figure, size_groups_scatter, spend_bars)

RUN_F, STUDENT_F = RunConfig.model_fields, StudentConfig.model_fields
STAGE_ROLES_HELP = ("At this stage a domain is head when its remaining pool of real examples covers its quota, "
                    "tail when it cannot (the gap is filled), none when its quota is 0. The Training and Compare "
                    "pages group domains differently: large / small domains by training size.")
from studio_ui.run_figures import HEATMAP_ABOVE  # noqa: E402,F401


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
    # Long on purpose: the form's widgets in the order they appear on the page; splitting it would
    # scatter one form's layout over several functions.
    from studio_ui.estimate_view import cpu_default

    base = cpu_default(dataset)  # a fresh CPU-only workspace starts from the R52 CPU demo (minutes, not hours)

    def _default(fields, name):  # noqa: F811 - the form's defaults come from the starting config first
        section = next((sec for sec, marker in (("teacher", "backend"), ("student", "lora_r"), ("ifd", "variant"),
                                                 ("eval", "live_per_domain")) if marker in fields), None)
        return _base_default(base, section, fields, name)

    c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 2, 2])
    methods = list(METHODS)
    for name in settings.SHARED:  # start from the choice made on another page (or the URL, or the default)
        settings.seed_widget(f"{key}_{name}", name, base.get(name))
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
        engines = _options(STUDENT_F, "engine")
        values["student"]["engine"] = st.selectbox(
            "Generation engine (IFD + evaluation)", engines, index=engines.index(_default(STUDENT_F, "engine")),
            key=f"{key}_engine", help=STUDENT_F["engine"].description)
        values["tracking"] = tracking_fields(key)
        started = settings.base_config(key, dataset)
        if started:  # the fields the form has no widget for come from the config it started from
            clip = values["student"].get("max_input_tokens")
            values = settings.merged(started[1], values)
            if not clip:
                values["student"].pop("max_input_tokens", None)
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
