"""Figures, tables and forms for the Data page (pure presentation over core results)."""

from __future__ import annotations

import re
from pathlib import Path

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


def _upload_columns(up) -> list[str]:
    """The upload's column names from its first row, parsed once per uploaded file (not on every rerun)."""
    from baldistill_core.data.reading import check_upload_size, first_row

    memo = st.session_state.get("_upload_columns")
    if memo and memo[0] == up.file_id:
        return memo[1]
    check_upload_size(up.name, up.size)
    cols = [c for c in first_row(up.name, data=up.getvalue()) if c != "__line__"]
    st.session_state["_upload_columns"] = (up.file_id, cols)
    return cols


def _workspace_file(bridge) -> tuple[str, list[str]] | None:
    """A file already inside the workspace folder: no upload, no size limit (streamed like the CLI)."""
    from baldistill_core.data.loading import confine, first_row

    root = bridge.workspace().root
    rel = st.text_input("Path inside the workspace folder", key="upload_server_path", placeholder="data/train.jsonl",
                        help=f"Relative to {root}. The file is read where it lies, streamed in chunks, with no size "
                             "limit; paths outside the workspace are refused.")
    if not rel:
        st.caption(f"Copy a large file into {root} (for example into a `data/` folder) and give its path here.")
        return None
    try:
        path = confine(Path(root) / rel, [Path(root)])
        return str(path), [c for c in first_row(path) if c != "__line__"]
    except DataError as e:
        st.error(str(e))
        return None


def upload_form(bridge) -> None:
    """Upload a JSONL/CSV/Parquet file (or name one in the workspace folder), map its columns, validate,
    import. Nothing changes on error."""
    # Long on purpose: one form's widgets in page order (source, columns, options, the import itself).
    from studio_ui import auth

    if not auth.allowed("operator", "upload datasets"):
        return
    fields = DatasetSpec.model_fields
    source = st.radio("Source", ["Upload", "File in the workspace folder"], horizontal=True, key="upload_source",
                      help="Browser uploads are limited in size; a file in the workspace folder is not.")
    up = test_up = None
    if source == "Upload":
        up = st.file_uploader("Training file", type=["jsonl", "json", "csv", "tsv", "parquet"], key="upload_train",
                              help=f"At most {st.get_option('server.maxUploadSize')} MB in the browser. A larger file "
                                   "imports from disk with no size limit: pick 'File in the workspace folder', or "
                                   "`baldistill data import NAME PATH` (`--append` adds a further part).")
        test_up = st.file_uploader("Test file (optional)", type=["jsonl", "json", "csv", "tsv", "parquet"],
                                   key="upload_test")
        if up is None:
            st.caption("Each row needs an input, a gold answer and (optionally) a domain column. Files over the "
                       "browser limit import from disk, streamed: pick 'File in the workspace folder' or run "
                       "`baldistill data import NAME PATH`.")
            return
        try:
            columns = _upload_columns(up)
        except DataError as e:
            st.error(str(e))
            return
        train_name = up.name
    else:
        found = _workspace_file(bridge)
        if found is None:
            return
        train_name, columns = found

    def pick(label, key, guess, optional=False):
        opts = (["(none)"] if optional else []) + columns
        idx = opts.index(guess) if guess in opts else 0
        v = st.selectbox(label, opts, index=idx, key=f"upload_{key}", help=fields[f"{key}_field"].description)
        return None if v == "(none)" else v

    if "domain" not in columns:
        st.warning("No column is called 'domain'. Pick the column that holds each example's domain below; with "
                   "(none), every example goes into one domain 'all' and nothing is balanced until you use the "
                   "Map page's clusters as domains.")
    with st.form("upload_form"):
        name = st.text_input("Dataset name", value=Path(train_name).name.rsplit(".", 1)[0].replace(" ", "_")[:64],
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
        append = st.checkbox("Add as a further part of this dataset (append)", key="upload_append",
                             help="Keep the rows already imported under this name and add these; ids must stay "
                                  "unique across all parts.")
        replace = st.checkbox("Replace the existing dataset of this name (bundled demos included)", value=False,
                              key="upload_replace", help="Without this tick an import never overwrites a dataset.")
        submitted = st.form_submit_button("Validate and import", type="primary")
    if submitted:
        try:
            if append and replace:
                raise DataError("'append' adds a part and 'replace' replaces the dataset: tick one of them")
            if up is not None:
                train_name, test_name, uploads = upload_files(up, test_up)
            else:
                test_name, uploads = None, {}
            spec = DatasetSpec(name=name, train_path=train_name, test_path=test_name,
                               input_field=input_field, answer_field=answer_field, domain_field=domain_field,
                               id_field=id_field, task_type=task_type)
            with st.spinner("Importing (streamed in chunks)…"):
                loaded = bridge.import_upload(spec, uploads, append=append, replace=replace)
        except (DataError, ValueError) as e:
            st.error(f"Not imported — {e}")
            return
        added = f" (this part: {loaded.added_train:,} training, {loaded.added_test:,} test)" if append else ""
        # Rerun so that the sidebar picker and the whole page show the new dataset at once.
        st.session_state["upload_flash"] = (
            f"Imported {name}: {loaded.n_train:,} training and {loaded.n_test:,} test examples{added}.",
            list(loaded.warnings))
        st.session_state["dataset"] = name
        st.query_params["dataset"] = name
        st.rerun()


def upload_files(up, test_up) -> tuple[str, str | None, dict[str, bytes]]:
    """(train name, test name, {name: bytes}) of the uploaded files. Uploads are keyed by file name,
    so a test file named like the training file (train/data.jsonl and test/data.jsonl) gets a
    ``test-`` prefix instead of silently replacing the training bytes."""
    train_name = up.name
    uploads = {train_name: up.getvalue()}
    test_name = None
    if test_up is not None:
        test_name = test_up.name if test_up.name != train_name else f"test-{test_up.name}"
        uploads[test_name] = test_up.getvalue()
    return train_name, test_name, uploads


def show_upload_flash() -> None:
    """The result of the last upload, shown once after the rerun that switched to the new dataset."""
    flash = st.session_state.pop("upload_flash", None)
    if flash:
        st.success(flash[0])
        for w in flash[1]:
            st.warning(w)
