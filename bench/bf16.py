"""bf16 autocast on this CPU in under ~3 minutes: training speed and loss curve, IFD top-k overlap.

A short version of the bf16 sections of ``bench/train.py`` and ``bench/ifd.py`` on the bundled
SmolLM2-135M: 8 R52 examples trained for one epoch (batch 2: four logged steps) in fp32 and with
CPU bf16 autocast, then 16 R52 prompts IFD-scored both ways (top-4 picks compared).
BENCH_BF16_TRAIN_N / BENCH_BF16_IFD_N make it larger.

    .venv/bin/python bench/bf16.py     # BENCH_THREADS=2 to use both cores (default 1, as the others)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import ifd as ifd_bench  # noqa: E402
import train as train_bench  # noqa: E402
from baldistill_core.config import StudentConfig  # noqa: E402
from baldistill_core.student import ifd, precision  # noqa: E402
from baldistill_core.student import model as student  # noqa: E402


def main() -> None:
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    if threads > 0:
        torch.set_num_threads(threads)
    if not precision.cpu_bf16_supported():
        print("this CPU has no native bf16 (AVX512-BF16 / AMX): everything stays fp32; nothing to measure")
        return
    t_start = time.perf_counter()
    path = student.resolve_model(student.SMOLLM2)
    print(f"torch threads={torch.get_num_threads()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    cfg = StudentConfig(preset="cpu-demo", epochs=1.0, batch_size=2)
    examples = train_bench.r52_examples(int(os.environ.get("BENCH_BF16_TRAIN_N", "8")))
    with tempfile.TemporaryDirectory(prefix="bench-bf16-") as tmp:
        warm = cfg.model_copy(update={"batch_size": 1})
        for flag in (False, True):
            train_bench.training.train_adapter(path, examples[:1], warm.model_copy(update={"cpu_bf16": flag}),
                                               Path(tmp) / f"warm{flag}", seed=0)
        tr = train_bench.bf16_vs_fp32(path, examples, cfg, Path(tmp))
    n_ifd = int(os.environ.get("BENCH_BF16_IFD_N", "16"))
    xs = ifd_bench.r52_prompts(n_ifd)
    model, tok = student.load_model(path)
    ifd.score(model, tok, xs[:2], max_new_tokens=4, batch_size=2)
    t0 = time.perf_counter()
    fp32 = ifd.score(model, tok, xs, max_new_tokens=ifd_bench.MAX_NEW_TOKENS, batch_size=ifd_bench.BATCH)
    t_fp32 = time.perf_counter() - t0
    print(f"fp32:      {t_fp32:7.1f} s  {len(xs) / t_fp32:6.3f} examples/s")
    bf = ifd_bench.bf16_topk(path, xs, fp32, t_fp32, max(1, n_ifd // 4))
    train_bench.print_bf16_results(tr)
    print(f"RESULT bf16_loss_curve_max_step_rel_diff {tr['step_rel_diff']:.4f} (target <= 0.05)")
    print(f"RESULT ifd_bf16_speedup {bf['speedup']:.2f} (target >= 1)")
    print(f"RESULT ifd_bf16_topk_overlap {bf['overlap']:.4f} (target >= 0.9)")
    print(f"total {time.perf_counter() - t_start:.0f} s, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
