"""Measured throughputs of this machine per student model, and the short probe that measures them.

The one owner of ``<model cache>/throughputs.json`` (the model cache is per machine and shared by
its workspaces). Per machine key and student model it keeps:

* ``load_s`` — loading the student (with an adapter) for IFD scoring or evaluation;
* ``gen_tok_s`` — evaluation tokens per second (items x max_new_tokens / decoding time);
* ``ifd_tok_s`` — IFD scoring tokens per second (candidates x max_new_tokens / scoring time);
* ``train_tok_s`` and ``train_overhead_s`` — LoRA training tokens per second (tokens fed x epochs)
  and the fixed cost of a training step (trainer set-up, model load, save);
* ``startup_s`` — from the worker process's start to its first step (imports, pool, model resolution);
* ``select_s`` — the selection step itself (database work, without IFD scoring or synthesis);
* ``teacher_latency_s`` — per (backend, model, concurrency): wall time of a teacher step / calls, times
  the concurrency for an OpenAI-protocol endpoint (so the estimate divides it back).

The worker writes each figure after the step that measured it (``runs.actuals``); the probe fills
what is missing in at most ``budget_s`` seconds. Every figure carries its source.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from baldistill_core.workspace import model_cache_dir

# Used only when nothing was measured and no probe ran: SmolLM2-135M on this project's 2 CPU cores. Startup,
# selection and the training step's overhead were measured on the quiet machine (bench/estimate.py,
# 2026-12-07: 2.0 s, 0.02 s and 1.0 s); the earlier 10 s, 1 s and 8 s came from a machine shared by several jobs.
DEFAULTS = {"load_s": 2.0, "gen_tok_s": 57.0, "ifd_tok_s": 45.0, "train_tok_s": 85.0, "train_overhead_s": 2.0,
            "select_s": 0.1, "startup_s": 3.0}
PROBED = ("load_s", "gen_tok_s", "train_tok_s")  # what the probe must measure (it also gives train_overhead_s)
DEFAULT_SOURCE = "default (SmolLM2-135M on 2 CPU cores; nothing measured on this machine yet)"
DEFAULT_TEACHER_LATENCY_S = {"recorded": 0.002, "local": 5.0, "openai": 2.0}
PROBE_BUDGET_S = 20.0
REPROBE_AFTER_S = 3600.0  # a probe that could not measure everything is not retried for this long


def machine_key() -> str:
    """Host, core count and accelerator: throughputs of another machine never leak into this one."""
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    except Exception:  # no torch, or a broken driver: count it as a CPU machine
        pass
    return f"{platform.node()}|{os.cpu_count()} cores|{device}"


def store_path() -> Path:
    """``$BALDISTILL_THROUGHPUTS`` if set (a benchmark's fresh store), else next to the converted models."""
    return Path(os.environ.get("BALDISTILL_THROUGHPUTS") or model_cache_dir() / "throughputs.json")


def _read() -> dict:
    try:
        return json.loads(store_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write(data: dict) -> None:
    p = store_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, p)


def stored(model: str) -> dict:
    """``{figure: {value, source, at}}`` measured on this machine for ``model`` (may be empty)."""
    return dict(_read().get(machine_key(), {}).get(model, {}))


def record(model: str, figures: dict[str, float], source: str) -> None:
    """Store measured figures (positive, finite ones only) for this machine and model."""
    data = _read()
    row = data.setdefault(machine_key(), {}).setdefault(model, {})
    for k, v in figures.items():
        if v is not None and 0 < float(v) < 1e12:
            row[k] = {"value": round(float(v), 4), "source": source, "at": round(time.time())}
    _write(data)


def teacher_key(backend: str, model: str, concurrency: int) -> str:
    return f"teacher:{backend}:{model}:c{concurrency}"


def figures(model: str, teacher: tuple[str, str, int]) -> dict[str, tuple[float, str]]:
    """Every figure the estimate needs as ``(value, source)``: stored, else the default."""
    have = stored(model)
    out = {k: (have[k]["value"], have[k]["source"]) if k in have else (v, DEFAULT_SOURCE)
           for k, v in DEFAULTS.items()}
    tk = teacher_key(*teacher)
    t = stored("_teacher").get(tk)
    out["teacher_latency_s"] = ((t["value"], t["source"]) if t else
                                (DEFAULT_TEACHER_LATENCY_S.get(teacher[0], 2.0),
                                 f"default for a {teacher[0]} teacher (no call measured on this machine yet)"))
    return out


def record_teacher(backend: str, model: str, concurrency: int, latency_s: float, source: str) -> None:
    record("_teacher", {teacher_key(backend, model, concurrency): latency_s}, source)


def forget(model: str, keys: list[str]) -> None:
    data = _read()
    row = data.get(machine_key(), {}).get(model, {})
    if any(row.pop(k, None) is not None for k in keys):
        _write(data)


def probed_busy(model: str) -> float | None:
    """Other runnable jobs seen by this model's last probe when they held every core (else None): its
    figures then undercount this machine, as a probe at load 4.9 that read 3 h for a 7-minute run did."""
    b = stored(model).get("probe_busy")
    return b["value"] if b and b["value"] >= (os.cpu_count() or 1) else None


def missing(model: str) -> list[str]:
    """Probed figures to measure (again) before an estimate: the missing ones, and those a busy probe
    measured, once the machine is free enough for a fair reading."""
    from baldistill_core.student.threads import runnable_others

    have = stored(model)
    if probed_busy(model) and runnable_others() < (os.cpu_count() or 1):
        again = [k for k in PROBED if k in have and have[k]["source"].startswith("probe")]
        if again:
            return again
    tried = have.get("probe_attempted")
    if tried and time.time() - tried["at"] < REPROBE_AFTER_S:  # a probe ran out of budget lately: use defaults
        return []
    return [k for k in PROBED if k not in have]


def probe(model_name: str, student_cfg, prompts: list[str], *, budget_s: float = PROBE_BUDGET_S,
          gen_batch: int = 8) -> dict:
    """Measure this machine's throughput for ``model_name`` (see :func:`_probe`), torch threads as the worker's."""
    import torch

    from baldistill_core.student.threads import configure_threads

    before = torch.get_num_threads()
    try:
        configure_threads()  # one thread on a machine busier than its cores, as the worker will
        return _probe(model_name, student_cfg, prompts, budget_s=budget_s, gen_batch=gen_batch)
    finally:
        torch.set_num_threads(before)


def _probe(model_name: str, student_cfg, prompts: list[str], *, budget_s: float, gen_batch: int = 8) -> dict:
    """Measure load, generation and training throughput of ``model_name`` in about ``budget_s`` seconds.

    Each phase starts only while time is left, so the probe stops near its budget; what it could
    not measure keeps its default. Returns ``{figures, seconds, skipped}`` and stores the figures.
    A built-in model not converted yet is not probed (the one-off conversion alone takes ~40 s).

    Measured in the shapes the run uses, since a small probe of another shape was off by 2-3x on a
    quiet machine (R52 CPU demo: generation probed at batch 2 read 2.6x slower than the run's batched
    evaluation; a bare forward/backward loop read 1.6x faster than the Trainer): generation decodes
    ``gen_batch`` prompts together, as evaluation and IFD scoring do, and training is one real
    ``train_adapter`` step (Trainer, LoRA, save), which also gives the per-stage overhead.
    """
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    skipped: list[str] = []
    from baldistill_core.student import model as student
    from baldistill_core.student.threads import runnable_others

    busy = runnable_others()

    build = student.build_pending(model_name)
    if build > budget_s * 0.5:  # the first run builds it once (its estimate counts that); a probe cannot
        return {"figures": {}, "seconds": 0.0, "skipped": [f"not converted yet (the first run converts it once, "
                                                           f"~{build:.0f} s)"]}
    import peft  # noqa: F401 - imports are not part of a load: the worker has them loaded already
    import transformers  # noqa: F401

    from baldistill_core.student import precision
    from baldistill_core.student.greedy import greedy_decode

    path = student.resolve_model(model_name)  # builds a cheap built-in (the tiny test model) first
    t0 = time.perf_counter() if build else t0  # the build is a one-off, not the probe's to pay from its budget
    bf16 = precision.use_cpu_bf16(student_cfg)  # measure in the precision the run will use
    l0 = time.perf_counter()
    m, tok = student.load_model(path, quantization="none", cpu_bf16=bf16)
    out["load_s"] = time.perf_counter() - l0
    prompts = prompts or ["Hello"]
    batch = prompts[:max(1, gen_batch)]
    new = min(8, student_cfg.max_new_tokens)
    if time.perf_counter() - t0 < budget_s * 0.35:
        # Two decodes (1 and `new` tokens) split the batch's prefill from its per-step cost, so the
        # rate holds for the run's own max_new_tokens (a short probe alone would over-weight the prefill).
        g0 = time.perf_counter()
        greedy_decode(m, tok, batch, max_new_tokens=1, batch_size=len(batch))
        g1 = time.perf_counter()
        greedy_decode(m, tok, batch, max_new_tokens=new, batch_size=len(batch))
        g2 = time.perf_counter()
        per_step = max((g2 - g1) - (g1 - g0), 1e-6) / max(new - 1, 1)
        full = student_cfg.max_new_tokens
        out["gen_tok_s"] = len(batch) * full / ((g1 - g0) + full * per_step)
        out["prefill_tok_s"] = sum(len(tok(p)["input_ids"]) for p in batch) / max(g1 - g0, 1e-6)
        out["ifd_tok_s"] = out["gen_tok_s"] * DEFAULTS["ifd_tok_s"] / DEFAULTS["gen_tok_s"]
    else:
        skipped.append("generation")
    del m
    n_train = _train_examples_that_fit(tok, prompts[:4], out.get("prefill_tok_s"), t0 + budget_s - time.perf_counter())
    if n_train:
        out.update(_train_probe(path, student_cfg, prompts[:n_train]))
    if not out.get("train_tok_s"):
        skipped.append("training")
    out = {k: v for k, v in out.items() if v and k != "prefill_tok_s"}
    out["probe_attempted"] = time.perf_counter() - t0
    if busy:  # read before the probe's own compute (its torch threads would count after it)
        out["probe_busy"] = busy
    else:
        forget(model_name, ["probe_busy"])
    record(model_name, out, f"probe ({time.perf_counter() - t0:.1f} s, load avg {os.getloadavg()[0]:.1f}, "
                            f"{busy:g} other jobs runnable)")
    return {"figures": out, "seconds": time.perf_counter() - t0, "skipped": skipped}


def _train_examples_that_fit(tok, prompts: list[str], prefill_tok_s: float | None, left_s: float) -> int:
    """How many examples (up to 4) the training step can take and still end within ``left_s``: a
    step costs about 3.5 forwards (forward, backward, the LoRA update) of prompt + reply tokens,
    timed by the generation phase's prefill rate, plus ~2 s of set-up and save. 0 = skip training."""
    if not prefill_tok_s or left_s <= 0:
        return 0
    per_example = [len(tok(p)["input_ids"]) + 75 for p in prompts]  # + the filler reply (300 characters)
    n = len(prompts)
    while n and 2.0 + 3.5 * sum(per_example[:n]) / prefill_tok_s > left_s:
        n -= 1
    return n


def _train_probe(path, student_cfg, prompts: list[str]) -> dict[str, float]:
    """The run's own trainer on up to 4 examples (two optimiser steps when there are two or more, the
    second one timed: a process's first step at a shape pays one-off set-up), giving the training
    rate and the fixed cost around the loop (model load, LoRA wrap, tokenizing, saving) a stage pays."""
    import tempfile

    import datasets  # noqa: F401 - imports are no part of a stage's overhead: a worker imports them once
    import trl  # noqa: F401

    from baldistill_core.student import training

    from baldistill_core.task.prompts import training_completion

    # the run's prompts with a completion of a reply's length, in the training completion's own form
    examples = [{"prompt": p, "completion": training_completion(p[-300:].strip(), "x")} for p in prompts]
    steps = 2 if len(examples) >= 2 else 1
    cfg = student_cfg.model_copy(update={"batch_size": len(examples) // steps, "grad_accum": 1, "epochs": 1.0,
                                         "accelerate_num_processes": 1})
    marks: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="baldistill-probe-") as tmp:
        w0 = time.perf_counter()
        res = training.train_adapter(path, examples[:cfg.batch_size * steps], cfg, Path(tmp) / "adapter",
                                     on_log=lambda e: marks.append((time.perf_counter(), int(e["tokens_seen"]))))
        wall = time.perf_counter() - w0
    if not res.tokens_seen or res.train_seconds <= 0:
        return {}
    rate = res.tokens_seen / res.train_seconds
    if len(marks) >= 2 and marks[-1][0] > marks[-2][0] and marks[-1][1] > marks[-2][1]:
        rate = (marks[-1][1] - marks[-2][1]) / (marks[-1][0] - marks[-2][0])
    return {"train_tok_s": rate, "train_overhead_s": max(wall - res.train_seconds, 0.01)}
