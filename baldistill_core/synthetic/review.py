"""Human review of synthetic tail examples: the one write path for review decisions.

Every decision (approve, reject, edit, undo) runs in one ``store.transaction``, bumps the row's
``version`` and appends one row to ``reviews`` (the audit trail: who, when, before, after).
Optimistic concurrency: pass ``expected_version`` (the version the reviewer saw) and a decision
made on a stale view raises ``StaleDecision`` instead of silently overwriting someone else's.
Edits keep the first original input/answer/rationale in ``original``. Only ``approved`` and
``edited`` examples reach training (``synthesis.approved_synthetic``).

``run_id=IMPORTED`` selects examples imported from recordings (no run); ``run_id=None`` = any.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError

import json
import sqlite3
from typing import Any

from baldistill_core import store

STATUSES = ("pending", "approved", "edited", "rejected")
IMPORTED = "-"  # run filter value for examples not tied to a run (imported recordings)
_SNAP = ("status", "input", "answer", "rationale", "original", "reason", "reviewer", "decided_at")


class ReviewError(BalDistillError, ValueError):
    """A review action that cannot be applied; the message says why."""


class StaleDecision(ReviewError):
    """Someone else changed the example since it was loaded."""


def _filters(dataset: str, *, status=None, domain=None, run_id=None, stage=None) -> tuple[str, list]:
    sql, params = "dataset = ?", [dataset]
    if status is not None:
        sts = [status] if isinstance(status, str) else list(status)
        bad = [s for s in sts if s not in STATUSES]
        if bad:
            raise ReviewError(f"unknown status {bad[0]!r}; use one of {', '.join(STATUSES)}")
        sql += f" AND status IN ({','.join('?' * len(sts))})"
        params += sts
    if domain is not None:
        sql += " AND domain = ?"
        params.append(domain)
    if run_id is not None:
        sql += " AND run_id IS ?"
        params.append(None if run_id == IMPORTED else run_id)
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    return sql, params


def _parse(r: dict) -> dict:
    r = dict(r)
    r["original"] = json.loads(r["original"]) if r.get("original") else None
    return r


def queue(conn: sqlite3.Connection, dataset: str, *, status=None, domain=None, run_id=None, stage=None,
          limit: int = 50, offset: int = 0) -> list[dict]:
    """Synthetic examples matching the filters (``status`` may be one status or a list), oldest first."""
    where, params = _filters(dataset, status=status, domain=domain, run_id=run_id, stage=stage)
    return [_parse(r) for r in store.rows(
        conn, f"SELECT * FROM synthetic WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
        params + [int(limit), int(offset)])]


def queue_count(conn: sqlite3.Connection, dataset: str, *, status=None, domain=None, run_id=None, stage=None) -> int:
    where, params = _filters(dataset, status=status, domain=domain, run_id=run_id, stage=stage)
    return int(conn.execute(f"SELECT COUNT(*) FROM synthetic WHERE {where}", params).fetchone()[0])


def queue_ids(conn: sqlite3.Connection, dataset: str, *, status=None, domain=None, run_id=None, stage=None) -> list[str]:
    """All ids matching the filters (for bulk actions on a filtered selection)."""
    where, params = _filters(dataset, status=status, domain=domain, run_id=run_id, stage=stage)
    return [r[0] for r in conn.execute(f"SELECT id FROM synthetic WHERE {where} ORDER BY created_at, id", params)]


def get(conn: sqlite3.Connection, sid: str) -> dict:
    r = store.one(conn, "SELECT * FROM synthetic WHERE id = ?", (sid,))
    if r is None:
        raise ReviewError(f"synthetic example {sid!r} does not exist (deleted, or a wrong id)")
    return _parse(r)


def _snapshot(row: dict) -> dict:
    snap = {k: row.get(k) for k in _SNAP}
    if isinstance(snap["original"], str):
        snap["original"] = json.loads(snap["original"])
    return snap


def _check_reviewer(reviewer: str) -> str:
    if not reviewer or not str(reviewer).strip():
        raise ReviewError("a reviewer name is needed for the audit trail; enter your name first")
    return str(reviewer).strip()


def _apply(conn, sid: str, reviewer: str, action: str, changes: dict[str, Any], *, reason: str | None,
           expected_version: int | None, extra_after: dict | None = None) -> dict:
    """Update one example and append its audit row; caller holds the transaction."""
    row = get(conn, sid)
    if expected_version is not None and row["version"] != expected_version:
        raise StaleDecision(
            f"example {sid} was changed by {row.get('reviewer') or 'someone'} (now {row['status']}, version "
            f"{row['version']}, you saw version {expected_version}); reload it and decide again"
        )
    before = _snapshot(row)
    after = {**before, **changes, "reviewer": reviewer, "decided_at": store.now()}
    cur = conn.execute(
        "UPDATE synthetic SET status = ?, input = ?, answer = ?, rationale = ?, original = ?, reason = ?,"
        " reviewer = ?, decided_at = ?, version = version + 1 WHERE id = ? AND version = ?",
        (after["status"], after["input"], after["answer"], after["rationale"],
         json.dumps(after["original"], ensure_ascii=False) if after["original"] is not None else None,
         after["reason"], after["reviewer"], after["decided_at"], sid, row["version"]),
    )
    if cur.rowcount != 1:  # cannot happen inside BEGIN IMMEDIATE, kept as a guard
        raise StaleDecision(f"example {sid} changed while saving; reload it and decide again")
    conn.execute(
        "INSERT INTO reviews(synthetic_id, action, reviewer, reason, before, after, at) VALUES (?,?,?,?,?,?,?)",
        (sid, action, reviewer, reason, store.dumps(before), store.dumps({**after, **(extra_after or {})}),
         after["decided_at"]),
    )
    return {**row, **after, "version": row["version"] + 1}


def approve(conn: sqlite3.Connection, sid: str, reviewer: str, *, expected_version: int | None = None) -> dict:
    reviewer = _check_reviewer(reviewer)
    with store.transaction(conn):
        return _apply(conn, sid, reviewer, "approve", {"status": "approved", "reason": None},
                      reason=None, expected_version=expected_version)


def reject(conn: sqlite3.Connection, sid: str, reviewer: str, reason: str, *,
           expected_version: int | None = None) -> dict:
    reviewer = _check_reviewer(reviewer)
    if not reason or not str(reason).strip():
        raise ReviewError("say why the example is rejected (e.g. 'wrong answer', 'off-topic', 'duplicate')")
    with store.transaction(conn):
        return _apply(conn, sid, reviewer, "reject", {"status": "rejected", "reason": str(reason).strip()},
                      reason=str(reason).strip(), expected_version=expected_version)


def edit(conn: sqlite3.Connection, sid: str, reviewer: str, *, input: str | None = None, answer: str | None = None,
         rationale: str | None = None, expected_version: int | None = None) -> dict:
    """Change input/answer/rationale in place; status becomes 'edited' (accepted with edits)."""
    reviewer = _check_reviewer(reviewer)
    new = {k: v for k, v in (("input", input), ("answer", answer), ("rationale", rationale)) if v is not None}
    if not new:
        raise ReviewError("nothing to edit: give a new input, answer or rationale")
    for k in ("input", "answer"):
        if k in new and not str(new[k]).strip():
            raise ReviewError(f"the {k} cannot be empty")
    with store.transaction(conn):
        row = get(conn, sid)
        original = row["original"] or {k: row[k] for k in ("input", "answer", "rationale")}
        changes = {**{k: str(v).strip() if k != "rationale" else str(v) for k, v in new.items()},
                   "status": "edited", "original": original, "reason": None}
        return _apply(conn, sid, reviewer, "edit", changes, reason=None, expected_version=expected_version)


def history(conn: sqlite3.Connection, sid: str) -> list[dict]:
    """The audit trail of one example, oldest first (before/after parsed)."""
    out = []
    for r in store.rows(conn, "SELECT * FROM reviews WHERE synthetic_id = ? ORDER BY seq", (sid,)):
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
        out.append(r)
    return out


def undo(conn: sqlite3.Connection, sid: str, reviewer: str, *, expected_version: int | None = None) -> dict:
    """Restore the state before the latest decision not yet undone (repeat to go further back)."""
    reviewer = _check_reviewer(reviewer)
    with store.transaction(conn):
        trail = history(conn, sid)
        undone = {r["after"].get("undid") for r in trail if r["action"] == "undo" and r["after"]}
        target = next((r for r in reversed(trail) if r["action"] != "undo" and r["seq"] not in undone), None)
        if target is None:
            raise ReviewError(f"example {sid} has no decision to undo")
        b = target["before"]
        changes = {k: b.get(k) for k in ("status", "input", "answer", "rationale", "original", "reason")}
        row = _apply(conn, sid, reviewer, "undo", changes, reason=f"undo of {target['action']} #{target['seq']}",
                     expected_version=expected_version, extra_after={"undid": target["seq"]})
        # The restored row keeps the reviewer/time of the decision it returns to.
        conn.execute("UPDATE synthetic SET reviewer = ?, decided_at = ? WHERE id = ?",
                     (b.get("reviewer"), b.get("decided_at"), sid))
        row.update(reviewer=b.get("reviewer"), decided_at=b.get("decided_at"))
        return row


def bulk(conn: sqlite3.Connection, ids: list[str], action: str, reviewer: str, reason: str | None = None) -> int:
    """Approve or reject many examples in one transaction; returns how many changed status."""
    reviewer = _check_reviewer(reviewer)
    target = {"approve": "approved", "reject": "rejected"}.get(action)
    if target is None:
        raise ReviewError(f"bulk action {action!r} is not supported; use 'approve' or 'reject'")
    if target == "rejected" and not (reason and reason.strip()):
        raise ReviewError("say why the examples are rejected")
    n = 0
    with store.transaction(conn):
        for sid in dict.fromkeys(ids):
            row = get(conn, sid)
            if row["status"] == target:
                continue
            _apply(conn, sid, reviewer, f"bulk_{action}",
                   {"status": target, "reason": reason.strip() if target == "rejected" else None},
                   reason=reason, expected_version=None)
            n += 1
    return n


def progress(conn: sqlite3.Connection, dataset: str, run_id: str | None = None) -> dict[str, dict[str, int]]:
    """Decisions per domain: {domain: {status: count}} with every status present."""
    where, params = _filters(dataset, run_id=run_id)
    out: dict[str, dict[str, int]] = {}
    for r in conn.execute(f"SELECT domain, status, COUNT(*) FROM synthetic WHERE {where} GROUP BY domain, status"
                          " ORDER BY domain", params):
        out.setdefault(r[0], dict.fromkeys(STATUSES, 0))[r[1]] = r[2]
    return out
