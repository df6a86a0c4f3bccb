"""IFD scoring throughput: our batched scorer vs. a one-example-at-a-time reference.

The reference follows the way the Cherry-LLM / BalDistill code scores an example: generate the
student's rationale alone (batch of one, HF ``generate``), then two separate forward passes with
``labels`` — prompt + rationale with the prompt masked, and the rationale alone — each computing
the model's own loss over the full logits (and, as Cherry-LLM loads its model, hidden states).
It scores the same quantity from the same token ids as ours (the rationale tokens after the same
start token), so the two top-k selections must agree exactly.

Where ours saves time: decoding 16 rows per step instead of one, the shared instruction prefix
(R52's 52 labels, most of every prompt) computed once, the conditioned loss read off the decoding
instead of a second pass over prompt + rationale, a preallocated KV cache, and only rationale
positions sent through the vocabulary-sized LM head.

Both run in the same process on the bundled SmolLM2-135M student and 64 R52 train inputs
(seeded sample, inputs truncated so the CPU run stays a few minutes). The CPU is shared with
other work, so absolute throughputs vary; the ratio is measured back to back.

    .venv/bin/python bench/ifd.py            # BENCH_IFD_N=16 for a quick look

On a CPU with native bf16 it then scores the same prompts under CPU bf16 autocast and reports
how many of fp32's top-k picks bf16 keeps (``ifd_bf16_topk_overlap``).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from baldistill_core.data import loading as data
from baldistill_core.student import ifd, precision
from baldistill_core.task import prompts
from baldistill_core.student import model as student  # noqa: E402

N = int(os.environ.get("BENCH_IFD_N", "64"))
K = min(16, N)
MAX_NEW_TOKENS = 48
INPUT_CHARS = 240
BATCH = int(os.environ.get("BENCH_IFD_BATCH", "32"))  # = IFDConfig.batch_size; 32 measured 1.17x faster than 16 here


def r52_prompts(n: int) -> list[str]:
    spec = data.bundled_specs()["r52"]
    loaded = data.load_dataset(spec)
    instruction = prompts.task_instruction(spec.task_type, spec.instruction, loaded.label_set)
    rows = random.Random(0).sample(loaded.train, n)
    return [prompts.student_prompt(instruction, r["input"][:INPUT_CHARS], spec.task_type) for r in rows]


def reference_score(model, tok, prompt: str) -> tuple[float, list[int]]:
    """One example at a time, the Cherry-LLM way."""
    stops = set(student.stop_token_ids(model, tok))
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=sorted(stops), temperature=None, top_p=None, top_k=None)
    y = []
    for t in out[0, enc["input_ids"].shape[1]:].tolist():
        if t in stops:
            break
        y.append(t)
    if not y:
        return float("nan"), y
    x = enc["input_ids"][0].tolist()
    whole = torch.tensor([x + y])
    labels = whole.clone()
    labels[0, : len(x)] = -100
    with torch.no_grad():
        loss_cond = model(input_ids=whole, labels=labels, output_hidden_states=True).loss.item()
    alone = torch.tensor([[ifd.start_token_id(tok)] + y])
    labels = alone.clone()
    labels[0, 0] = -100
    with torch.no_grad():
        loss_uncond = model(input_ids=alone, labels=labels, output_hidden_states=True).loss.item()
    return math.exp(loss_cond - loss_uncond), y


def bf16_topk(path, xs: list[str], fp32_results: list, t_fp32: float, k: int) -> dict:
    """Score ``xs`` again with CPU bf16 autocast: top-k overlap with fp32's picks and the speed ratio."""
    model, tok = student.load_model(path, cpu_bf16=True)
    ifd.score(model, tok, xs[:2], max_new_tokens=4, batch_size=2)   # warm-up of the bf16 kernels
    t0 = time.perf_counter()
    res = ifd.score(model, tok, xs, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)
    t = time.perf_counter() - t0
    keys = [f"x{i:03d}" for i in range(len(xs))]
    top_fp = ifd.select_top(dict(zip(keys, fp32_results)), k)
    top_bf = ifd.select_top(dict(zip(keys, res)), k)
    same = sum(a.rationale == b.rationale for a, b in zip(fp32_results, res))
    print(f"bf16:      {t:7.1f} s  {len(xs) / t:6.3f} examples/s  ({t_fp32 / t:.2f}x fp32); same rationale "
          f"for {same}/{len(xs)}  load average {os.getloadavg()[0]:.1f}")
    return dict(overlap=len(set(top_fp) & set(top_bf)) / k, speedup=t_fp32 / t)


def main() -> None:
    # This CPU is shared with other jobs; with 2 OpenMP threads every small op waits for a core the
    # other jobs hold, which penalises whichever side meets more load. One thread keeps both sides
    # comparable (BENCH_THREADS=0 keeps torch's default).
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    path = student.resolve_model(student.SMOLLM2)
    model, tok = student.load_model(path)   # fp32: ours and the reference compare in the same precision
    xs = r52_prompts(N)
    n_tokens = [len(tok(x)["input_ids"]) for x in xs]
    print(f"{N} R52 prompts, {sum(n_tokens) / N:.0f} prompt tokens on average, max_new_tokens={MAX_NEW_TOKENS}, "
          f"torch threads={torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")

    ifd.score(model, tok, xs[:2], max_new_tokens=4, batch_size=2)  # warm-up (allocations, kernels)

    t0 = time.perf_counter()
    ours = ifd.score(model, tok, xs, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)
    t_ours = time.perf_counter() - t0
    print(f"ours:      {t_ours:7.1f} s  {N / t_ours:6.3f} examples/s  (batch {BATCH})")

    t0 = time.perf_counter()
    ref = [reference_score(model, tok, x) for x in xs]
    t_ref = time.perf_counter() - t0
    print(f"reference: {t_ref:7.1f} s  {N / t_ref:6.3f} examples/s  (one at a time)  "
          f"load average {os.getloadavg()[0]:.1f}")

    keys = [f"x{i:03d}" for i in range(N)]
    ours_scores = {k: r for k, r in zip(keys, ours)}
    ref_scores = {k: ifd.IFDResult(None if math.isnan(s) else s, 0.0, 0.0, "") for k, (s, _) in zip(keys, ref)}
    top_ours, top_ref = ifd.select_top(ours_scores, K), ifd.select_top(ref_scores, K)
    same_rationale = sum(tok.encode(r.rationale) == tok.encode(tok.decode(y, skip_special_tokens=True))
                         for r, (_, y) in zip(ours, ref))
    diffs = [abs(a.score - b[0]) / b[0] for a, b in zip(ours, ref) if a.score is not None and not math.isnan(b[0])]
    print(f"same rationale for {same_rationale}/{N}; max relative score difference {max(diffs):.2e}")
    print(f"top-{K} ours:      {sorted(top_ours)}")
    print(f"top-{K} reference: {sorted(top_ref)}")
    print(f"RESULT ifd_speedup {t_ref / t_ours:.2f} (target >= 5)")
    print(f"RESULT ifd_topk_agreement {len(set(top_ours) & set(top_ref)) / K:.4f} (target = 1)")
    if precision.cpu_bf16_supported():
        bf = bf16_topk(path, xs, ours, t_ours, K)
        print(f"RESULT ifd_bf16_speedup {bf['speedup']:.2f} (target >= 1)")
        print(f"RESULT ifd_bf16_topk_overlap {bf['overlap']:.4f} (target >= 0.9)")
    else:
        print("this CPU has no native bf16 (AVX512-BF16 / AMX): IFD scoring stays fp32, no bf16 result")


if __name__ == "__main__":
    main()
