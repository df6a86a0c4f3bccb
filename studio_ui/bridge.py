"""Streamlit-side bridge: cached workspace connections, the dataset picker, cached core calls.

``baldistill_core`` never imports streamlit; pages never open the database themselves. Each
Streamlit script thread gets its own SQLite connection (sqlite3 connections are not meant to be
shared across threads mid-transaction); WAL lets them all read while a worker writes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import streamlit as st

from baldistill_core import store
from baldistill_core.data import loading as data
from baldistill_core.selection import policy
from baldistill_core.data import stats
from baldistill_core.workspace import Workspace, open_workspace

_local = threading.local()


def workspace_root() -> Path:
    return store.default_workspace()


@st.cache_resource(show_spinner="Opening the workspace and importing the bundled demo data…")
def _init_workspace(root: str) -> Workspace:
    ws, conn = open_workspace(root)
    conn.close()
    return ws


def workspace() -> Workspace:
    return _init_workspace(str(workspace_root()))


def conn():
    """This thread's connection to the workspace database."""
    ws = workspace()
    key = str(ws.db_path)
    c = getattr(_local, "conns", {}).get(key)
    if c is None:
        c = ws.connect()
        _local.conns = {**getattr(_local, "conns", {}), key: c}
    return c


def end_of_run() -> None:
    _local.picker_rendered = False


def datasets() -> list[dict]:
    return store.list_datasets(conn())


def current_dataset() -> str | None:
    """The dataset chosen in the sidebar; app.py renders the picker once for every page.

    A page run on its own (AppTest of one file) renders the picker itself.
    """
    if getattr(_local, "picker_rendered", False):
        return st.session_state.get("dataset")
    return dataset_picker()


def require_dataset() -> str:
    """The chosen dataset, or an empty state and a stop when the workspace has none."""
    name = current_dataset()
    if name is None:
        st.info("No dataset in this workspace yet: upload one on the Data page first.")
        st.stop()
    return name


def dataset_picker() -> str | None:
    """Sidebar selectbox; ``st.session_state["dataset"]`` is the truth, mirrored in ``?dataset=``.

    A link with ``?dataset=`` (or a button that sets the query parameter) wins over the last choice.
    """
    _local.picker_rendered = True
    names = [d["name"] for d in datasets()]
    if not names:
        st.sidebar.info("No datasets yet: upload one on the Data page.")
        return None
    qp = st.query_params.get("dataset")
    cur = st.session_state.get("dataset")
    if cur not in names:
        from studio_ui.estimate_view import preferred_dataset

        cur = qp if qp in names else preferred_dataset(names)
    elif qp in names and qp != cur and st.session_state.get("_dataset_qp_seen") != qp:
        cur = qp
    st.session_state["dataset"] = cur
    st.session_state["dataset_picker"] = cur

    def _changed():
        st.session_state["dataset"] = st.session_state["dataset_picker"]

    st.sidebar.selectbox("Dataset", names, key="dataset_picker", on_change=_changed,
                         help="Datasets in this workspace. Bundled demos are imported on first start.")
    cur = st.session_state["dataset"]
    if st.query_params.get("dataset") != cur:
        st.query_params["dataset"] = cur
    st.session_state["_dataset_qp_seen"] = cur
    return cur


def dataset_info(name: str) -> dict | None:
    return store.get_dataset(conn(), name)


@st.cache_data(show_spinner=False, max_entries=32)
def domain_counts(name: str, content_hash: str, split: str = "train") -> dict[str, int]:
    # content_hash is part of the cache key so a re-import invalidates the cached counts.
    return store.domain_counts(conn(), name, split)


@st.cache_data(show_spinner=False, max_entries=32)
def domain_stats(name: str, content_hash: str) -> stats.DomainStats:
    return stats.domain_stats(domain_counts(name, content_hash))


@st.cache_data(show_spinner=False, max_entries=64)
def stage_plan(name: str, content_hash: str, policy_name: str, budget: int, stages: int,
               fill: str | None = None) -> list[policy.StagePlan]:
    return policy.plan(policy_name, domain_counts(name, content_hash), budget, stages, fill=fill)


@st.cache_resource(show_spinner=False, max_entries=4)
def _selection_pool(dataset: str, content_hash: str, teacher_json: str, _cfg) -> dict:
    from baldistill_core.runs.context import RunContext

    return RunContext.build(conn(), _cfg).pool()


def selection_pool(cfg) -> dict:
    """The candidate pool ({id, row, domain} per domain) of ``cfg``'s dataset and teacher, read once per
    dataset content: a Plan page rerun does not read it again. Shared read-only (selection copies it)."""
    return _selection_pool(cfg.dataset, dataset_info(cfg.dataset)["content_hash"], cfg.teacher.model_dump_json(), cfg)


def examples(name: str, domain: str | None, limit: int, offset: int = 0, split: str = "train") -> list[dict]:
    return store.examples(conn(), name, split, domain=domain, limit=limit, offset=offset)


def import_upload(spec, uploads: dict[str, bytes], *, append: bool = False, replace: bool = False):
    """Import uploaded bytes, or (no uploads) a file the caller confined to the workspace folder."""
    loaded = data.import_dataset(conn(), spec, uploads=uploads, append=append, replace=replace)
    st.cache_data.clear()
    return loaded


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
