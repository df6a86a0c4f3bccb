"""Run settings that follow the user across pages: method, budget B, stages K and seed.

Chosen on Data, Plan or Training, a value is kept in the session (``st.session_state``) and mirrored in
the URL (``?method=…&budget=…&stages=…&seed=…``), so the next page starts from it and a reload keeps it.
Streamlit drops a page's widget state when the user switches page, so each page's widgets take their
initial value from here (``initial``) and write back what they show (``remember``). Without a choice the
value is the ``RunConfig`` field's default: every page starts from the same numbers.
"""

from __future__ import annotations

import streamlit as st

from baldistill_core.config import RunConfig
from baldistill_core.selection.methods import METHODS

SHARED = ("method", "budget", "stages", "seed")
_PREFIX = "_shared_"


def default(name: str):
    f = RunConfig.model_fields[name]
    return f.default_factory() if f.default_factory is not None else f.default


def _parse(name: str, raw: str | None):
    if raw is None:
        return None
    if name == "method":
        return raw if raw in METHODS else None
    try:
        v = int(raw)
    except ValueError:
        return None
    if name == "seed":
        return v
    return v if 1 <= v <= (50 if name == "stages" else 10**9) else None


def initial(name: str):
    """The value a page's widget for ``name`` starts from: this session's last choice, else the URL's,
    else the config default."""
    v = st.session_state.get(_PREFIX + name)
    if v is None:
        v = _parse(name, st.query_params.get(name))
    return default(name) if v is None else v


def seed_widget(key: str, name: str) -> None:
    """Give widget ``key`` its initial value once (a widget must not get both ``value`` and a state)."""
    if key not in st.session_state:
        st.session_state[key] = initial(name)


def remember(**values) -> None:
    """Keep the shown values for the other pages and the URL (a default leaves the URL clean)."""
    for name, v in values.items():
        if name not in SHARED or v is None:
            continue
        st.session_state[_PREFIX + name] = v
        if v == default(name):
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != str(v):
            st.query_params[name] = str(v)


def restore_url() -> None:
    """Write the session's choices back into the URL (page navigation clears the query string)."""
    for name in SHARED:
        v = st.session_state.get(_PREFIX + name)
        if v is not None and v != default(name) and st.query_params.get(name) != str(v):
            st.query_params[name] = str(v)
