"""Everything a stage needs to know about a run config, built once: the run and the preview share it.

:class:`RunContext` resolves a ``RunConfig`` against the workspace: the dataset spec and label set,
the method, the effective K, the natural domain sizes, the one :class:`~baldistill_core.task.view.StudentView`
(with the input clip and the student's tokenizer), and the candidate filter of a recorded teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from baldistill_core import store
from baldistill_core.config import RunConfig
from baldistill_core.data import loading as data
from baldistill_core.selection import select as selection
from baldistill_core.selection.methods import Method, method_of
from baldistill_core.task.view import StudentView


def tokenizer_loader(model_name: str) -> Callable[[], object]:
    """A loader of the student's tokenizer, resolved only when the clip needs it."""
    def load():
        from baldistill_core.student.model import load_tokenizer, resolve_model

        return load_tokenizer(resolve_model(model_name))

    return load


@dataclass
class RunContext:
    conn: object
    cfg: RunConfig
    spec: object
    labels: list[str]
    method: Method
    k: int
    sizes: dict[str, int]
    view: StudentView
    _teacher: object = field(default=None, repr=False)
    _pool: dict | None = field(default=None, repr=False)

    @classmethod
    def build(cls, conn, cfg: RunConfig, *, tokenizer=None, teacher=None, pool: dict | None = None) -> "RunContext":
        """``pool``: a candidate pool already read for this dataset content and teacher (a page's cache)."""
        spec = data.dataset_spec(conn, cfg.dataset)
        labels = store.get_dataset(conn, cfg.dataset)["label_set"]
        load = (lambda: tokenizer) if tokenizer is not None else tokenizer_loader(cfg.student.model)
        view = StudentView.for_dataset(spec, labels, max_input_tokens=cfg.student.max_input_tokens,
                                       load_tokenizer=load)
        m = method_of(cfg)
        return cls(conn, cfg, spec, labels, m, m.stages(cfg.stages), selection.domain_sizes(conn, cfg.dataset),
                   view, teacher, pool)

    def recorded_filter(self):
        """A recorded teacher has rationales for part of the inputs only: the pool is those (else None)."""
        if self.cfg.teacher.backend != "recorded":
            return None
        return self.teacher().can_annotate

    def teacher(self, **kw):
        """The run's teacher, built on first use (``kw``: run_id, api_key, budget_examples)."""
        if self._teacher is None:
            from baldistill_core.teacher.client import build_teacher

            self._teacher = build_teacher(self.cfg.teacher, self.conn, spec=self.spec, labels=self.labels, **kw)
        return self._teacher

    def pool(self) -> dict[str, list[dict]]:
        """Real training candidates per domain, ``{id, row, domain}`` without text (restricted to recorded
        inputs for a recorded teacher). Read once per context: the preview replays earlier stages on it."""
        if self._pool is None:
            self._pool = selection.candidate_pool(self.conn, self.cfg.dataset, self.recorded_filter())
        return self._pool
