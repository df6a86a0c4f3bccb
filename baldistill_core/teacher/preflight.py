"""Before a run starts (or resumes): can the chosen teacher supply every step of it?

A recorded teacher replays the outputs recorded for one dataset (the bundled demos ship theirs), so
an uploaded dataset has none; an openai teacher needs an API key unless it talks to a local server.
Found at launch, these problems cost a second instead of a worker start-up and a failed run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.errors import ConfigError
from baldistill_core.selection.methods import method_of


@dataclass
class TeacherCheck:
    errors: list[str] = field(default_factory=list)     # the run cannot work: refuse to launch
    warnings: list[str] = field(default_factory=list)   # the run works, with a caveat worth saying

    def raise_if_blocked(self) -> list[str]:
        if self.errors:
            raise ConfigError("the teacher cannot supply this run — " + "; ".join(self.errors))
        return self.warnings


def needs_teacher(cfg: RunConfig) -> bool:
    m = method_of(cfg)
    return m.train and m.policy is not None and (m.cot or m.synth)


def has_key(cfg: RunConfig, api_key: str | None = None) -> bool:
    return bool(api_key or os.environ.get(cfg.teacher.api_key_env) or cfg.teacher.base_url)


def check_teacher(conn, cfg: RunConfig, *, api_key: str | None = None) -> TeacherCheck:
    """What stops (errors) or limits (warnings) the teacher of ``cfg`` on its dataset."""
    out = TeacherCheck()
    if not needs_teacher(cfg):
        return out
    t = cfg.teacher
    if t.backend == "openai" and not has_key(cfg, api_key):
        out.errors.append(f"no API key for the openai teacher: type it in the 'API key' field (kept for this "
                          f"session only, never stored), or set the environment variable {t.api_key_env} "
                          f"before starting the studio, or set a base URL for a local server")
    elif t.backend == "recorded":
        _check_recorded(conn, cfg, out)
    return out


def _check_recorded(conn, cfg: RunConfig, out: TeacherCheck) -> None:
    from baldistill_core.data.loading import dataset_spec
    from baldistill_core.teacher.backends import BACKENDS

    spec = dataset_spec(conn, cfg.dataset)
    backend = BACKENDS["recorded"](cfg.teacher, spec=spec)
    ids = store.rows(conn, "SELECT id, domain FROM examples WHERE dataset = ? AND split = 'train'", (cfg.dataset,))
    covered = {r["domain"] for r in ids if backend.has_rationale(r["id"])}
    domains = {r["domain"] for r in ids}
    if method_of(cfg).cot and not covered:
        out.errors.append(f"the recorded teacher has no recorded rationales for dataset {cfg.dataset!r} (recordings "
                          f"ship with the bundled demos only); choose the openai teacher with an API key, or the "
                          f"local teacher")
        return
    missing = sorted(domains - covered)
    if method_of(cfg).cot and missing:
        out.warnings.append(f"the recorded teacher has no rationale for {len(missing)} domain(s) "
                            f"({', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}): their examples cannot "
                            f"be annotated, so they count as tail")
    if method_of(cfg).synth and not backend.synthetic:
        out.warnings.append(f"the recorded teacher has no recorded synthetic examples for {cfg.dataset!r}: tail "
                            f"gaps cannot be synthesized")
