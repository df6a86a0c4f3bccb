"""Report a run to an experiment tracker (trackio, MLflow, TensorBoard, W&B) next to our own pages.

``RunConfig.tracking`` picks the backend. What each tracker receives:

- the training loss, through the trainer's own ``report_to`` integration (``Reporting`` below is
  handed to ``student.training``); the trainer's step restarts at 0 every stage;
- per stage (x-axis ``stage`` = stage index + 1, so the base student is 0): live metrics per domain
  named ``eval/<head|tail>/<domain>/<metric>`` and per group ``eval/overall/<macro|micro|head|tail>/
  <metric>``; ``stage/<final_loss|steps|train_seconds|tokens_seen>``; teacher spend ``teacher/<calls|
  paid_calls|cached_calls|examples|cost_usd|budget_used>``;
- at the end: the final test metrics as ``test/...`` (same names) and the final per-domain table
  through the tracker's table API (``wandb.Table``, ``mlflow log_table``, ``trackio.Table``, a
  TensorBoard text table).

The tracker's run id and a link (or the command that opens it) are stored with our run
(``runs.records.set_tracker``) and a resumed run reports to the same tracker run. A tracker that is
not installed, unreachable or raising logs ONE warning in the run log and is switched off: it never
fails the run. Parameters are the run config only; it holds no secret (the teacher's API key is
only named, never stored), and URLs lose any user:password@ and query string before they are sent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from baldistill_core.config import RunConfig
from baldistill_core.runs import records as runs
from baldistill_core.student.training import Reporting

INSTALL = {"trackio": "trackio==0.43.0", "mlflow": "mlflow-skinny==3.17.2", "tensorboard": "tensorboard==2.21.0",
           "wandb": "wandb==0.31.0"}
_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-./ ]")
_CREDENTIALS = re.compile(r"//[^/@\s]+@")


def metric_key(*parts: str) -> str:
    """A metric name every tracker accepts: parts joined by '/', odd characters replaced.

    >>> metric_key("eval", "tail", "money+fx", "accuracy")
    'eval/tail/money_fx/accuracy'
    """
    return "/".join(_KEY_BAD.sub("_", str(p)) for p in parts)


def report_metrics(report, prefix: str, head_tail: tuple[list[str], list[str]] | None = None) -> dict[str, float]:
    """``EvalReport`` -> ``{name: value}``: per domain under its head/tail group, and the overall groups."""
    head, tail = head_tail or ([], [])
    out: dict[str, float] = {}
    for d, ms in report.per_domain.items():
        group = "head" if d in head else "tail" if d in tail else "domain"
        out.update({metric_key(prefix, group, d, m): float(v) for m, v in ms.items() if v is not None and m != "n"})
    for g, ms in report.overall.items():
        out.update({metric_key(prefix, "overall", g.lstrip("_"), m): float(v) for m, v in ms.items()
                    if v is not None and m != "n"})
    return out


def redact_url(url: str) -> str:
    """A URL without user:password@ or query string (tokens ride there).

    >>> redact_url("https://bob:s3cret@api.example.com/v1?key=abc")
    'https://api.example.com/v1'
    """
    p = urlsplit(url)
    host = p.hostname or ""
    netloc = host + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def safe_params(cfg: RunConfig) -> dict[str, str]:
    """The run config flattened (``teacher.model`` ...) with URLs redacted: the tracker's parameters."""
    flat: dict[str, str] = {}

    def walk(prefix: str, v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        elif isinstance(v, str) and "://" in v:
            flat[prefix] = redact_url(v)
        else:
            flat[prefix] = str(v)

    walk("", cfg.model_dump(mode="json"))
    return flat


# ---------------------------------------------------------------- backends


class _Backend:
    """One tracker's API. ``start`` returns (tracker run id, link); the rest log."""

    name = "none"
    env_var: str | None = None

    def __init__(self, cfg: RunConfig, run_id: str, folder: Path, resume_id: str | None):
        self.cfg, self.t = cfg, cfg.tracking
        self.run_name = self.t.run_name or run_id
        # Empty uri: the tracker's own setting if the team has one (MLFLOW_TRACKING_URI, TRACKIO_DIR,
        # WANDB_DIR), else one store per workspace (<workspace>/tracking/<backend>) so runs sit together.
        own = os.environ.get(self.env_var) if self.env_var else None
        local = self.t.uri if self.t.uri and "://" not in self.t.uri else own if own and "://" not in own else None
        workspace = folder.parent.parent  # <workspace>/runs/<id>; a relative folder is read from the workspace
        self.dir = workspace / Path(local).expanduser() if local else workspace / "tracking" / self.name
        self.resume_id = resume_id

    def start(self, params: dict[str, str]) -> tuple[str, str]:
        raise NotImplementedError

    def log(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def table(self, name: str, rows: list[dict]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def trainer(self) -> Reporting:
        return Reporting(report_to=self.name, project=self.t.project, run_name=self.run_name)


class _MLflow(_Backend):
    name = "mlflow"
    env_var = "MLFLOW_TRACKING_URI"

    def start(self, params):
        from mlflow.tracking import MlflowClient

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # an unreachable server fails fast
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        remote = next((u for u in (self.t.uri, os.environ.get(self.env_var)) if u and "://" in u), None)
        self.uri = remote or self.dir.resolve().as_uri()
        if self.uri.startswith("file:"):  # MLflow 3 keeps the file store behind an opt-in
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        self.client = MlflowClient(tracking_uri=self.uri)
        if self.resume_id:
            self.id = self.client.get_run(self.resume_id).info.run_id
            self.client.update_run(self.id, status="RUNNING")
        else:
            exp = self.client.get_experiment_by_name(self.t.project)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(self.t.project)
            self.id = self.client.create_run(exp_id, run_name=self.run_name,
                                             tags={"baldistill.method": self.cfg.method}).info.run_id
            from mlflow.entities import Param

            self.client.log_batch(self.id, params=[Param(k, v[:6000]) for k, v in params.items()])
        exp_id = self.client.get_run(self.id).info.experiment_id
        link = (f"{redact_url(self.uri).rstrip('/')}/#/experiments/{exp_id}/runs/{self.id}"
                if self.uri.startswith("http") else f"mlflow ui --backend-store-uri {self.uri}")
        return self.id, link

    def log(self, metrics, step):
        import time

        from mlflow.entities import Metric

        t = int(time.time() * 1000)
        self.client.log_batch(self.id, metrics=[Metric(k, v, t, step) for k, v in metrics.items()])

    def table(self, name, rows):
        self.client.log_dict(self.id, {"columns": list(rows[0]) if rows else [], "rows": rows}, f"{name}.json")

    def finish(self):
        self.client.set_terminated(self.id, "FINISHED")

    def trainer(self):
        # The trainer's MLflowCallback resumes our run by id (also in `accelerate launch` children).
        env = {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_RUN_ID": self.id, "MLFLOW_EXPERIMENT_NAME": self.t.project,
               "MLFLOW_MAX_LOG_PARAMS": "0",  # the run config is logged once; per-stage args would clash
               **({"MLFLOW_ALLOW_FILE_STORE": "true"} if self.uri.startswith("file:") else {})}
        return Reporting(report_to="mlflow", project=self.t.project, run_name=self.run_name, env=env)


class _TensorBoard(_Backend):
    name = "tensorboard"

    def start(self, params):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = self.dir / self.run_name  # one folder per run; TensorBoard lists its sub-folders
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "metrics"))
        if not self.resume_id:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(params.items())))
        return self.run_name, f"tensorboard --logdir {self.dir}"

    def log(self, metrics, step):
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def table(self, name, rows):
        cols = list(rows[0]) if rows else []
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
        self.writer.add_text(name, "\n".join(lines))
        self.writer.flush()

    def finish(self):
        self.writer.close()

    def trainer(self):
        # One event folder per stage: the trainer's step restarts at 0 every stage.
        return Reporting(report_to="tensorboard", project=self.t.project, run_name=self.run_name,
                         env={"TENSORBOARD_LOGGING_DIR": str(self.run_dir / "train-stage{stage}")})


class _Trackio(_Backend):
    name = "trackio"
    env_var = "TRACKIO_DIR"

    def start(self, params):
        import sys

        if "trackio" not in sys.modules:  # trackio reads TRACKIO_DIR once, when first imported
            os.environ["TRACKIO_DIR"] = str(self.dir)
        import trackio

        if Path(trackio.utils.TRACKIO_DIR) != self.dir:
            raise RuntimeError(f"trackio already writes to {trackio.utils.TRACKIO_DIR} in this process; "
                               f"it cannot switch to {self.dir} (run this run in its own worker)")

        self.trackio = trackio
        self.params = params
        self._init()
        return self.run_name, f"trackio show --project {self.t.project}"

    def _init(self) -> None:
        # The trainer's TrackioCallback calls trackio.finish() after each stage: re-open (same name).
        self.trackio.init(project=self.t.project, name=self.run_name, config=self.params, resume="allow",
                          embed=False, auto_log_gpu=False, auto_log_cpu=False)

    def _current(self):
        if self.trackio.context_vars.current_run.get() is None:
            self._init()

    def log(self, metrics, step):
        self._current()
        self.trackio.log(metrics, step=step)

    def table(self, name, rows):
        import pandas as pd

        self._current()
        self.trackio.log({name: self.trackio.Table(dataframe=pd.DataFrame(rows))})

    def finish(self):
        if self.trackio.context_vars.current_run.get() is not None:
            self.trackio.finish()


class _Wandb(_Backend):
    name = "wandb"
    env_var = "WANDB_DIR"

    def start(self, params):
        import wandb

        self.wandb = wandb
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.t.project, name=self.run_name, id=self.resume_id, resume="allow",
                              dir=str(self.dir), config=params, mode="offline" if self.t.wandb_offline else "online",
                              settings=wandb.Settings(silent=True, x_disable_stats=True))
        self.run.define_metric("stage")
        for group in ("eval", "test", "teacher", "stage"):
            self.run.define_metric(f"{group}/*", step_metric="stage")
        link = self.run.url or f"wandb sync {Path(self.run.dir).parent}"
        return self.run.id, link

    def log(self, metrics, step):
        self.run.log({**metrics, "stage": step})

    def table(self, name, rows):
        cols = list(rows[0]) if rows else []
        self.run.log({name: self.wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in rows])})

    def finish(self):
        self.run.finish()

    def trainer(self):
        # In the worker the trainer's WandbCallback finds our run active; `accelerate launch`
        # children resume it by id.
        env = {"WANDB_PROJECT": self.t.project, "WANDB_RUN_ID": self.run.id, "WANDB_RESUME": "allow",
               "WANDB_DIR": str(self.dir), "WANDB_MODE": "offline" if self.t.wandb_offline else "online"}
        return Reporting(report_to="wandb", project=self.t.project, run_name=self.run_name, env=env)


BACKENDS: dict[str, type[_Backend]] = {"mlflow": _MLflow, "tensorboard": _TensorBoard, "trackio": _Trackio,
                                       "wandb": _Wandb}


# ---------------------------------------------------------------- what the pipeline calls


class RunTracker:
    """The pipeline's one handle on the tracker; every call is a no-op after a failure (or with none)."""

    def __init__(self, conn, run_id: str, backend: _Backend | None, warn: Callable[[str], None]):
        self.conn, self.run_id, self.backend, self.warn = conn, run_id, backend, warn

    @property
    def active(self) -> bool:
        return self.backend is not None

    def _guard(self, what: str, fn, *args):
        if self.backend is None:
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - a tracker must never fail the run
            name = self.backend.name
            self.backend = None
            hint = f" (pip install {INSTALL[name]})" if isinstance(e, ImportError) else ""
            said = _CREDENTIALS.sub("//", str(e))[:300]  # a URL from the environment may carry user:password@
            msg = f"tracking: {name} failed to {what}: {type(e).__name__}: {said}{hint}; the run goes on without it"
            try:
                runs.set_tracker(self.conn, self.run_id, name, status="failed", message=msg)
            finally:
                self.warn(msg)
            return None

    def training(self) -> Reporting:
        """What the trainer reports to (its own ``report_to``), or nothing after a failure."""
        r = self._guard("prepare training", lambda: self.backend.trainer())
        r = r if r is not None else Reporting()
        r.warn = self.warn
        return r

    def stage_eval(self, stage: int, report, head_tail) -> None:
        self._guard("log live metrics", lambda: self.backend.log(report_metrics(report, "eval", head_tail), stage + 1))

    def stage_trained(self, stage: int, result) -> None:
        vals = {"stage/final_loss": result.final_loss, "stage/steps": result.steps,
                "stage/train_seconds": result.train_seconds, "stage/tokens_seen": result.tokens_seen}
        self._guard("log training", lambda: self.backend.log(
            {k: float(v) for k, v in vals.items() if v is not None}, stage + 1))

    def spend(self, stage: int, spend: dict) -> None:
        vals = {k: float(spend.get(k) or 0) for k in ("calls", "paid_calls", "cached_calls", "examples", "cost_usd")}
        vals["budget_used"] = float(spend.get("selected") or 0)
        self._guard("log teacher spend", lambda: self.backend.log(
            {metric_key("teacher", k): v for k, v in vals.items()}, stage + 1))

    def final(self, stage: int, report, head_tail) -> None:
        def go():
            self.backend.log(report_metrics(report, "test", head_tail), stage + 1)
            rows = [{"domain": d, **{m: round(v, 6) for m, v in ms.items()}}
                    for d, ms in list(report.per_domain.items()) + list(report.overall.items())]
            cols = sorted({c for r in rows for c in r} - {"domain"})
            self.backend.table("final_table", [{"domain": r["domain"], **{c: r.get(c) for c in cols}} for r in rows])
        self._guard("log the final table", go)

    def close(self, finished: bool) -> None:
        """Flush and close the tracker run (the run may still be resumed: it reopens by id)."""
        name = self.backend.name if self.backend else None
        self._guard("finish", lambda: self.backend.finish())
        if name and self.backend is not None:
            runs.set_tracker(self.conn, self.run_id, name, status="finished" if finished else "paused")


def start(conn, run_id: str, cfg: RunConfig, folder: Path, *, warn: Callable[[str], None]) -> RunTracker:
    """Open (or, on resume, reopen) the run's tracker run; a failure warns and returns a no-op tracker."""
    name = cfg.tracking.backend
    if name == "none":
        return RunTracker(conn, run_id, None, warn)
    old = runs.tracker(conn, run_id, name)
    tracker = RunTracker(conn, run_id, None, warn)
    tracker.backend = BACKENDS[name](cfg, run_id, Path(folder), (old or {}).get("tracker_run_id"))
    started = tracker._guard("start", lambda: tracker.backend.start(safe_params(cfg)))
    if started is not None:
        tid, link = started
        runs.set_tracker(conn, run_id, name, status="active", tracker_run_id=tid, url=link)
    return tracker
