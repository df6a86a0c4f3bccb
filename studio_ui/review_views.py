"""Review page pieces: the reviewer's name, one queue item with its actions, bulk actions, progress.

Every decision goes through ``baldistill_core.synthetic.review`` (one transaction + an audit row) from a
button callback, so the page that redraws already shows the new state. Data are drawn with
``st.text`` / ``st.code`` only: a synthetic example is untrusted text and is never rendered as
Markdown or HTML.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from baldistill_core.synthetic import nearest
from baldistill_core.synthetic import review
from baldistill_core.teacher import imports as teacher_imports
from studio_ui import auth, bridge

REJECT_REASONS = ["wrong answer", "off-topic for the domain", "near-duplicate of a real example",
                  "malformed or low quality"]
STATUS_BADGE = {"pending": ("gray", "pending"), "approved": ("green", "approved"),
                "edited": ("blue", "edited"), "rejected": ("red", "rejected")}


def reviewer_name() -> str:
    """The name recorded with decisions: the signed-in identity for remote users (not editable, so the audit
    trail cannot be forged); on localhost a sidebar text input defaulting to the local user."""
    user = auth.current_user()
    if user is not None and user.via != "local":
        st.session_state["reviewer_name"] = user.name
        return user.name
    if "reviewer_name" not in st.session_state:
        st.session_state["reviewer_name"] = user.name if user else ""
    st.session_state["_reviewer_input"] = st.session_state["reviewer_name"]

    def _keep():
        st.session_state["reviewer_name"] = st.session_state["_reviewer_input"].strip()

    st.sidebar.text_input("Your name (reviewer)", key="_reviewer_input", on_change=_keep,
                          help="Recorded with every decision (audit trail) and with the runs you launch.")
    return st.session_state["reviewer_name"]


def message(kind: str, text: str) -> None:
    st.session_state["review_msg"] = (kind, text)


def restore_filters(options: dict[str, list]) -> None:
    """Give each filter widget its value from the URL (``?f_status=rejected``) when the session has none."""
    for key, opts in options.items():
        raw = st.query_params.get(key)
        if key in st.session_state or raw is None:
            continue
        match = [o for o in opts if str(o) == raw]
        if match:
            st.session_state[key] = match[0]


def keep_filters(options: dict[str, list]) -> None:
    """Mirror the filters into the URL (a filter at its first option leaves the URL clean)."""
    for key, opts in options.items():
        v = st.session_state.get(key)
        if v is None or v == opts[0]:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != str(v):
            st.query_params[key] = str(v)


def loaded_text(rep: dict) -> str:
    """What a load of recorded examples did, auto-rejected and skipped ones included (none hidden)."""
    n_p, n_r, n_s = len(rep["pending"]), len(rep["auto_rejected"]), len(rep["skipped"])
    text = f"Loaded {n_p + n_r} recorded synthetic examples: {n_p} pending review"
    if n_r:
        text += f", {n_r} auto-rejected (the recorded answer disagrees with the gold one; filter by status 'rejected')"
    if n_s:
        text += f"; {n_s} skipped as duplicates or incomplete"
    return text + "."


def show_message() -> None:
    kind, text = st.session_state.pop("review_msg", (None, None))
    if kind == "error":
        st.error(text)
    elif kind:
        st.toast(text)


def _do(action: str, sid: str, version: int, **kw) -> None:
    """Button callback: apply one decision and remember it for 'Undo my last decision'."""
    who = st.session_state.get("reviewer_name", "")
    if not auth.can("reviewer"):
        message("error", "Deciding on synthetic examples needs the reviewer role; ask an operator.")
        return
    conn = bridge.conn()
    try:
        if action == "approve":
            review.approve(conn, sid, who, expected_version=version)
        elif action == "reject":
            reason = st.session_state.get(f"reason_{sid}") or ""
            if not reason:  # no default reason: a quick X must not record one nobody chose
                message("error", "Pick a reason in the box next to Reject first (or type your own), then reject.")
                return
            review.reject(conn, sid, who, reason, expected_version=version)
        elif action == "edit":
            review.edit(conn, sid, who, input=st.session_state.get(f"ed_in_{sid}_{version}"),
                        answer=st.session_state.get(f"ed_ans_{sid}_{version}"),
                        rationale=st.session_state.get(f"ed_rat_{sid}_{version}"), expected_version=version)
        elif action == "undo":
            review.undo(conn, sid, who, expected_version=version)
    except review.ReviewError as e:
        message("error", str(e))
        return
    if action != "undo":
        st.session_state.setdefault("review_undo", []).append(sid)
    message("ok", f"{action}: {sid}")


def undo_last() -> None:
    stack = st.session_state.get("review_undo") or []
    if not stack:
        message("error", "Nothing to undo in this session.")
        return
    if not auth.can("reviewer"):
        message("error", "Undo needs the reviewer role.")
        return
    sid = stack.pop()
    try:
        review.undo(bridge.conn(), sid, st.session_state.get("reviewer_name", ""))
    except review.ReviewError as e:
        message("error", str(e))
        return
    message("ok", f"undone: {sid}")


@st.cache_resource(show_spinner=False, max_entries=64)
def _nearest_index(dataset: str, content_hash: str, domain: str) -> nearest.NearestIndex:
    return nearest.NearestIndex.build(bridge.conn(), dataset, domain)


@st.cache_resource(show_spinner=False, max_entries=64)
def _embedding_index(dataset: str, content_hash: str, domain: str) -> nearest.EmbeddingIndex | None:
    return nearest.EmbeddingIndex.from_bundle(bridge.conn(), bridge.workspace(), dataset, domain)


@st.cache_data(show_spinner="Embedding with MiniLM (the first time this server loads the embedder: about 30 s)…",
               max_entries=2048)
def _vector(text: str):
    return nearest.encode([text])[0]


def has_embeddings(dataset: str, content_hash: str, domain: str) -> bool:
    try:
        return _embedding_index(dataset, content_hash, domain) is not None
    except (ValueError, OSError):  # unreadable bundle or model missing: TF-IDF still works
        return False


def neighbours(dataset: str, content_hash: str, domain: str, text: str, k: int = 3) -> tuple[list[dict], str]:
    """Nearest real examples and how they were found (MiniLM embedding when cached, else TF-IDF)."""
    if st.session_state.get("nearest_by", "embedding") == "embedding" and has_embeddings(dataset, content_hash, domain):
        try:
            return _embedding_index(dataset, content_hash, domain).query_vector(_vector(text), k), "MiniLM embedding"
        except (ValueError, OSError):
            pass
    return _nearest_index(dataset, content_hash, domain).query(text, k), "TF-IDF"


def provenance_line(p: dict) -> str:
    """Where a synthetic example came from: teacher model, backend, batch id or import file + hash."""
    parts = [f"teacher {p.get('teacher_model') or 'unknown model'}", f"via {p.get('backend') or '—'}"]
    if p.get("batch_id"):
        parts.append(f"batch {p['batch_id']}")
    if p.get("source_file"):
        parts.append(f"file {p['source_file']} (sha256 {str(p.get('file_hash') or '')[:12]})")
    return "Provenance: " + " · ".join(parts) + f" · {_when(p.get('at'))}"


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "—"


def item_card(item: dict, dataset: str, content_hash: str, *, focused: bool = False) -> None:
    """One synthetic example with its checks and its approve / reject / edit / undo actions."""
    sid, ver = item["id"], item["version"]
    color, label = STATUS_BADGE[item["status"]]
    with st.container(border=True, key=f"item_{sid}"):
        st.markdown(f":{color}-badge[{label}] &nbsp; domain **{_md_safe(item['domain'])}** · "
                    f"{'run ' + _md_safe(item['run_id']) + ' stage ' + str(item['stage']) if item['run_id'] else 'imported recording'}"
                    f" · `{str(sid).replace('`', '')}`")
        prov = teacher_imports.provenance(bridge.conn(), dataset, synthetic_id=sid)
        if prov:
            st.text(provenance_line(prov))  # file names and model names are data: plain text
        if item["reviewer"]:
            st.caption(f"Decided by {_md_safe(item['reviewer'])} at {_when(item['decided_at'])}"
                       + (f" — reason: {_md_safe(item['reason'])}" if item.get("reason") else ""))
        near, how = neighbours(dataset, content_hash, item["domain"], item["input"])
        if item.get("duplicate_of"):
            st.warning(f"Possible duplicate of {_md_safe(item['duplicate_of'])} (near-duplicate check when it was stored).")
        elif nearest.looks_copied(near):
            st.warning(f"Nearly identical to real example {_md_safe(near[0]['id'])} (similarity {near[0]['similarity']:.2f}).")
        if item.get("verified") == 0:
            st.warning(f"Verification disagrees: the re-solved answer ({_md_safe(item.get('verify_answer'))}) differs "
                       f"from the stated answer ({_md_safe(item['answer'])}).")
        left, right = st.columns([3, 2])
        with left:
            st.caption("Input")
            st.text(item["input"])
            st.caption("Answer")
            st.text(item["answer"])
            st.caption("Teacher rationale")
            st.text(item["rationale"] or "(none)")
            if item.get("original"):
                with st.expander("Original before edits"):
                    for k in ("input", "answer", "rationale"):
                        st.caption(k)
                        st.text(item["original"].get(k) or "")
        with right:
            verdict = {1: "agrees ✓", 0: "disagrees ✗", None: "not checked"}[item.get("verified")]
            st.caption("Verification")
            st.text(f"{verdict}; re-solved answer: {item.get('verify_answer') or '—'}")
            st.caption(f"Nearest real examples ({how} cosine, same domain)")
            for n in near:
                st.text(f"{n['similarity']:.2f} · {n['id']} · answer {n['answer']}\n{_clip(n['input'], 300)}")
        _actions(item, sid, ver, focused)


def _actions(item: dict, sid: str, ver: int, focused: bool) -> None:
    c = st.columns([1, 3, 1, 1])
    c[0].button("Approve", key=f"ap_{sid}", type="primary", on_click=_do, args=("approve", sid, ver),
                disabled=item["status"] == "approved", shortcut="A" if focused else None,
                help="Keyboard: A (first item on the page)" if focused else None)
    c[1].selectbox("Reason", REJECT_REASONS, key=f"reason_{sid}", accept_new_options=True, index=None,
                   placeholder="Reason to reject (pick or type)…", label_visibility="collapsed",
                   help="Pick a reason or type your own. There is no default: a reject always records a reason "
                        "somebody chose.")
    c[2].button("Reject", key=f"rj_{sid}", on_click=_do, args=("reject", sid, ver),
                disabled=item["status"] == "rejected", shortcut="X" if focused else None,
                help="Keyboard: X (first item on the page)" if focused else None)
    c[3].button("Undo", key=f"un_{sid}", on_click=_do, args=("undo", sid, ver),
                disabled=item["status"] == "pending" and not item["reviewer"],
                help="Restore the state before this example's latest decision.")
    with st.expander("Edit in place (keeps the original)"):
        st.text_area("Input", value=item["input"], key=f"ed_in_{sid}_{ver}", height=120)
        st.text_input("Answer", value=item["answer"], key=f"ed_ans_{sid}_{ver}")
        st.text_area("Rationale", value=item["rationale"], key=f"ed_rat_{sid}_{ver}", height=120)
        st.button("Save edit", key=f"ed_{sid}", on_click=_do, args=("edit", sid, ver))
    with st.expander("History"):
        hist = review.history(bridge.conn(), sid)
        st.dataframe([dict(at=_when(h["at"]), action=h["action"], reviewer=h["reviewer"], reason=h["reason"] or "")
                      for h in hist] or [dict(at="", action="no decision yet", reviewer="", reason="")],
                     hide_index=True, width="stretch")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _md_safe(text) -> str:
    """Escape Markdown in a short label (ids, names) placed inside a caption."""
    s = str(text)
    for ch in "\\`*_{}[]<>()#+-.!|:$~":
        s = s.replace(ch, "\\" + ch)
    return s


def progress_bars(prog: dict[str, dict[str, int]]) -> None:
    total = sum(sum(v.values()) for v in prog.values())
    decided = sum(v["approved"] + v["edited"] + v["rejected"] for v in prog.values())
    st.progress(decided / total if total else 0.0,
                text=f"{decided} of {total} decided · "
                     f"{sum(v['approved'] + v['edited'] for v in prog.values())} approved (incl. edited) · "
                     f"{sum(v['rejected'] for v in prog.values())} rejected")
    with st.expander("Decisions per domain", expanded=len(prog) <= 8):
        cols = st.columns(2)
        for i, (d, v) in enumerate(sorted(prog.items())):
            n = sum(v.values())
            done = n - v["pending"]
            cols[i % 2].progress(done / n if n else 0.0, text=f"{_md_safe(d)}: {done}/{n} · ✓{v['approved'] + v['edited']} "
                                                                f"✗{v['rejected']}")
