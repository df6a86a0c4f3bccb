"""What the Training page draws for one run, read from the database in one call.

The worker writes; this module only reads (``runs`` holds the accessors). One snapshot per refresh
keeps the live panel to a handful of small queries, so it redraws every two seconds without
holding a lock the worker needs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from baldistill_core import store
from baldistill_core.evaluation import evaluate
from baldistill_core.runs import records as runs
from baldistill_core.config import RunConfig
from baldistill_core.selection.methods import label as method_label

BADGES = {
    "created": ("gray", "created"),
    "running": ("blue", "running"),
    "awaiting_review": ("orange", "awaiting review"),
    "cancelling": ("orange", "cancelling"),
    "cancelled": ("gray", "cancelled"),
    "failed": ("red", "failed"),
    "finished": ("green", "finished"),
    "interrupted": ("red", "interrupted"),
}


@dataclass
class RunSnapshot:
    run: dict
    config: RunConfig
    progress: dict
    stages: list[dict]
    live: list[dict]                 # metrics rows of split live (stage, domain, metric, value)
    loss: list[dict]                 # metrics rows of split train, metric loss
    test: list[dict]
    spend: dict
    logs: list[dict]
    metric: str                      # the dataset's primary metric
    # The evaluation's size groups (large / small domains, evaluate.head_tail_groups), not the method's
    # per-stage head and tail.
    head: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    tracker: dict | None = None      # the experiment-tracker record (runs.records.tracker), if any

    @property
    def state(self) -> str:
        return self.run["state"]

    @property
    def can_cancel(self) -> bool:
        return self.state in runs.CANCELLABLE

    @property
    def can_resume(self) -> bool:
        return not self.run["worker_alive"] and self.state in runs.RESUMABLE

    def badge(self) -> tuple[str, str]:
        return BADGES.get(self.state, ("gray", self.state))


def snapshot(conn: sqlite3.Connection, run_id: str, *, log_lines: int = 40) -> RunSnapshot:
    """Everything the live panel shows; raises ``runs.RunError`` for an unknown run id."""
    run = runs.get_run(conn, run_id)
    cfg = RunConfig.model_validate(run["config"])
    d = store.get_dataset(conn, cfg.dataset)
    metric = evaluate.primary_metric((d or {}).get("spec", {}).get("task_type", "classification"))
    rows = runs.metrics(conn, run_id)
    head, tail = evaluate.head_tail_groups(store.domain_counts(conn, cfg.dataset, "train"))
    return RunSnapshot(
        run=run, config=cfg, progress=runs.progress(conn, run_id), stages=runs.stage_rows(conn, run_id),
        live=[r for r in rows if r["split"] == "live" and r["metric"] == metric],
        loss=[r for r in rows if r["split"] == "train" and r["metric"] == "loss"],
        test=[r for r in rows if r["split"] == "test" and r["metric"] == metric],
        spend=runs.spend(conn, run_id), logs=runs.log_tail(conn, run_id, log_lines), metric=metric,
        head=head, tail=tail, tracker=runs.tracker(conn, run_id),
    )


def run_choices(conn: sqlite3.Connection, dataset: str | None = None) -> list[dict]:
    """``{id, label}`` for a run picker, newest first."""
    return [dict(id=r["id"],
                 label=f"{r['name']} · {method_label(r['method'])} · B={r['config']['budget']} · {r['id']}")
            for r in runs.list_runs(conn, dataset)]


def student_checkpoints(conn: sqlite3.Connection, dataset: str) -> list[dict]:
    """Finished stages (with a trained adapter) of the dataset's runs: the students that can score IFD.

    ``{run_id, stage, label, model}``, newest run first, latest stage first.
    """
    out = []
    for r in runs.list_runs(conn, dataset):
        model = r["config"].get("student", {}).get("model")
        for s in reversed(runs.stage_rows(conn, r["id"])):
            if s["status"] == "done" and s["adapter_dir"]:
                out.append(dict(run_id=r["id"], stage=s["stage"], model=model,
                                label=f"{r['name']} · {method_label(r['method'])} · stage {s['stage']} student ({model}) · {r['id']}"))
    return out
