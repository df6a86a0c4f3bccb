"""The one owner of the ``selections`` table: what each stage of a run picked, kept and dropped.

Every read and write of a run's picks goes through here (the pipeline, the preview, exports and
the spend summary), so the rules — real kinds leave the pool, duplicates copy their source's
outcome, the training order is fixed — live in one place.
"""

from __future__ import annotations

from baldistill_core import store
from baldistill_core.selection.select import REAL_KINDS, StageSelection, duplicate_source

_KIND_ORDER = {"head": 0, "tail_real": 1, "synthetic": 2, "duplicate": 3}


def picked_ids(conn, run_id: str, before_stage: int) -> set[str]:
    """Real examples a run picked before ``before_stage`` (they have left the pool)."""
    return {r["example_id"] for r in store.rows(
        conn, f"SELECT example_id FROM selections WHERE run_id = ? AND stage < ? AND kind IN {REAL_KINDS}",
        (run_id, before_stage))}


def used_synthetic_ids(conn, run_id: str, before_stage: int) -> set[str]:
    """Synthetic examples a run already trained on before ``before_stage`` (never used twice)."""
    return {r["example_id"] for r in store.rows(
        conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage < ? AND kind = 'synthetic'",
        (run_id, before_stage))}


def earlier_real(conn, run_id: str, before_stage: int) -> dict[str, list[str]]:
    """Real ids per domain picked before ``before_stage`` (duplicates may repeat them)."""
    out: dict[str, list[str]] = {}
    for r in store.rows(conn, f"SELECT domain, example_id FROM selections WHERE run_id = ? AND stage < ?"
                              f" AND kind IN {REAL_KINDS} ORDER BY stage, example_id", (run_id, before_stage)):
        out.setdefault(r["domain"], []).append(r["example_id"])
    return out


def save_selection(conn, run_id: str, sel: StageSelection) -> None:
    """Write the stage's picks (replacing any earlier attempt of the same stage)."""
    i = sel.allocation.stage
    conn.execute("DELETE FROM selections WHERE run_id = ? AND stage = ?", (run_id, i))
    conn.executemany(
        "INSERT INTO selections(run_id, stage, example_id, domain, kind, ifd, kept, rationale)"
        " VALUES (?,?,?,?,?,?,?,?)",
        [(run_id, i, p.example_id, p.domain, p.kind, p.ifd, p.kept, p.rationale) for p in sel.picks],
    )


def to_annotate(conn, run_id: str, stage: int) -> list[str]:
    """Real picks of a stage that have no teacher outcome yet (a resume asks only these)."""
    return [r["example_id"] for r in store.rows(
        conn, f"SELECT example_id FROM selections WHERE run_id = ? AND stage = ? AND kind IN {REAL_KINDS}"
              f" AND kept IS NULL ORDER BY example_id", (run_id, stage))]


def keep_without_rationale(conn, run_id: str, stage: int, ids: list[str]) -> None:
    """Random FT trains on gold answers only: keep the picks with an empty rationale."""
    conn.executemany("UPDATE selections SET kept = 1, rationale = '' WHERE run_id = ? AND stage = ?"
                     " AND example_id = ?", [(run_id, stage, x) for x in ids])


def record_annotations(conn, run_id: str, stage: int, notes) -> None:
    """Store the teacher's outcome of real picks (``notes``: objects with id, kept, reason, rationale)."""
    conn.executemany(
        f"UPDATE selections SET kept = ?, drop_reason = ?, rationale = ? WHERE run_id = ? AND stage = ?"
        f" AND example_id = ? AND kind IN {REAL_KINDS}",
        [(1 if a.kept else 0, None if a.kept else (a.reason or "mismatch"), a.rationale or "", run_id, stage, a.id)
         for a in notes])


def resolve_duplicates(conn, run_id: str, stage: int) -> None:
    """A duplicate pick copies the outcome (kept, rationale) of the real pick it repeats."""
    dups = store.rows(conn, "SELECT example_id FROM selections WHERE run_id = ? AND stage = ? AND kind = 'duplicate'",
                      (run_id, stage))
    for r in dups:
        src = store.one(conn, f"SELECT kept, drop_reason, rationale FROM selections WHERE run_id = ?"
                              f" AND example_id = ? AND kind IN {REAL_KINDS}",
                        (run_id, duplicate_source(r["example_id"])))
        if src is not None:
            conn.execute("UPDATE selections SET kept = ?, drop_reason = ?, rationale = ? WHERE run_id = ?"
                         " AND stage = ? AND example_id = ? AND kind = 'duplicate'",
                         (src["kept"], src["drop_reason"], src["rationale"], run_id, stage, r["example_id"]))


def kept_dropped(conn, run_id: str, stage: int) -> tuple[int, int]:
    r = store.one(conn, "SELECT SUM(kept = 1) AS kept, SUM(kept = 0) AS dropped FROM selections"
                        " WHERE run_id = ? AND stage = ?", (run_id, stage))
    return int(r["kept"] or 0), int(r["dropped"] or 0)


def kinds_per_stage(conn, run_id: str) -> list[dict]:
    """Counts per (stage, kind): picked, kept, dropped."""
    return store.rows(conn, "SELECT stage, kind, COUNT(*) AS n, COALESCE(SUM(kept = 1), 0) AS kept,"
                            " COALESCE(SUM(kept = 0), 0) AS dropped FROM selections WHERE run_id = ?"
                            " GROUP BY stage, kind", (run_id,))


def budget_used(conn, run_id: str) -> int:
    """Budget units a run has spent: picks with an outcome (annotated by the teacher — kept or dropped —,
    or kept without a rationale by Random FT, or approved synthetic). A pick still waiting for the
    teacher (``kept`` NULL: a failed or interrupted annotation) has cost nothing yet; duplicates never do."""
    return store.one(conn, "SELECT COUNT(*) AS n FROM selections WHERE run_id = ? AND kind != 'duplicate'"
                           " AND kept IS NOT NULL", (run_id,))["n"]


def training_rows(conn, run_id: str, dataset: str, upto_stage: int) -> list[dict]:
    """The kept training data of stages 0..upto_stage in a fixed order, with inputs and answers.

    Returns dicts ``{example_id, stage, kind, domain, input, answer, rationale}``.
    """
    sels = store.rows(
        conn, "SELECT stage, example_id, domain, kind, rationale FROM selections"
              " WHERE run_id = ? AND stage <= ? AND kept = 1", (run_id, upto_stage))
    sels.sort(key=lambda r: (r["stage"], _KIND_ORDER.get(r["kind"], 9), r["example_id"]))
    real_ids = sorted({duplicate_source(r["example_id"]) for r in sels if r["kind"] != "synthetic"})
    real = {e["id"]: e for e in (store.examples(conn, dataset, "train", ids=real_ids) if real_ids else [])}
    syn_ids = [r["example_id"] for r in sels if r["kind"] == "synthetic"]
    syn = {}
    if syn_ids:
        syn = {r["id"]: r for r in store.rows(
            conn, f"SELECT id, input, answer FROM synthetic WHERE id IN ({','.join('?' * len(syn_ids))})", syn_ids)}
    out = []
    for r in sels:
        src = syn.get(r["example_id"]) if r["kind"] == "synthetic" else real.get(duplicate_source(r["example_id"]))
        if src is None:
            continue
        out.append(dict(example_id=r["example_id"], stage=r["stage"], kind=r["kind"], domain=r["domain"],
                        input=src["input"], answer=src["answer"], rationale=r["rationale"] or ""))
    return out
