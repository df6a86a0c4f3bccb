"""Training step throughput: our ``train_adapter`` vs. a plain TRL SFTTrainer, same run.

Same model (the bundled SmolLM2-135M), same data (R52 train inputs with their recorded teacher
rationales, prompt-completion pairs, loss on the completion), same settings (the cpu-demo
preset: LoRA r=8 on q/k/v/o, batch 8, lr 1e-3, max length 320, one epoch). The reference is
written here the way the TRL documentation shows it, without our wrapper. Runs alternate
(ours, TRL, ours, TRL) so a change in the load of this shared CPU hits both; throughput is
tokens per second of the optimisation loop (``trainer.train()``), totalled over the rounds.

    .venv/bin/python bench/train.py          # BENCH_TRAIN_N=16 BENCH_TRAIN_ROUNDS=2 by default

On a CPU with native bf16 it then trains the same data with CPU bf16 autocast and in fp32
(``StudentConfig.cpu_bf16``) and reports the speed ratio and how close the loss curves stay.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from baldistill_core.data import loading as data
from baldistill_core.task import prompts
from baldistill_core.student import model as student
from baldistill_core.student import precision, training  # noqa: E402
from baldistill_core.config import StudentConfig  # noqa: E402

N = int(os.environ.get("BENCH_TRAIN_N", "16"))
ROUNDS = int(os.environ.get("BENCH_TRAIN_ROUNDS", "2"))
INPUT_CHARS = 240


def r52_examples(n: int) -> list[dict]:
    spec = data.bundled_specs()["r52"]
    loaded = data.load_dataset(spec)
    instruction = prompts.task_instruction(spec.task_type, spec.instruction, loaded.label_set)
    rationales = {}
    with open(data.BUNDLED_DIR / "r52" / spec.recorded_rationales, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            rationales[r["id"]] = r["rationale"]
    rows = [r for r in loaded.train if r["id"] in rationales]
    rows = random.Random(0).sample(rows, n)
    return [{"prompt": prompts.student_prompt(instruction, r["input"][:INPUT_CHARS], spec.task_type),
             "completion": prompts.training_completion(rationales[r["id"]], r["answer"])} for r in rows]


def plain_trl(path, examples: list[dict], cfg: StudentConfig, out_dir: Path) -> tuple[float, int]:
    """TRL as its documentation shows it: load, LoraConfig, SFTConfig, SFTTrainer, train, save."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out_dir), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, lr_scheduler_type="constant_with_warmup", warmup_steps=cfg.warmup_ratio,
        max_grad_norm=cfg.max_grad_norm, max_length=cfg.max_seq_len, completion_only_loss=True,
        bf16=False, activation_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=0, data_seed=0,
    )
    peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                             target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                         processing_class=tok, peft_config=peft_config)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    trainer.save_model(str(out_dir / "adapter"))
    return seconds, int(trainer._total_train_tokens)


def bf16_vs_fp32(path, examples: list[dict], cfg: StudentConfig, tmp: Path, rounds: int = 1) -> dict:
    """Our trainer with CPU bf16 autocast against itself in fp32 (same data, seed, steps), alternating.

    Speed is tokens per second of ``trainer.train()``; quality is the loss curve: the relative
    difference of the final logged loss and the largest per-step relative difference.
    """
    secs = {False: 0.0, True: 0.0}
    toks = {False: 0, True: 0}
    curves: dict[bool, list[float]] = {}
    for rnd in range(rounds):
        for flag in (False, True):
            logs: list[dict] = []
            res = training.train_adapter(path, examples, cfg.model_copy(update={"cpu_bf16": flag}),
                                         tmp / f"bf16-{flag}-{rnd}", seed=0, on_log=logs.append)
            secs[flag] += res.train_seconds
            toks[flag] += res.tokens_seen
            curves[flag] = [e["loss"] for e in logs]
            print(f"round {rnd}: {'bf16' if flag else 'fp32'} {res.tokens_seen / res.train_seconds:6.1f} tok/s "
                  f"({res.steps} steps, {res.train_seconds:.1f} s, final loss {res.final_loss:.4f})  "
                  f"load {os.getloadavg()[0]:.1f}")
    fp, bf = curves[False], curves[True]
    step_diff = max(abs(a - b) / abs(a) for a, b in zip(fp, bf))
    print(f"loss curve fp32: {' '.join(f'{x:.3f}' for x in fp)}")
    print(f"loss curve bf16: {' '.join(f'{x:.3f}' for x in bf)}  (largest step difference {step_diff:.3%})")
    return dict(ratio=(toks[True] / secs[True]) / (toks[False] / secs[False]),
                final_rel_diff=abs(bf[-1] - fp[-1]) / abs(fp[-1]), step_rel_diff=step_diff)


def print_bf16_results(r: dict) -> None:
    print(f"RESULT train_bf16_vs_fp32 {r['ratio']:.3f} (target >= 1.8)")
    print(f"RESULT bf16_final_loss_rel_diff {r['final_rel_diff']:.4f} (target <= 0.02)")


def main() -> None:
    # This CPU is shared with other jobs; with 2 OpenMP threads every small op waits for a core the
    # other jobs hold, which penalises whichever side meets more load. One thread keeps both sides
    # comparable (BENCH_THREADS=0 keeps torch's default).
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    path = student.resolve_model(student.SMOLLM2)
    # fp32 on both sides of the TRL comparison (the reference is plain fp32); bf16 is measured below.
    cfg = StudentConfig(preset="cpu-demo", epochs=1.0, cpu_bf16=False)
    examples = r52_examples(N)
    print(f"{N} R52 examples, preset cpu-demo (batch {cfg.batch_size}, max length {cfg.max_seq_len}, "
          f"LoRA r={cfg.lora_r} on {','.join(cfg.target_modules)}), {ROUNDS} alternating rounds, "
          f"torch threads={torch.get_num_threads()}")
    ours_s = ours_tok = ref_s = ref_tok = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        # Warm-up, one step each at the timed batch shape: the first training in a process pays one-time
        # costs (allocator, kernel choice) per shape. A batch-2 warm-up left them to ours' first timed
        # round (87 vs 114 tok/s in round 1 on a quiet machine), which read as ours being slower than TRL.
        warm = examples[:cfg.batch_size]
        training.train_adapter(path, warm, cfg, Path(tmp) / "warm", seed=0)
        plain_trl(path, warm, cfg, Path(tmp) / "warm-trl")
        for rnd in range(ROUNDS):
            res = training.train_adapter(path, examples, cfg, Path(tmp) / f"ours{rnd}", seed=0)
            ours_s, ours_tok = ours_s + res.train_seconds, ours_tok + res.tokens_seen
            print(f"round {rnd}: ours {res.tokens_seen / res.train_seconds:6.1f} tok/s "
                  f"({res.steps} steps, {res.train_seconds:.1f} s, loss {res.final_loss:.3f})  "
                  f"load {os.getloadavg()[0]:.1f}")
            sec, toks = plain_trl(path, examples, cfg, Path(tmp) / f"trl{rnd}")
            ref_s, ref_tok = ref_s + sec, ref_tok + toks
            print(f"round {rnd}: TRL  {toks / sec:6.1f} tok/s ({sec:.1f} s)  load {os.getloadavg()[0]:.1f}")
        bf16 = bf16_vs_fp32(path, examples, cfg, Path(tmp)) if precision.cpu_bf16_supported() else None
    ours_tps, ref_tps = ours_tok / ours_s, ref_tok / ref_s
    print(f"ours {ours_tps:.1f} tok/s, plain TRL {ref_tps:.1f} tok/s (same tokens: {ours_tok == ref_tok})")
    print(f"RESULT train_vs_trl {ours_tps / ref_tps:.3f} (target >= 0.95)")
    if bf16 is None:
        print("this CPU has no native bf16 (AVX512-BF16 / AMX): training stays fp32, no bf16 result")
    else:
        print_bf16_results(bf16)


if __name__ == "__main__":
    main()
