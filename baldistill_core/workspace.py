"""A workspace: one folder holding the database, run folders and caches."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from baldistill_core import store
from baldistill_core.data import loading as data


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def db_path(self) -> Path:
        return store.workspace_db_path(self.root)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def connect(self) -> sqlite3.Connection:
        return store.connect(self.db_path)


def model_cache_dir() -> Path:
    """Converted models are shared by all workspaces (the SmolLM2 conversion takes ~40 s once)."""
    return Path(os.environ.get("BALDISTILL_CACHE", Path.home() / ".cache" / "baldistill"))


def open_workspace(root: str | Path | None = None, *, bundled: bool = True) -> tuple[Workspace, sqlite3.Connection]:
    """Open (creating) a workspace and import the bundled demo datasets if they are missing."""
    ws = Workspace(Path(root).resolve() if root else store.default_workspace())
    ws.root.mkdir(parents=True, exist_ok=True)
    conn = ws.connect()
    if bundled:
        data.ensure_bundled(conn)
    return ws, conn
