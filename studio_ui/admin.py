"""Rename and delete datasets and runs (each behind a confirmation), and resume a stopped run with
another teacher or API key. Every action goes through ``baldistill_core`` (data.manage, runs.manage)."""

from __future__ import annotations

import streamlit as st

from baldistill_core.data import manage as data_manage
from baldistill_core.errors import BalDistillError
from baldistill_core.runs import jobs
from baldistill_core.runs import manage as run_manage
from baldistill_core.runs import records as runs
from studio_ui import auth, bridge, teacher_form


def _flash(msg: str) -> None:
    st.session_state["admin_flash"] = msg


def show_flash() -> None:
    msg = st.session_state.pop("admin_flash", None)
    if msg:
        st.success(msg)


def dataset_panel(name: str) -> None:
    """Rename or delete the current dataset."""
    if not auth.can("operator"):
        return
    info = bridge.dataset_info(name)
    with st.expander("Rename or delete this dataset"):
        c1, c2 = st.columns(2)
        if info["bundled"]:
            c1.caption("A bundled demo keeps its name (it is imported again on the next start if missing).")
        else:
            new = c1.text_input("New name", value=name, key="ds_new_name")
            if c1.button("Rename", key="ds_rename", disabled=new.strip() in ("", name)):
                try:
                    data_manage.rename_dataset(bridge.conn(), name, new.strip())
                except BalDistillError as e:
                    c1.error(str(e))
                else:
                    _switch_dataset(new.strip(), f"Renamed {name} to {new.strip()}.")
        sure = c2.checkbox(f"Yes, delete {name} ({info['n_train']:,} train / {info['n_test']:,} test examples); "
                           + ("a bundled demo is imported again on the next start" if info["bundled"]
                              else "this cannot be undone"), key="ds_confirm_delete")
        if c2.button("Delete dataset", key="ds_delete", disabled=not sure):
            try:
                data_manage.delete_dataset(bridge.conn(), name)
            except BalDistillError as e:
                c2.error(str(e))
            else:
                rest = [d["name"] for d in bridge.datasets()]
                _switch_dataset(rest[0] if rest else None, f"Deleted {name}.")


def _switch_dataset(name: str | None, msg: str) -> None:
    st.cache_data.clear()
    _flash(msg)
    if name is None:
        st.session_state.pop("dataset", None)
        st.query_params.pop("dataset", None)
    else:
        st.session_state["dataset"] = name
        st.query_params["dataset"] = name
    st.rerun()


def manage_panel(run_id: str) -> None:
    """Rename or delete the chosen run."""
    show_flash()
    if not auth.can("operator"):
        return
    run = runs.get_run(bridge.conn(), run_id)
    with st.expander("Rename or delete this run"):
        c1, c2 = st.columns(2)
        new = c1.text_input("Run name", value=run["name"], key=f"rn_{run_id}")
        if c1.button("Rename run", key="run_rename", disabled=new.strip() in ("", run["name"])):
            try:
                run_manage.rename_run(bridge.conn(), run_id, new)
            except BalDistillError as e:
                c1.error(str(e))
            else:
                _flash(f"Run {run_id} is now called {new.strip()!r}.")
                st.rerun()
        sure = c2.checkbox(f"Yes, delete run {run_id} with its adapters and metrics; this cannot be undone",
                           key=f"rd_{run_id}")
        if c2.button("Delete run", key="run_delete", disabled=not sure or run["worker_alive"],
                     help="Cancel a running run first."):
            try:
                run_manage.delete_run(bridge.conn(), run_id)
            except BalDistillError as e:
                c2.error(str(e))
            else:
                _flash(f"Deleted run {run_id}.")
                st.query_params.pop("run", None)
                st.session_state.pop("run_pick", None)
                st.rerun()


def resume_with_teacher(run_id: str, cfg) -> None:
    """A stopped run can continue with another teacher or key; the change is written to its log."""
    with st.expander("Resume with another teacher or API key"):
        st.caption("Steps already done keep their teacher's answers; the rest asks the teacher chosen here. "
                   "The change is recorded in the run's log and config.")
        teacher = teacher_form.teacher_fields(f"rs_{run_id}", initial=cfg.teacher.model_dump())
        key = teacher_form.api_key_field(f"rs_{run_id}", teacher)
        try:
            new = cfg.teacher.model_copy(update=teacher)
            new = type(cfg.teacher).model_validate(new.model_dump())
        except ValueError as e:
            st.error(f"This teacher is not valid — {e}")
            return
        if st.button("Resume with this teacher", key="resume_teacher", type="primary"):
            try:
                jobs.resume(bridge.workspace(), bridge.conn(), run_id, teacher=new, api_key=key)
            except (BalDistillError, ValueError) as e:
                st.error(f"Not resumed — {e}")
            else:
                _flash(f"Run {run_id} resumed with the {run_manage.describe_teacher(new)} teacher.")
                st.rerun()
