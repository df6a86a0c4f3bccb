"""Plan: what a run config would select at a stage — before any teacher money is spent.

Quota per domain (head vs tail), the head examples that would be picked (with the student's IFD
scores and the runners-up), and the tail gaps with the synthetic examples that would fill them.
"""

import streamlit as st

from baldistill_core.reports import monitor
from baldistill_core.runs import preview
from baldistill_core.errors import BalDistillError
from baldistill_core.selection.methods import method_of
from studio_ui import bridge, run_views, teacher_form

st.title("Plan a stage")
dataset = bridge.require_dataset()
conn = bridge.conn()

with st.container(border=True):
    cfg, err = run_views.run_form(dataset, "plan", full=False)
if err:
    st.error(err)
    st.stop()
check = teacher_form.check(cfg)
for problem in check.errors + check.warnings:
    st.warning(f"A run with this teacher: {problem}.")
m = method_of(cfg)
k = m.stages(cfg.stages)
if k == 0:
    st.info(f"{m.label} trains nothing (it evaluates the base student zero-shot), so there is no selection "
            "to plan. Pick another method.")
    st.stop()
students = monitor.student_checkpoints(conn, dataset)
NONE = "(none: no trained student)"
labels = {NONE: NONE, **{f"{s['run_id']}:{s['stage']}": s["label"] for s in students}}
c1, c2 = st.columns([3, 1])
student = c1.selectbox("Student that scores IFD", list(labels), format_func=labels.get, key="plan_student",
                       help="A finished stage s of a run on this dataset: the preview then shows stage s+1 of that "
                            "run (its remaining pool), with head candidates ranked by that student — exactly what "
                            "the run would do next.")
run_id = None
if student == NONE:
    stage = c2.selectbox("Stage", list(range(k)), key="plan_stage",
                         help="Stages are 0-based; each spends its share of the budget B.")
else:
    run_id, s_done = student.rsplit(":", 1)
    stage = int(s_done) + 1
    c2.metric("Stage", stage, help="The stage after the chosen student's.")
    if stage >= k:
        st.error(f"The chosen student is from stage {s_done}, the last stage of K={k} for this config: there is no "
                 "next stage to plan. Raise K or pick an earlier student.")
        st.stop()

verb = ["preview", "--stage", str(stage)] + (["--run-id", run_id] if run_id else [])
st.caption("Command-line twin (prints the same plan as a table):")
st.code(run_views.cli_twin(cfg, "plan.yaml", verb), language="bash")

if not m.ifd:
    st.info(f"**{m.label}** picks head examples at random within each domain: it does not use the student's "
            "IFD scores.")
elif stage == 0:
    st.info("**Stage 0: selection is random.** There is no student yet to judge which examples are hard, and "
            "an early student is too weak to pick useful ones — the method warms up on natural data first "
            "(see docs/method.md). From stage 1 on, the previous stage's student ranks head candidates by IFD.")
elif student == NONE:
    st.info("**No trained student chosen: selection shown at random.** From stage 1 on a run ranks head candidates "
            "by the previous stage's student (IFD = PPL(rationale | input) / PPL(rationale)); pick a student from a "
            "finished run above to see its ranking.")

scored_key = (cfg.model_dump_json(), stage, student)
use_student = m.ifd and student != NONE
try:
    pool = bridge.selection_pool(cfg)   # ids and rows only, read once per dataset content
    pv = preview.preview_stage(conn, cfg, stage, run_id=run_id, pool=pool)
except BalDistillError as e:
    st.error(str(e))
    st.stop()
if use_student:
    n_score = pv.to_score
    saved = st.session_state.get("plan_scored")
    if saved and saved[0] == scored_key:
        pv = saved[1]
    elif st.button(f"Score {n_score} head candidates with this student", type="primary", key="plan_score",
                   help="Greedy generation + two forward passes per candidate; scores are cached per checkpoint."):
        with st.spinner(f"Scoring {n_score} candidates by IFD…"):
            try:
                from baldistill_core.runs.scoring import stage_scorer

                pv = preview.preview_stage(conn, cfg, stage, run_id=run_id, pool=pool,
                                           scorer=stage_scorer(conn, run_id, stage - 1))
            except (BalDistillError, RuntimeError) as e:
                st.error(f"Could not score with that student — {e}")
            else:
                st.session_state["plan_scored"] = (scored_key, pv)
    else:
        st.caption("Head picks below are random until you score them with the student.")

for note in pv.notes:
    if not note.startswith("stage 0:") and not note.startswith("no student checkpoint given"):  # said above
        st.caption(f"Note: {note}")
run_views.preview_panels(pv)
