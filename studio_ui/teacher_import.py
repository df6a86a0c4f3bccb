"""The Data page's "Bring your own teacher outputs" form: upload rationales and/or synthetic examples."""

from __future__ import annotations

import time

import streamlit as st

from baldistill_core.errors import DataError
from baldistill_core.teacher.imports import RationaleFields, SyntheticFields, import_teacher_outputs, imports_of

_TYPES = ["jsonl", "json", "csv", "tsv", "parquet"]


def _fields(prefix: str, names: list[str]) -> list[str]:
    cols = st.columns(len(names))
    return [c.text_input(f"{n} column", value=n, key=f"{prefix}_{n}") for c, n in zip(cols, names)]


def import_form(bridge, dataset: str) -> None:
    """Validate both files fully, then import them in one go; on any problem nothing is written."""
    from studio_ui import auth

    past = imports_of(bridge.conn(), dataset)
    if past:
        st.dataframe([dict(kind=p["kind"], file=p["file_name"], sha256=p["file_hash"][:12], rows=p["n_rows"],
                           model=p["teacher_model"], in_use=bool(p["current"]),
                           imported=time.strftime("%Y-%m-%d %H:%M", time.localtime(p["imported_at"])))
                      for p in past], hide_index=True, width="stretch", key="teacher_imports")
    if not auth.allowed("operator", "import teacher outputs"):
        return
    st.caption("Rationales (example id, rationale, optional model) become this dataset's recorded teacher: a run "
               "with teacher backend 'recorded' replays them at no cost. Synthetic tail examples (domain, input, "
               "answer, rationale) join the review queue as pending. An OpenAI or vLLM batch result file works too.")
    rat = st.file_uploader("Rationales file", type=_TYPES, key="ti_rationales")
    syn = st.file_uploader("Synthetic examples file", type=_TYPES, key="ti_synthetic")
    if rat is None and syn is None:
        return
    with st.form("teacher_import_form"):
        model = st.text_input("Teacher model", value="", help="Recorded as provenance for rows without a model column.")
        rf = RationaleFields(*_fields("ti_r", ["id", "rationale", "model"])) if rat else None
        sf = SyntheticFields(*_fields("ti_s", ["domain", "input", "answer", "rationale", "model"])) if syn else None
        go = st.form_submit_button("Validate and import", type="primary")
    if not go:
        return
    try:
        rep = import_teacher_outputs(bridge.conn(), dataset, teacher_model=model.strip() or None,
                                     rationales=(rat.name, rat.getvalue()) if rat else None,
                                     synthetic=(syn.name, syn.getvalue()) if syn else None,
                                     rationale_fields=rf, synthetic_fields=sf)
    except DataError as e:
        st.error(f"Not imported — {e}")
        return
    st.cache_data.clear()
    if rat:
        st.success("Rationales: this file was imported already; nothing changed." if rep.rationales_unchanged else
                   f"Rationales: {rep.rationales:,} imported, {rep.rationales_flagged:,} flagged (their final answer "
                   f"is not the gold one, so a run drops them).")
    if syn:
        st.success("Synthetic: this file was imported already; nothing changed." if rep.synthetic_unchanged else
                   f"Synthetic: {rep.synthetic_new:,} new pending review, {rep.synthetic_updated:,} updated, "
                   f"{rep.synthetic_kept_reviewed:,} already reviewed (kept), {rep.synthetic_removed:,} removed; "
                   f"flagged: {rep.synthetic_near_train:,} near a training input, {rep.synthetic_flagged:,} whose "
                   f"rationale disagrees with its answer.")
