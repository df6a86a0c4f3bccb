"""One stage's training in its own process, for multi-GPU runs under `accelerate launch`.

With ``student.accelerate_num_processes > 1`` the pipeline writes the stage's examples to the run
folder and runs ``training.accelerate_command(cfg, ["-m", "baldistill_core.student.launch", ...])``:
accelerate starts one process per GPU (data parallel) and each calls ``train_adapter``; rank 0's
adapter is the stage's. Written for multi-GPU machines; only the command is tested here (no GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from baldistill_core.config import StudentConfig


def launch_command(cfg: StudentConfig, base_path, examples_file: Path, out_dir: Path, *, seed: int,
                   init_adapter: Path | None = None, reporting=None, always: bool = False) -> list[str]:
    from baldistill_core.student.training import accelerate_command

    args = ["-m", "baldistill_core.student.launch", "--base", str(base_path), "--examples", str(examples_file),
            "--config", cfg.model_dump_json(), "--out", str(out_dir), "--seed", str(seed)]
    if init_adapter:
        args += ["--init-adapter", str(init_adapter)]
    if reporting is not None and reporting.report_to != "none":
        args += ["--report-to", reporting.report_to, "--project", reporting.project or "",
                 "--run-name", reporting.run_name or ""]
    return accelerate_command(cfg, args, always=always)


def launch(cfg: StudentConfig, base_path, examples: list[dict], out_dir: Path, *, seed: int,
           init_adapter: Path | None = None, log_path: Path | None = None, reporting=None, stage: int = 0,
           always: bool = False):
    """Train in child processes and return the ``TrainResult`` rank 0 wrote next to the adapter.

    ``reporting`` (a ``training.Reporting``): the children report the loss to the tracker through
    the trainer's ``report_to``, with its environment (``always``: `accelerate launch` even for 1 process).
    """
    import os

    from baldistill_core.student.training import TrainResult, TrainingError

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    ex_file = out_dir.parent / "train_examples.jsonl"
    ex_file.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples), encoding="utf-8")
    cmd = launch_command(cfg, base_path, ex_file, out_dir, seed=seed, init_adapter=init_adapter,
                         reporting=reporting, always=always)
    env = {**os.environ, **(reporting.stage_env(stage) if reporting is not None else {})}
    with open(log_path or out_dir.parent / "train.log", "ab") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    meta = out_dir / "train_result.json"
    if code != 0 or not meta.exists():
        raise TrainingError(f"`{' '.join(cmd[:6])} …` exited with {code}; see {log_path or out_dir.parent / 'train.log'}")
    d = json.loads(meta.read_text())
    return TrainResult(adapter_dir=out_dir, steps=d["steps"], final_loss=d["final_loss"],
                       train_seconds=d["train_seconds"], tokens_seen=d["tokens_seen"])


def main(argv: list[str] | None = None) -> int:
    from baldistill_core.student.training import train_adapter

    ap = argparse.ArgumentParser(description="train one stage's LoRA adapter (run under accelerate launch)")
    ap.add_argument("--base", required=True)
    ap.add_argument("--examples", required=True)
    ap.add_argument("--config", required=True, help="StudentConfig as JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-adapter")
    ap.add_argument("--report-to", default="none", help="the trainer's report_to (its env comes from the parent)")
    ap.add_argument("--project")
    ap.add_argument("--run-name")
    a = ap.parse_args(argv)
    from baldistill_core.student.training import Reporting

    cfg = StudentConfig.model_validate_json(a.config)
    examples = [json.loads(x) for x in Path(a.examples).read_text(encoding="utf-8").splitlines() if x.strip()]
    reporting = Reporting(report_to=a.report_to, project=a.project or None, run_name=a.run_name or None,
                          warn=lambda m: print(m, file=sys.stderr, flush=True))
    train_adapter(a.base, examples, cfg, Path(a.out), seed=a.seed, reporting=reporting,
                  init_adapter=Path(a.init_adapter) if a.init_adapter else None)
    return 0


if __name__ == "__main__":  # pragma: no cover - the accelerate child's entry point
    sys.exit(main())
