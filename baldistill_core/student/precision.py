"""bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX on x86, BF16 on Arm); fp32 elsewhere.

On such a CPU a LoRA step of SmolLM2-135M runs 1.6-1.9x faster under ``torch.autocast("cpu",
torch.bfloat16)`` than in fp32 (``bench/train.py``: 1.9x on an Intel CPU, 1.6-1.8x on an AMD Zen 4),
with a loss curve within a percent or two and a ranking that moves (``bench/ifd.py``: bf16 kept 13 of
fp32's top 16 on 64 R52 prompts, because its greedy decoding wrote another rationale for about half
of them; an fp32 re-scoring of bf16's rationales keeps the same 13), so IFD scoring stays fp32 unless
``StudentConfig.cpu_bf16_ifd``. Weights stay fp32 (autocast casts per operation) and losses and
log-probabilities are taken in fp32. ``StudentConfig.cpu_bf16`` turns it off.

A model loaded with ``cpu_bf16=True`` carries the flag (``mark``); ``greedy_decode`` and the IFD
losses run their forwards under ``autocast_for(model)``, so generation, evaluation and IFD scoring
follow the model they are given. Training passes ``bf16=True`` to the Trainer (CPU autocast).
"""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

_FLAG = "_baldistill_cpu_bf16"
NATIVE_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}   # /proc/cpuinfo names (x86 flags, Arm Features)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    out: set[str] = set()
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("flags", "Features"):
            out.update(val.split())
    return out


def cpu_bf16_supported(flags: set[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively (not emulated) and torch's oneDNN has bf16 kernels.

    Without a native bf16 flag it is False whatever torch says; with one, torch's oneDNN decides
    (it checks the machine it runs on, so flags alone cannot make it True on a CPU without bf16).

    >>> cpu_bf16_supported({"avx2", "fma"})
    False
    """
    if flags is None:
        flags = _cached_flags()
    if not (flags & NATIVE_FLAGS):
        return False
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch build without oneDNN
        return platform.machine().lower() in ("aarch64", "arm64")


@functools.lru_cache(maxsize=1)
def _cached_flags() -> frozenset[str]:
    return frozenset(_cpu_flags())


def use_cpu_bf16(cfg, *, flags: set[str] | None = None) -> bool:
    """Whether a student of ``cfg`` (a ``StudentConfig``) trains, scores and generates in bf16 on the CPU:
    the switch is on, no CUDA GPU is in use (GPUs follow ``cfg.bf16``) and the CPU has native bf16."""
    if not getattr(cfg, "cpu_bf16", False):
        return False
    import torch

    if torch.cuda.is_available():
        return False
    return cpu_bf16_supported(flags)


def mark(model, enabled: bool):
    """Record on ``model`` whether its inference runs under CPU bf16 autocast."""
    setattr(model, _FLAG, bool(enabled))
    return model


def is_marked(model) -> bool:
    return bool(getattr(model, _FLAG, False))


@contextlib.contextmanager
def marked(model, enabled: bool):
    """``model`` marked ``enabled`` for the block (e.g. an fp32 IFD pass on a bf16-marked model), then as before."""
    before = getattr(model, _FLAG, False)
    mark(model, enabled)
    try:
        yield model
    finally:
        mark(model, before)


def autocast_for(model):
    """The autocast context a forward of ``model`` runs in (a no-op unless ``mark``ed)."""
    if not getattr(model, _FLAG, False):
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)
