"""The read side of imported teacher outputs (written by ``teacher.imports``): what a recorded
teacher replays. Kept apart so the backends read it without importing the importer (and its checks)."""

from __future__ import annotations

from baldistill_core import store


def current_import(conn, dataset: str, kind: str) -> dict | None:
    """The import in use for a dataset and kind ('rationales' | 'synthetic'), or None."""
    return store.one(conn, "SELECT * FROM teacher_imports WHERE dataset = ? AND kind = ? AND current = 1"
                           " ORDER BY id DESC LIMIT 1", (dataset, kind))


def imported_rationales(conn, dataset: str) -> tuple[dict[str, str], str | None]:
    """({example id: rationale}, sha256 of the current import or None) for a dataset's recorded teacher."""
    cur = current_import(conn, dataset, "rationales")
    if cur is None:
        return {}, None
    got = conn.execute("SELECT example_id, rationale FROM teacher_rationales WHERE dataset = ?", (dataset,))
    return {r[0]: r[1] for r in got}, cur["file_hash"]
