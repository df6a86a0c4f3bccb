"""Run settings that follow the user across pages: method, budget B, stages K and seed.

Chosen on Data, Plan or Training, a value is kept in the session (``st.session_state``) and mirrored in
the URL (``?method=…&budget=…&stages=…&seed=…``), so the next page starts from it and a reload keeps it.
Streamlit drops a page's widget state when the user switches page, so each page's widgets take their
initial value from here (``initial``) and write back what they show (``remember``). Without a choice the
value is the ``RunConfig`` field's default: every page starts from the same numbers.
"""

from __future__ import annotations

from pathlib import Path

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


def initial(name: str, fallback=None):
    """The value a page's widget for ``name`` starts from: this session's last choice, else the URL's,
    else ``fallback`` (the starting config: the CPU demo on a CPU-only machine), else the config default."""
    v = st.session_state.get(_PREFIX + name)
    if v is None:
        v = _parse(name, st.query_params.get(name))
    if v is None:
        v = fallback
    return default(name) if v is None else v


def seed_widget(key: str, name: str, fallback=None) -> None:
    """Give widget ``key`` its initial value once (a widget must not get both ``value`` and a state)."""
    if key not in st.session_state:
        st.session_state[key] = initial(name, fallback)


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


FORMS = ("data", "plan", "train")  # the widget key prefixes of the pages that show these settings


def adopt_url() -> None:
    """A link that carries settings (the tour's) wins over this session's last choice, once per new URL
    value; the pages' widgets then restart from it."""
    for name in SHARED:
        raw = st.query_params.get(name)
        v = _parse(name, raw)
        if v is not None and raw != st.session_state.get("_url_seen_" + name) \
                and v != st.session_state.get(_PREFIX + name, default(name)):
            st.session_state[_PREFIX + name] = v
            for form in FORMS:
                st.session_state.pop(f"{form}_{name}", None)
        st.session_state["_url_seen_" + name] = raw


def restore_url() -> None:
    """Write the session's choices back into the URL (page navigation clears the query string)."""
    for name in SHARED:
        v = st.session_state.get(_PREFIX + name)
        if v is not None and v != default(name) and st.query_params.get(name) != str(v):
            st.query_params[name] = str(v)


# ---------------------------------------------------------------- bundled run configs (assets/configs)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "assets" / "configs"
# Run-form widget (key suffix) -> where its value sits in a run config dict.
FORM_FIELDS = {
    "method": ("method",), "budget": ("budget",), "stages": ("stages",), "seed": ("seed",),
    "ifdcap": ("ifd", "candidate_cap_per_domain"), "name": ("name",),
    "smodel": ("student", "model"), "preset": ("student", "preset"), "auto": ("auto_approve",),
    "clip": ("student", "max_input_tokens"), "live": ("eval", "live_per_domain"),
    "final": ("eval", "final_per_domain"),
}


def bundled_configs(dataset: str) -> dict[str, dict]:
    """{file stem: config dict} of the configs in assets/configs for ``dataset``."""
    import yaml

    out = {}
    for p in sorted(CONFIG_DIR.glob("*.yaml")):
        d = yaml.safe_load(p.read_text()) or {}
        if d.get("dataset") == dataset:
            out[p.stem] = d
    return out


def _get(d: dict, path: tuple[str, ...]):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def apply_config(key: str, name: str, cfg: dict) -> None:
    """Fill run form ``key``'s widgets from a config dict; its other fields become the form's base."""
    full = RunConfig.model_validate(cfg).model_dump(mode="json")
    for suffix, path in FORM_FIELDS.items():
        v = _get(full, path)
        st.session_state[f"{key}_{suffix}"] = (v or 0) if suffix == "clip" else v
    st.session_state[f"{key}_base"] = (name, cfg)
    remember(**{n: full[n] for n in SHARED})


def base_config(key: str, dataset: str) -> tuple[str, dict] | None:
    """(name, config dict) the form ``key`` started from, if it is for ``dataset``."""
    base = st.session_state.get(f"{key}_base")
    return base if base and base[1].get("dataset") == dataset else None


def merged(base: dict | None, values: dict) -> dict:
    """The form's values over the base config (nested dicts merged, the form wins)."""
    out = dict(base or {})
    for k, v in values.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
