"""Figures, tables and forms for the Data page (pure presentation over core results)."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import streamlit as st

from baldistill_core.config import DatasetSpec
from baldistill_core.data.loading import DataError
from baldistill_core.selection.policy import StagePlan
from baldistill_core.data.stats import DomainStats

HEAD_COLOR = "#3b5bdb"
TAIL_COLOR = "#f08c00"


_MATH = re.compile(r"(\$\$.+?\$\$|\$[^$\n]+?\$|\\\[.+?\\\]|\\\(.+?\\\))", re.S)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#+\-!|~])")


def math_markdown(text: str) -> str:
    """Markdown that renders a math example's LaTeX (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``) and shows
    everything else literally (markdown characters escaped; an escaped dollar ``\\$`` stays a dollar).

    >>> math_markdown(r"Find $x^2$ if *a* costs \\$5.")
    'Find $x^2$ if \\\\*a\\\\* costs \\\\$5.'
    """
    text = text.replace("\\$", "\x00")
    out = []
    for i, part in enumerate(_MATH.split(text)):
        if i % 2:  # a LaTeX span: kept for st.markdown's KaTeX
            part = part.replace("\\(", "$").replace("\\)", "$").replace("\\[", "$$").replace("\\]", "$$")
            out.append(part.replace("\x00", "\\$"))
        else:
            out.append(_MD_SPECIAL.sub(r"\\\1", part).replace("\x00", "\\$"))
    return "".join(out).replace("\n", "  \n")


def _tail_at_any_stage(plans: list[StagePlan] | None) -> set[str]:
    return {d for p in plans or [] for d in p.tail}


def distribution_chart(s: DomainStats, plans: list[StagePlan] | None, log_scale: bool) -> go.Figure:
    tail = _tail_at_any_stage(plans)
    domains = list(s.counts)
    colors = [TAIL_COLOR if d in tail else HEAD_COLOR for d in domains]
    fig = go.Figure(
        go.Bar(
            x=domains, y=[s.counts[d] for d in domains], marker_color=colors,
            customdata=[[s.shares[d] * 100, "tail at some stage" if d in tail else "head at every stage"] for d in domains],
            hovertemplate="%{x}<br>%{y:,} examples (%{customdata[0]:.2f}%)<br>%{customdata[1]}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Domain distribution — {s.n_domains} domains, {s.total:,} examples"
        + (f" · {len(tail)} tail under this plan" if plans else ""),
        # a log axis with ticks at powers of ten only, written out (plotly's default 2 5 2 5 reads as single digits)
        yaxis=dict(type="log", dtick=1, tickformat=",d") if log_scale else dict(type="linear"),
        yaxis_title="training examples",
        margin=dict(l=10, r=10, t=50, b=10), height=420, xaxis_tickangle=-45 if len(domains) > 12 else 0,
    )
    return fig


def quota_chart(plans: list[StagePlan]) -> go.Figure:
    fig = go.Figure()
    domains = list(plans[0].quota)
    order = sorted(domains, key=lambda d: -plans[0].pool_before[d])
    for p in plans:
        fig.add_bar(
            name=f"stage {p.stage}", x=order, y=[p.quota[d] for d in order],
            marker_pattern_shape=["/" if d in p.tail else "" for d in order],
            customdata=[[p.real[d], p.fill[d], p.role(d)] for d in order],
            hovertemplate="%{x} · stage " + str(p.stage)
            + "<br>quota %{y} = %{customdata[0]} real + %{customdata[1]} filled (%{customdata[2]})<extra></extra>",
        )
    fig.update_layout(barmode="group", height=380, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="quota",
                      xaxis_tickangle=-45 if len(order) > 12 else 0)
    return fig


def domain_table(s: DomainStats, plans: list[StagePlan] | None) -> list[dict]:
    rows = []
    for r in s.table():
        d = r["domain"]
        row = {"rank": r["rank"], "domain": d, "examples": r["count"], "share %": round(r["share"] * 100, 2)}
        if plans:
            row["total quota"] = sum(p.quota[d] for p in plans)
            row["real picks"] = sum(p.real[d] for p in plans)
            row["filled"] = sum(p.fill[d] for p in plans)
            first = next((p.stage for p in plans if p.role(d) == "tail"), None)
            row["tail from stage"] = "never" if first is None else f"stage {first}"  # text: no "None" cell
        rows.append(row)
    return rows


def upload_form(bridge) -> None:
    """Upload a JSONL/CSV/Parquet file, map its columns, validate, import. Nothing changes on error."""
    from studio_ui import auth

    if not auth.allowed("operator", "upload datasets"):
        return
    fields = DatasetSpec.model_fields
    up = st.file_uploader("Training file", type=["jsonl", "json", "csv", "tsv", "parquet"], key="upload_train",
                          help=f"At most {st.get_option('server.maxUploadSize')} MB.")
    test_up = st.file_uploader("Test file (optional)", type=["jsonl", "json", "csv", "tsv", "parquet"], key="upload_test")
    if up is None:
        st.caption("Each row needs an input, a gold answer and (optionally) a domain column.")
        return
    from baldistill_core.data.loading import read_table

    try:
        preview = read_table(up.name, data=up.getvalue())
    except DataError as e:
        st.error(str(e))
        return
    columns = [c for c in preview[0] if c != "__line__"]

    def pick(label, key, guess, optional=False):
        opts = (["(none)"] if optional else []) + columns
        idx = opts.index(guess) if guess in opts else 0
        v = st.selectbox(label, opts, index=idx, key=f"upload_{key}", help=fields[f"{key}_field"].description)
        return None if v == "(none)" else v

    with st.form("upload_form"):
        name = st.text_input("Dataset name", value=up.name.rsplit(".", 1)[0].replace(" ", "_")[:64],
                             help=fields["name"].description)
        c1, c2, c3, c4 = st.columns(4)
        with c1:
            input_field = pick("Input column", "input", "input")
        with c2:
            answer_field = pick("Answer column", "answer", "answer")
        with c3:
            domain_field = pick("Domain column", "domain", "domain", optional=True)
        with c4:
            id_field = pick("Id column", "id", "id", optional=True)
        task_type = st.selectbox("Task type", ["classification", "math", "multiple_choice", "qa"],
                                 help=fields["task_type"].description)
        submitted = st.form_submit_button("Validate and import", type="primary")
    if submitted:
        try:
            spec = DatasetSpec(name=name, train_path=up.name, test_path=test_up.name if test_up else None,
                               input_field=input_field, answer_field=answer_field, domain_field=domain_field,
                               id_field=id_field, task_type=task_type)
            uploads = {up.name: up.getvalue()}
            if test_up:
                uploads[test_up.name] = test_up.getvalue()
            loaded = bridge.import_upload(spec, uploads)
        except (DataError, ValueError) as e:
            st.error(f"Not imported — {e}")
            return
        st.success(f"Imported {name}: {len(loaded.train):,} training and {len(loaded.test):,} test examples.")
        for w in loaded.warnings:
            st.warning(w)
        st.session_state["dataset"] = name
        st.query_params["dataset"] = name
