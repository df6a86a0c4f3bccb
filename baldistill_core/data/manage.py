"""Dataset housekeeping: refuse a silent overwrite, delete and rename datasets.

An import under a name that already exists replaces that dataset only when the caller says so
(``replace=True``: the CLI's ``--replace``, the upload form's confirmation); a bundled demo is never
replaced without it either. Delete and rename keep the workspace consistent: a dataset that runs
still use is not deleted, and a rename carries its examples, synthetic examples and runs along.
"""

from __future__ import annotations

import json
import re

from baldistill_core import store
from baldistill_core.errors import DataError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name_free(conn, name: str, *, replace: bool) -> dict | None:
    """The existing dataset called ``name`` (or None); raises unless ``replace`` allows overwriting it."""
    old = store.get_dataset(conn, name)
    if old is None or replace:
        return old
    what = "the bundled demo" if old["bundled"] else "the dataset"
    raise DataError(
        f"{what} {name!r} already exists ({old['n_train']:,} train / {old['n_test']:,} test examples); "
        f"import under another name, or confirm the replacement (CLI: --replace; upload form: tick "
        f"'Replace the existing dataset')"
    )


def _runs_of(conn, name: str) -> list[str]:
    return [r["id"] for r in store.rows(conn, "SELECT id FROM runs WHERE dataset = ? ORDER BY created_at", (name,))]


def _require(conn, name: str) -> dict:
    d = store.get_dataset(conn, name)
    if d is None:
        names = [x["name"] for x in store.list_datasets(conn)]
        raise DataError(f"dataset {name!r} is not in the workspace; datasets are: {', '.join(names) or '(none)'}")
    return d


def delete_dataset(conn, name: str) -> None:
    """Delete a dataset, its examples and its synthetic examples. Refused while runs use it."""
    _require(conn, name)
    used = _runs_of(conn, name)
    if used:
        raise DataError(f"dataset {name!r} is used by {len(used)} run(s) ({', '.join(used[:3])}"
                        f"{'…' if len(used) > 3 else ''}); delete those runs first")
    with store.transaction(conn):
        conn.execute("DELETE FROM reviews WHERE synthetic_id IN (SELECT id FROM synthetic WHERE dataset = ?)",
                     (name,))
        conn.execute("DELETE FROM synthetic WHERE dataset = ?", (name,))
        conn.execute("DELETE FROM examples WHERE dataset = ?", (name,))
        conn.execute("DELETE FROM datasets WHERE name = ?", (name,))


def rename_dataset(conn, old: str, new: str) -> None:
    """Rename a dataset everywhere it is referenced (examples, synthetic examples, runs and their configs)."""
    d = _require(conn, old)
    if d["bundled"]:
        raise DataError(f"{old!r} is a bundled demo and keeps its name (it would be imported again on the next "
                        f"start); import a copy of its file under a new name instead")
    if not NAME_RE.fullmatch(new or ""):
        raise DataError(f"{new!r} is not a valid dataset name; use letters, digits, '_', '-' or '.' (at most 64)")
    if store.get_dataset(conn, new) is not None:
        raise DataError(f"a dataset called {new!r} already exists; pick another name or delete that one first")
    spec = dict(d["spec"], name=new)
    with store.transaction(conn):
        conn.execute("PRAGMA defer_foreign_keys = ON")  # examples point at the old name until the commit
        conn.execute("UPDATE datasets SET name = ?, spec = ? WHERE name = ?", (new, json.dumps(spec), old))
        conn.execute("UPDATE examples SET dataset = ? WHERE dataset = ?", (new, old))
        conn.execute("UPDATE synthetic SET dataset = ? WHERE dataset = ?", (new, old))
        for r in store.rows(conn, "SELECT id, config FROM runs WHERE dataset = ?", (old,)):
            cfg = dict(json.loads(r["config"]), dataset=new)
            conn.execute("UPDATE runs SET dataset = ?, config = ? WHERE id = ?", (new, json.dumps(cfg), r["id"]))
