"""LoRA / QLoRA supervised fine-tuning of the student through TRL's SFTTrainer.

Data are prompt-completion pairs (prompt = ``prompts.student_prompt``, completion = rationale +
answer sentence); TRL's ``completion_only_loss`` masks the prompt so the loss is on the
rationale only (the released BalDistill code trained on the whole sequence). The adapter is
written atomically: a folder appears at ``out_dir`` only when training finished.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from baldistill_core.student import model as student
from baldistill_core.config import StudentConfig


@dataclass
class TrainResult:
    adapter_dir: Path | None      # None when should_stop() ended training early (nothing saved)
    steps: int
    final_loss: float | None      # mean training loss of the last logged step
    train_seconds: float          # wall time of the optimisation loop (model loading excluded)
    tokens_seen: int              # non-padding tokens fed to the model (prompt + completion)
    stopped: bool = False

    def to_json(self) -> dict:
        d = asdict(self)
        d["adapter_dir"] = str(self.adapter_dir) if self.adapter_dir else None
        return d


class TrainingError(BalDistillError, RuntimeError):
    pass


def lora_config(cfg: StudentConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM",
    )


def sft_config(cfg: StudentConfig, output_dir: Path, *, seed: int = 0):
    """The SFTConfig both our trainer and the benchmark's plain TRL reference use."""
    import torch
    from trl import SFTConfig

    quantized = student.resolve_quantization(cfg.quantization) == "4bit"
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        lr_scheduler_type="constant_with_warmup",  # the paper: constant lr after a short warm-up
        warmup_steps=cfg.warmup_ratio,             # transformers 5: a float < 1 is a ratio of the steps
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_seq_len,
        completion_only_loss=True,
        packing=False,                             # bfd packing needs flash-attention's padding-free kernels
        bf16=cfg.bf16,
        fp16=False,
        # Recomputing activations saves GPU memory for QLoRA but only costs time on a small CPU model.
        activation_checkpointing=quantized,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
        data_seed=seed,
    )


def examples_dataset(examples: list[dict]):
    from datasets import Dataset

    bad = [i for i, e in enumerate(examples) if not e.get("prompt") or not e.get("completion")]
    if not examples:
        raise TrainingError("no training examples: the stage selected nothing to train on (every teacher rationale "
                            "was dropped?); check the stage's kept/dropped counts, raise the budget or change the teacher")
    if bad:
        raise TrainingError(f"training examples {bad[:5]} lack a non-empty 'prompt' or 'completion'; "
                            f"give every example both fields")
    return Dataset.from_dict({"prompt": [e["prompt"] for e in examples],
                              "completion": [e["completion"] for e in examples]})


def _progress_callback(on_log: Callable[[dict], None] | None, should_stop: Callable[[], bool] | None):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Forwards loss / throughput to ``on_log`` and turns ``should_stop()`` into a clean stop."""

        def __init__(self):
            self.started = time.perf_counter()
            self.last_loss: float | None = None
            self.tokens = 0
            self.stopped = False

        def on_step_end(self, args, state, control, **kwargs):
            if should_stop is not None and should_stop():
                self.stopped = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            self._forward(state, logs)
            return self.on_step_end(args, state, control)  # a cancel seen while logging stops this step

        def _forward(self, state, logs):
            self.last_loss = float(logs["loss"])
            self.tokens = int(logs.get("num_tokens", self.tokens))
            if on_log is not None:
                elapsed = max(time.perf_counter() - self.started, 1e-9)
                on_log({
                    "step": state.global_step, "max_steps": state.max_steps, "loss": self.last_loss,
                    "epoch": float(logs.get("epoch", state.epoch or 0.0)),
                    "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                    "tokens_seen": self.tokens, "tokens_per_s": self.tokens / elapsed,
                })

    return Progress()


def build_trainer(base_path: str | Path, examples: list[dict], cfg: StudentConfig, work_dir: Path, *,
                  seed: int = 0, callbacks: list | None = None, init_adapter: Path | None = None):
    """An SFTTrainer ready to ``train()``: base model + fresh LoRA (or ``init_adapter``, trainable)."""
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    set_seed(seed)  # LoRA's random init must not depend on what ran before in this process
    model, tok = student.load_model(base_path, adapter_dir=init_adapter, quantization=cfg.quantization,
                                    for_training=True)
    tok.padding_side = "right"
    if student.resolve_quantization(cfg.quantization) == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    trainer = SFTTrainer(
        model=model, args=sft_config(cfg, work_dir, seed=seed), train_dataset=examples_dataset(examples),
        processing_class=tok, peft_config=None if init_adapter else lora_config(cfg), callbacks=callbacks or [],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to on_log, not to stdout
    return trainer


def _save_atomically(model, out_dir: Path, meta: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(str(tmp))
        (tmp / "train_result.json").write_text(json.dumps(meta, indent=2))
        if out_dir.exists():  # replacing an older adapter: move it aside, swap, then delete
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.rename(out_dir, old / "adapter")
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def train_adapter(base_path, examples: list[dict], cfg: StudentConfig, out_dir: Path, *, seed: int = 0,
                  on_log: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
                  init_adapter: Path | None = None) -> TrainResult:
    """Train a LoRA adapter on ``examples`` and save it to ``out_dir``.

    ``on_log`` receives ``{step, max_steps, loss, epoch, learning_rate, grad_norm, tokens_seen,
    tokens_per_s}`` after every optimiser step. When ``should_stop()`` turns true, training ends after
    the current step and nothing is saved (``TrainResult.stopped``, ``adapter_dir=None``).
    """
    out_dir = Path(out_dir)
    progress = _progress_callback(on_log, should_stop)
    with tempfile.TemporaryDirectory(prefix="baldistill-train-") as work:
        trainer = build_trainer(base_path, examples, cfg, Path(work), seed=seed, callbacks=[progress],
                                init_adapter=init_adapter)
        t0 = time.perf_counter()
        progress.started = t0
        trainer.train()
        seconds = time.perf_counter() - t0
        tokens = int(getattr(trainer, "_total_train_tokens", progress.tokens) or progress.tokens)
        result = TrainResult(adapter_dir=None if progress.stopped else out_dir, steps=trainer.state.global_step,
                             final_loss=progress.last_loss, train_seconds=seconds, tokens_seen=tokens,
                             stopped=progress.stopped)
        if not progress.stopped and trainer.is_world_process_zero():  # one writer under `accelerate launch`
            _save_atomically(trainer.model, out_dir, {**result.to_json(), "seed": seed,
                                                      "n_examples": len(examples), "base": str(base_path)})
    return result


def accelerate_command(cfg: StudentConfig, script: list[str]) -> list[str]:
    """The command that runs ``script`` (``[path.py, args...]`` or ``["-m", module, args...]``).

    With ``accelerate_num_processes > 1`` it is ``accelerate launch`` with one process per GPU
    (data parallel); written for multi-GPU machines and untested on such hardware here.
    """
    n = cfg.accelerate_num_processes
    if n <= 1:
        return [sys.executable, *script]
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", str(n), "--num_machines", "1", "--multi_gpu",
        "--mixed_precision", "bf16" if cfg.bf16 else "no", "--dynamo_backend", "no",
        *script,
    ]
