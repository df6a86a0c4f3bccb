"""bench/gpu_smoke.py on a CPU: the dry run checks the script's plan and configuration; the real run skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_smoke.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, env=env)


def test_dry_run_checks_the_plan_and_lists_the_packages():
    p = _run("--dry-run")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert "RESULT gpu_smoke_dry_run_checks 4 (target == 4)" in lines
    pkgs = next(l for l in lines if l.startswith("packages: "))
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "vllm"):
        assert f"{name} " in pkgs
    assert "64 training pairs, 48 held-out prompts" in p.stdout


def test_without_cuda_the_real_run_skips_cleanly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the real run would start")
    p = _run()
    assert p.returncode == 0 and p.stdout.startswith("SKIP gpu_smoke: no CUDA device"), p.stdout + p.stderr[-1000:]
    assert "RESULT" not in p.stdout
