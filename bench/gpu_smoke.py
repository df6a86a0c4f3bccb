"""GPU smoke test: the GPU paths of the student, on the bundled SmolLM2-135M, in under 8 minutes.

Checks, each ending in one RESULT line (with throughput):

1. ``qlora``  — QLoRA (4-bit NF4, bitsandbytes) trains one stage (``student.training.train_adapter``);
2. ``bf16``   — bf16 mixed-precision LoRA trains one stage;
3. ``engines``— the HF and vLLM engines (``student.engines``), both with check 2's adapter, give the
   same greedy rationales and the same IFD top-k; their generation throughput is compared;
4. ``accelerate`` — ``accelerate launch`` with 1 process trains a stage (``student.launch``).

Data: R52 training inputs with their recorded teacher rationales (the bundled dataset), through the
student view. Everything is local: the wheels listed in ``REQUIRED`` and the bundled model.

    .venv/bin/python bench/gpu_smoke.py            # on a CUDA machine after `pip install .[gpu]`
    .venv/bin/python bench/gpu_smoke.py --dry-run  # any machine: checks this script's plan and configs

Without CUDA (and without --dry-run) it prints one SKIP line and exits 0. A missing package skips
the checks that need it (SKIP lines say which). Written without GPU access; see README ("GPU").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from baldistill_core.config import StudentConfig  # noqa: E402

# What the checks import, and for which check (the script lists the missing ones and skips those checks).
REQUIRED = {"torch": "all (a CUDA build)", "transformers": "all", "trl": "qlora, bf16, accelerate",
            "peft": "all", "accelerate": "accelerate", "bitsandbytes": "qlora", "vllm": "engines"}
N_TRAIN, N_GEN, TOP_K = 64, 48, 12
INPUT_CHARS = 400
BUDGET_S = 450.0   # stop starting new checks past this (7.5 min), so the whole run stays under 8
TARGETS = {"agreement": 0.9, "topk": 0.75}


def configs() -> dict[str, StudentConfig]:
    """The student settings of each check (paper-gpu preset, one short epoch)."""
    common = dict(model="smollm2-135m", preset="paper-gpu", epochs=1.0, batch_size=16, max_seq_len=384,
                  max_new_tokens=64, max_input_tokens=96)
    return {
        "qlora": StudentConfig(**common, quantization="4bit", bf16=True),
        "bf16": StudentConfig(**common, quantization="none", bf16=True),
        # Engines compare numerics: both in float32 (HF inference loads float32; vLLM gets dtype float32).
        "engines": StudentConfig(**common, quantization="none", bf16=False, engine="vllm", vllm_gpu_memory=0.3),
        "accelerate": StudentConfig(**common, quantization="none", bf16=True, accelerate_num_processes=1),
    }


def view_and_data():
    """The R52 student view, ``N_TRAIN`` training pairs and ``N_GEN`` held-out prompts (all deterministic)."""
    from baldistill_core.data import loading as data
    from baldistill_core.runs.context import tokenizer_loader
    from baldistill_core.task.view import StudentView

    spec = data.bundled_specs()["r52"]
    loaded = data.load_dataset(spec)
    view = StudentView.for_dataset(spec, loaded.label_set, max_input_tokens=configs()["bf16"].max_input_tokens,
                                   load_tokenizer=tokenizer_loader("smollm2-135m"))
    rationales = {}
    with open(data.BUNDLED_DIR / "r52" / spec.recorded_rationales, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            rationales[r["id"]] = r["rationale"]
    rows = random.Random(0).sample([r for r in loaded.train if r["id"] in rationales], N_TRAIN)
    train = [view.training_pair({**r, "input": r["input"][:INPUT_CHARS], "rationale": rationales[r["id"]]})
             for r in rows]
    held = random.Random(1).sample(loaded.test or loaded.train, N_GEN)
    prompts = view.prompts([{**r, "input": r["input"][:INPUT_CHARS]} for r in held])
    return view, train, prompts


def missing_packages() -> list[str]:
    return [p for p in REQUIRED if importlib.util.find_spec(p) is None]


def result(name: str, value, target: str, extra: str = "") -> None:
    print(f"RESULT {name} {value} (target {target}){'  ' + extra if extra else ''}", flush=True)


def skip(name: str, why: str) -> None:
    print(f"SKIP {name}: {why}", flush=True)


# ---------------------------------------------------------------- the checks


def check_train(name: str, cfg: StudentConfig, base, train, out: Path) -> Path | None:
    from baldistill_core.student.training import train_adapter

    res = train_adapter(base, train, cfg, out, seed=0)
    ok = res.final_loss is not None and math.isfinite(res.final_loss) and (out / "adapter_config.json").exists()
    result(f"{name}_train_tokens_per_s", round(res.tokens_seen / max(res.train_seconds, 1e-9)),
           "> 0 with a finite loss" if ok else "FAILED: no finite loss or no adapter",
           f"steps={res.steps} loss={res.final_loss} seconds={res.train_seconds:.1f} examples={len(train)}")
    return out if ok else None


def check_engines(cfg: StudentConfig, base, adapter: Path, prompts: list[str]) -> None:
    from baldistill_core.student import engines, ifd

    hf = engines.build(cfg.model_copy(update={"engine": "hf"}), base, adapter)
    t0 = time.perf_counter()
    hf_text = hf.generate(prompts, max_new_tokens=cfg.max_new_tokens, batch_size=32)
    t_hf = time.perf_counter() - t0
    hf_ifd = hf.ifd_scores(prompts, max_new_tokens=cfg.max_new_tokens, batch_size=32)
    vl = engines.build(cfg, base, adapter)
    vl.generate(prompts[:2], max_new_tokens=4)  # warm-up (CUDA graphs off, but the first call allocates)
    t0 = time.perf_counter()
    vl_text = vl.generate(prompts, max_new_tokens=cfg.max_new_tokens)
    t_vl = time.perf_counter() - t0
    vl_ifd = vl.ifd_scores(prompts, max_new_tokens=cfg.max_new_tokens)
    same = sum(a == b for a, b in zip(hf_text, vl_text)) / len(prompts)
    keys = [str(i) for i in range(len(prompts))]
    top_hf = set(ifd.select_top(dict(zip(keys, hf_ifd)), TOP_K))
    top_vl = set(ifd.select_top(dict(zip(keys, vl_ifd)), TOP_K))
    overlap = len(top_hf & top_vl) / TOP_K
    n_tok = sum(len(hf.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in hf_text)
    result("engines_greedy_agreement", round(same, 3), f">= {TARGETS['agreement']}",
           f"identical rationales {int(same * len(prompts))}/{len(prompts)}")
    result("engines_ifd_topk_overlap", round(overlap, 3), f">= {TARGETS['topk']}", f"top-{TOP_K} of {len(prompts)}")
    result("engines_vllm_vs_hf_generation_speedup", round(t_hf / max(t_vl, 1e-9), 2), "> 1",
           f"hf {n_tok / t_hf:.0f} tok/s ({t_hf:.1f}s), vllm {t_vl:.1f}s, {len(prompts)} prompts")


def check_accelerate(cfg: StudentConfig, base, train, out: Path) -> None:
    from baldistill_core.student.launch import launch

    t0 = time.perf_counter()
    res = launch(cfg, base, train, out, seed=0, always=True)
    wall = time.perf_counter() - t0
    ok = (out / "adapter_config.json").exists() and res.steps > 0
    result("accelerate_1proc_train_tokens_per_s", round(res.tokens_seen / max(res.train_seconds, 1e-9)),
           "> 0 with an adapter" if ok else "FAILED: no adapter",
           f"steps={res.steps} loss={res.final_loss} train {res.train_seconds:.1f}s, wall {wall:.1f}s "
           f"(process start and model load included)")


# ---------------------------------------------------------------- plan, dry run, main


def dry_run() -> int:
    """Everything but the GPU work: configs, commands, data, model files, package list."""
    from baldistill_core.student import engines
    from baldistill_core.student.launch import launch_command
    from baldistill_core.student.model import resolve_model, resolve_quantization
    from baldistill_core.student.training import lora_config

    checks = 0
    cfgs = configs()
    assert set(cfgs) == {"qlora", "bf16", "engines", "accelerate"}
    assert cfgs["qlora"].quantization == "4bit" and cfgs["bf16"].quantization == "none" and cfgs["bf16"].bf16
    assert resolve_quantization(cfgs["bf16"].quantization) == "none"
    for c in cfgs.values():
        lora_config(c)  # peft accepts the adapter settings
    checks += 1
    eng = cfgs["engines"]
    args = engines.vllm_engine_args(eng, "/base")
    assert eng.engine == "vllm" and args["max_lora_rank"] >= eng.lora_r and args["dtype"] == "float32"
    assert 0 < args["gpu_memory_utilization"] < 0.5  # leaves room for the HF copy and the training check
    checks += 1
    with tempfile.TemporaryDirectory() as tmp:
        cmd = launch_command(cfgs["accelerate"], "/base", Path(tmp) / "ex.jsonl", Path(tmp) / "out", seed=0,
                             always=True)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[cmd.index("--num_processes") + 1] == "1"
    assert "--multi_gpu" not in cmd and cmd[cmd.index("--mixed_precision") + 1] == "bf16"
    checks += 1
    base = resolve_model("smollm2-135m")
    assert (base / "config.json").exists()
    view, train, prompts = view_and_data()
    assert len(train) == N_TRAIN and len(prompts) == N_GEN and TOP_K < N_GEN
    assert all(t["prompt"].startswith(view.instruction) and t["completion"] for t in train)
    from baldistill_core.student.model import load_tokenizer

    tok = load_tokenizer(base)
    longest = max(len(tok(p)["input_ids"]) for p in prompts)
    assert longest + eng.max_new_tokens <= args["max_model_len"], (longest, args["max_model_len"])
    checks += 1
    missing = missing_packages()
    print("packages: " + ", ".join(f"{p} {'MISSING' if p in missing else 'ok'} ({REQUIRED[p]})" for p in REQUIRED))
    print(f"plan: {N_TRAIN} training pairs, {N_GEN} held-out prompts (longest {longest} tokens), top-{TOP_K}; "
          f"base {base}")
    result("gpu_smoke_dry_run_checks", checks, "== 4")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="check the plan and configuration only (no GPU)")
    args = ap.parse_args(argv)
    if args.dry_run:
        return dry_run()
    import torch

    if not torch.cuda.is_available():
        skip("gpu_smoke", "no CUDA device is visible (torch.cuda.is_available() is False); "
             "`--dry-run` checks the configuration on this machine")
        return 0
    from baldistill_core.student.model import resolve_model

    missing = missing_packages()
    print(f"device: {torch.cuda.get_device_name(0)}; missing packages: {', '.join(missing) or 'none'}", flush=True)
    cfgs, base = configs(), resolve_model("smollm2-135m")
    _, train, prompts = view_and_data()
    start = time.perf_counter()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        tmp = Path(tmp)
        adapter = None
        plan = [("qlora", "bitsandbytes"), ("bf16", None), ("accelerate", "accelerate"), ("engines", "vllm")]
        for name, needs in plan:
            if needs in missing:
                skip(name, f"{needs} is not installed (pip install .[gpu])")
                continue
            if time.perf_counter() - start > BUDGET_S:
                skip(name, f"the {BUDGET_S:.0f}s budget is spent")
                continue
            if name == "engines" and adapter is None:
                skip(name, "no bf16 adapter to serve (check bf16 did not pass)")
                continue
            try:
                if name in ("qlora", "bf16"):
                    got = check_train(name, cfgs[name], base, train, tmp / name / "adapter")
                    failed += got is None
                    adapter = got if name == "bf16" else adapter
                elif name == "accelerate":
                    check_accelerate(cfgs[name], base, train, tmp / name / "adapter")
                else:
                    check_engines(cfgs[name], base, adapter, prompts)
            except Exception as e:  # noqa: BLE001 - report every check, then the exit code says it failed
                failed += 1
                result(f"{name}_check", "FAILED", "no exception", f"{type(e).__name__}: {str(e)[:400]}")
    result("gpu_smoke_wall_s", round(time.perf_counter() - start, 1), "< 480")
    return 1 if failed else 0


if __name__ == "__main__":  # vLLM starts its engine process with spawn: keep the entry guarded
    sys.exit(main())
