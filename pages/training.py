"""Training: configure and launch a run (with its CLI twin), then watch it live, cancel or resume it.

All state lives in the database: the page only starts the worker process and polls what it writes,
so closing the tab, opening a second one or restarting the server never loses a run.
"""

import time

import streamlit as st

from baldistill_core.runs import jobs
from baldistill_core.reports import monitor
from baldistill_core.runs import records as runs
from baldistill_core.evaluation.evaluate import SIZE_GROUPS_HELP
from baldistill_core.selection.methods import label as method_label
from baldistill_core.teacher import batch as teacher_batch
from studio_ui import admin, auth, bridge, estimate_view, review_views, run_views, settings, teacher_form

st.title("Training")
dataset = bridge.require_dataset()
ws = bridge.workspace()
conn = bridge.conn()
reviewer = auth.user_name() if not auth.can("operator") else (review_views.reviewer_name() or auth.user_name())

choices = monitor.run_choices(conn, dataset)
wanted = st.query_params.get("run")
launched = st.session_state.pop("launched_run", None)
if launched:
    st.success(f"Launched run `{launched}`: its progress is shown below. The form is closed so that a second "
               "press does not start a duplicate; open it again to launch another run.")

presets = settings.bundled_configs(dataset)
asked = st.query_params.get("config")
if asked in presets and st.session_state.get("_config_applied") != asked:  # a link (the tour) names a config
    settings.apply_config("train", asked, presets[asked])
    st.session_state["_config_applied"] = asked
fresh_config = asked in presets and not launched and not wanted

with st.expander("Launch another run" if launched else "Launch a new run",
                 expanded=(not choices and not wanted) or fresh_config):
    if presets:
        pick = st.selectbox("Start from a bundled config", ["(form defaults)", *presets], key="train_from",
                            index=1 + list(presets).index(asked) if asked in presets else 0,
                            help="Fills the form from a config in assets/configs; the fields the form has no "
                                 "widget for (learning rate, epochs, …) come from that file too.")
        if pick in presets and st.button(f"Load {pick}.yaml into the form", key="train_load"):
            settings.apply_config("train", pick, presets[pick])
            st.rerun()
    cfg, err = run_views.run_form(dataset, "train")
    base = settings.base_config("train", dataset)
    if base:
        st.caption(f"Started from `assets/configs/{base[0]}.yaml`; the command line below holds every field that "
                   "differs from the defaults.")
    api_key = teacher_form.api_key_field("train", cfg.teacher.model_dump() if cfg else {})
    ready = False
    if err:
        st.error(err)
    else:
        ready = teacher_form.show_check(teacher_form.check(cfg, api_key))
        st.caption("Equivalent command line (the same run, headless; drop --detach to run it in the foreground):")
        st.code(run_views.cli_twin(cfg, "run.yaml", ["run", "--detach"]), language="bash")
        with st.popover("Full run config (YAML)"):
            st.code(cfg.to_yaml(), language="yaml")
    repeat = int(st.number_input("Repeat over N seeds", min_value=1, max_value=20, value=1, key="train_repeat",
                                 help="N > 1 launches a seed sweep: one run per seed (the form's seed, +1, ...), "
                                      "one after another; Compare shows them as mean ± CI. Same as "
                                      "`baldistill sweep`. The estimate below then covers all N runs."))
    may_launch, confirmed, est = estimate_view.launch_gate(cfg, repeat=repeat)
    ready = ready and may_launch
    same = st.session_state.get("last_launch")
    if ready and same and same[0] == cfg.model_dump_json():
        ready = st.checkbox(f"Launch this same configuration again (run `{same[1]}` already uses it)",
                            key=f"launch_again_{same[1]}")  # a new key per launch: unticked again
    if st.button("Launch", type="primary", disabled=not ready or not auth.allowed("operator", "launch runs"),
                 key="launch"):
        try:
            if repeat > 1:
                from baldistill_core.runs import sweeps

                _sid, ids, _proc = sweeps.start(ws, conn, cfg, [cfg.seed + k for k in range(repeat)],
                                                api_key=api_key, confirmed=confirmed, estimate=est)
                run_id = ids[0]
            else:
                run_id, _proc = jobs.submit(ws, conn, cfg, created_by=reviewer, api_key=api_key,
                                            confirmed=confirmed, estimate=est)
        except (ValueError, runs.RunError) as e:
            st.error(f"Not launched — {e}")
        else:
            st.query_params["run"] = run_id
            st.session_state["run_pick"] = run_id  # the picker shows the new run, not the previous choice
            st.session_state["launched_run"] = run_id
            st.session_state["last_launch"] = (cfg.model_dump_json(), run_id)
            st.rerun()

if not choices and not wanted:
    st.info(f"No runs on **{dataset}** yet. Configure one above and press Launch; progress appears here.")
    st.stop()

ids = [c["id"] for c in choices]
if wanted and wanted not in ids:
    try:
        other = runs.get_run(conn, wanted)
    except runs.RunError:
        st.error(f"There is no run with id '{wanted}' in this workspace. Pick one of the runs below, or launch a "
                 "new one.")
    else:
        st.warning(f"Run '{wanted}' belongs to dataset {other['dataset']}: switch the dataset in the sidebar to see it.")
    wanted = None
if not ids:
    st.stop()
labels = {c["id"]: c["label"] for c in choices}
if wanted and wanted != st.session_state.get("_run_qp_seen"):
    st.session_state["run_pick"] = wanted  # a link (or a launch) wins over the picker's last value
if st.session_state.get("run_pick") not in ids:
    st.session_state["run_pick"] = ids[0]
run_id = st.selectbox("Run", ids, format_func=labels.get, key="run_pick")
if st.query_params.get("run") != run_id:
    st.query_params["run"] = run_id
st.session_state["_run_qp_seen"] = run_id
admin.manage_panel(run_id)


def _cell(v) -> str:
    return "" if v is None else str(v)


@st.fragment(run_every=2)
def live_panel(run_id: str) -> None:
    try:
        snap = monitor.snapshot(bridge.conn(), run_id)
    except runs.RunError as e:
        st.error(str(e))
        return
    color, label = snap.badge()
    p = snap.progress
    head = st.columns([3, 1, 1])
    head[0].markdown(f":{color}-badge[{label}] &nbsp; **{method_label(snap.config.method)}** · B={snap.config.budget} · "
                     f"K={p['stages']} · student `{snap.config.student.model}` ({snap.config.student.preset})")
    if head[1].button("Cancel", disabled=not (snap.can_cancel and auth.can("operator")), key="cancel_run"):
        st.toast(f"Run {jobs.cancel(bridge.conn(), run_id)}")
        st.rerun(scope="fragment")
    if head[2].button("Resume", disabled=not (snap.can_resume and auth.can("operator")), key="resume_run"):
        try:
            jobs.resume(bridge.workspace(), bridge.conn(), run_id, api_key=st.session_state.get("train_apikey"))
        except (ValueError, runs.RunError) as e:
            st.error(str(e))
        else:
            st.rerun(scope="fragment")
    if snap.tracker:
        run_views.tracker_line(snap.tracker)
    if snap.run.get("error"):
        st.error(f"The run failed: {snap.run['error']}. The log below has the traceback; fix the cause and Resume"
                 " (or resume it with another teacher or key, below).")
    if snap.can_resume and auth.can("operator"):
        admin.resume_with_teacher(run_id, snap.config)
    if snap.state == "awaiting_review":
        st.warning("This run waits for synthetic tail examples to be approved on the Review page; it continues "
                   "when you press Resume after reviewing.")
    if snap.state == "interrupted":
        st.warning("The worker of this run is gone (killed or the machine restarted). Resume continues from the "
                   "last completed step.")
    eta = p.get("eta_s")
    step = p.get("step") or "—"
    st.progress(min(1.0, p["fraction"]), text=f"{p['stages_done']} of {p['stages']} stages done · now: stage "
                f"{p['stage'] if p['stage'] is not None else '—'}, {step}"
                + (f" · ETA {eta / 60:.1f} min" if eta else ""))
    sp = snap.spend
    m = st.columns(4)
    m[0].metric("Budget used (examples)", f"{sp['selected']} / {sp['budget']}",
                help="Examples the teacher really annotated (kept or dropped) plus approved synthetic ones; "
                     "picks still waiting for the teacher cost nothing yet.")
    if snap.config.teacher.backend == "recorded":  # replayed from the bundled recordings: nothing is paid
        m[1].metric("Teacher calls (recorded replays / cached)",
                    f"{sp.get('paid_calls', 0)} / {sp.get('cached_calls', 0)}",
                    help="The recorded teacher replays the bundled outputs: no call is paid for.")
    else:
        m[1].metric("Teacher calls (paid / cached)", f"{sp.get('paid_calls', 0)} / {sp.get('cached_calls', 0)}")
    cap = sp.get("cost_cap_usd")
    m[2].metric("Teacher cost (USD)", f"{sp.get('cost_usd', 0):.4f}" + (f" / {cap:.2f}" if cap else "")
                + (" + ?" if sp.get("unpriced_calls") else ""),
                help=f"{sp['unpriced_calls']} paid calls at an unknown price are not in this sum: add the model to "
                     "the workspace's prices.yaml" if sp.get("unpriced_calls") else None)
    m[3].metric("Live points", len({r["stage"] for r in snap.live}))
    st.progress(min(1.0, sp["selected"] / max(1, sp["budget"])), text="teacher budget spent")
    c1, c2 = st.columns([3, 2])
    if snap.live:
        c1.plotly_chart(run_views.accuracy_figure(snap.live, snap.head, snap.tail, snap.metric), width="stretch",
                        key="live_curves")
        c1.caption(SIZE_GROUPS_HELP)
    else:
        c1.info("No evaluation yet: the per-domain curves appear after the first live evaluation.")
    if snap.loss:
        c2.plotly_chart(run_views.loss_figure(snap.loss), width="stretch", key="loss_curve")
    else:
        c2.info("No training step yet.")
    if snap.stages:
        st.dataframe([dict(stage=s["stage"], status=s["status"], picked=", ".join(f"{k} {n}" for k, n in
                                                                                   sorted(s["picked"].items())),
                           kept=_cell(s["kept"]), dropped=_cell(s["dropped"]),
                           seconds=str(round(s["finished_at"] - s["started_at"]))
                           if s["finished_at"] and s["started_at"] else "") for s in snap.stages],
                     hide_index=True, width="stretch")  # text cells: a stage in progress shows blank, not "None"
    if snap.config.teacher.mode == "batch":
        batches = teacher_batch.batches_of_run(bridge.conn(), run_id)
        st.caption(f"Teacher batches ({len(batches)}): one per stage's calls, polled every "
                   f"{snap.config.teacher.batch_poll_s:g} s; failed lines are retried one by one.")
        if batches:
            st.dataframe([dict(batch=b["remote_id"] or "(uploading)", purpose=b["purpose"], status=b["status"],
                               lines=b["n_lines"], completed=b["n_completed"], failed=b["n_failed"],
                               submitted=b["submissions"]) for b in batches], hide_index=True, width="stretch")
    estimate_view.estimate_vs_actual(snap.run)
    st.caption(f"Log (last {len(snap.logs)} lines) · updated {time.strftime('%H:%M:%S')}")
    st.code("\n".join(f"{time.strftime('%H:%M:%S', time.localtime(r['at']))} {r['level']:<7} {r['message']}"
                      for r in snap.logs) or "(no log lines yet)", language=None)
    st.caption("Worker command: " + run_views.shell(jobs.worker_command(bridge.workspace().root, run_id)))


live_panel(run_id)
