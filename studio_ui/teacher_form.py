"""The teacher widgets shared by the Training form, the Plan page and "Resume with another teacher".

The API key field is a password box whose value lives only in this browser session's memory: it is
handed to the worker process's environment and never written to the run config or the database.
"""

from __future__ import annotations

from typing import get_args

import streamlit as st

from baldistill_core.config import TeacherConfig
from studio_ui import bridge

TEACHER_F = TeacherConfig.model_fields


def _default(name: str):
    f = TEACHER_F[name]
    return f.default_factory() if f.default_factory is not None else f.default


def teacher_fields(key: str, *, initial: dict | None = None) -> dict:
    """Backend, model, endpoint and key variable; returns the ``teacher`` dict of a run config."""
    initial = initial or {}
    t2, t3 = st.columns(2)
    backends = list(get_args(TEACHER_F["backend"].annotation))
    first = initial.get("backend", _default("backend"))
    backend = t2.selectbox("Teacher backend", backends, index=backends.index(first), key=f"{key}_teacher",
                           help=TEACHER_F["backend"].description)
    teacher: dict = dict(backend=backend)
    if backend != "recorded":
        teacher["model"] = t3.text_input("Teacher model", value=initial.get("model", _default("model")),
                                         key=f"{key}_tmodel", help=TEACHER_F["model"].description)
    if backend == "openai":
        u1, u2 = st.columns(2)
        teacher["base_url"] = u1.text_input("Endpoint base URL", value=initial.get("base_url") or "",
                                            key=f"{key}_url", help=TEACHER_F["base_url"].description) or None
        teacher["api_key_env"] = u2.text_input("API key variable",
                                               value=initial.get("api_key_env", _default("api_key_env")),
                                               key=f"{key}_keyenv", help=TEACHER_F["api_key_env"].description)
    return teacher


def api_key_field(key: str, teacher: dict) -> str | None:
    """The session-only API key box (openai teacher only); None when empty."""
    if teacher.get("backend") != "openai":
        return None
    var = teacher.get("api_key_env") or _default("api_key_env")
    value = st.text_input("API key", type="password", key=f"{key}_apikey",
                          help=f"Used instead of ${var} for runs launched from this browser session: it is kept "
                               "in memory and passed to the run's worker process, never stored in the run config, "
                               "the database or the run folder.")
    return value.strip() or None


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_check(cfg_json: str, has_session_key: bool, content_hash: str):
    # content_hash keys the dataset's version; the key itself never enters the cache, only whether one is typed.
    from baldistill_core.config import RunConfig
    from baldistill_core.teacher.preflight import check_teacher

    return check_teacher(bridge.conn(), RunConfig.model_validate_json(cfg_json),
                         api_key="(typed)" if has_session_key else None)


def check(cfg, api_key: str | None = None):
    """The teacher pre-launch check of ``cfg`` (cached: a recorded teacher reads its recordings file)."""
    info = bridge.dataset_info(cfg.dataset) or {}
    return _cached_check(cfg.model_dump_json(), bool(api_key), str(info.get("content_hash")))


def show_check(check) -> bool:
    """Draw a teacher pre-launch check; True when the run can be launched."""
    for e in check.errors:
        st.error(f"The teacher cannot supply this run — {e}.")
    for w in check.warnings:
        st.warning(f"Teacher: {w}.")
    return not check.errors
