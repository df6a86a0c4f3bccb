"""bf16 autocast on CPUs with native bf16: chosen only where supported, off by the switch, and the
tiny model's generation, IFD forwards and training really run in bf16 when chosen."""

from __future__ import annotations

import math

import pytest
import torch

from _model_helpers import tiny_examples, tiny_path, tiny_prompts
from baldistill_core.config import StudentConfig
from baldistill_core.student import greedy, ifd, precision, training
from baldistill_core.student import model as student

NATIVE = precision.cpu_bf16_supported() and not torch.cuda.is_available()
needs_bf16 = pytest.mark.skipif(not NATIVE, reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")


def test_bf16_is_chosen_only_on_a_cpu_that_has_it():
    on, off = StudentConfig(preset="cpu-demo"), StudentConfig(preset="cpu-demo", cpu_bf16=False)
    assert on.cpu_bf16 is True and StudentConfig(preset="test-tiny").cpu_bf16 is False
    assert not precision.cpu_bf16_supported({"sse4_2", "avx2", "avx512f", "avx512bw"})   # AVX512 without BF16
    assert not precision.use_cpu_bf16(on, flags={"avx2", "fma"})
    assert not precision.use_cpu_bf16(off, flags={"avx512f", "avx512_bf16"})
    if NATIVE:
        assert precision.use_cpu_bf16(on, flags={"avx512f", "avx512_bf16"})
        assert precision.use_cpu_bf16(on) and not precision.use_cpu_bf16(off)
    assert StudentConfig.model_fields["cpu_bf16"].description


def test_sft_config_follows_the_switch(tmp_path):
    assert training.sft_config(StudentConfig(preset="test-tiny"), tmp_path).bf16 is False
    cfg = StudentConfig(preset="test-tiny", cpu_bf16=True)
    assert training.sft_config(cfg, tmp_path).bf16 is precision.use_cpu_bf16(cfg)


def _linear_dtypes(model, run) -> set:
    seen = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.add(o.dtype))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


@needs_bf16
def test_marked_model_generates_and_scores_under_bf16_autocast_with_fp32_weights():
    fp32, tok = student.load_model(tiny_path())
    bf16, _ = student.load_model(tiny_path(), cpu_bf16=True)
    prompts = tiny_prompts(4)
    gen = lambda m: greedy.greedy_decode(m, tok, prompts, max_new_tokens=6, batch_size=2)  # noqa: E731
    assert _linear_dtypes(fp32, lambda: gen(fp32)) == {torch.float32}
    assert _linear_dtypes(bf16, lambda: gen(bf16)) == {torch.bfloat16}
    assert {p.dtype for p in bf16.parameters()} == {torch.float32}
    seqs = [[tok.bos_token_id or 0, *tok(p)["input_ids"][:12]] for p in prompts]
    assert _linear_dtypes(bf16, lambda: ifd.target_losses(bf16, seqs, [1] * 4)) == {torch.bfloat16}
    a, b = ifd.target_losses(fp32, seqs, [1] * 4), ifd.target_losses(bf16, seqs, [1] * 4)
    assert all(math.isfinite(x) for x in b)
    assert max(abs(x - y) / x for x, y in zip(a, b)) < 0.05     # bf16 rounding, not a different model


@needs_bf16
def test_bf16_training_loss_stays_close_to_fp32(tmp_path):
    ex = tiny_examples(8)
    runs = {}
    for flag in (False, True):
        logs: list[dict] = []
        cfg = StudentConfig(preset="test-tiny", epochs=2.0, cpu_bf16=flag)
        runs[flag] = training.train_adapter(tiny_path(), ex, cfg, tmp_path / str(flag), seed=0, on_log=logs.append)
        assert len(logs) == 4
    assert runs[True].final_loss == pytest.approx(runs[False].final_loss, rel=0.05)


@needs_bf16
def test_ifd_scoring_stays_fp32_on_a_bf16_model_unless_asked():
    """bench/ifd.py measured bf16 moving IFD's top-k (13 of 16 kept), so selection scores in fp32 by default
    while generation on the same bf16-marked model stays bf16; the model's mark is restored afterwards."""
    from baldistill_core.student import engines

    assert StudentConfig(preset="cpu-demo").cpu_bf16_ifd is False
    model, tok = student.load_model(tiny_path(), cpu_bf16=True)
    prompts = tiny_prompts(2)
    fp32_ifd = engines.HFEngine(model, tok)
    seen = _linear_dtypes(model, lambda: fp32_ifd.ifd_scores(prompts, max_new_tokens=4, batch_size=2))
    assert seen == {torch.float32} and precision.is_marked(model)
    assert _linear_dtypes(model, lambda: fp32_ifd.generate(prompts, max_new_tokens=4)) == {torch.bfloat16}
    bf16_ifd = engines.HFEngine(model, tok, ifd_bf16=True)
    assert _linear_dtypes(model, lambda: bf16_ifd.ifd_scores(prompts, max_new_tokens=4, batch_size=2)) == {torch.bfloat16}
    plain, _ = student.load_model(tiny_path())                 # an fp32 model never gains bf16 from the switch
    on_plain = engines.HFEngine(plain, tok, ifd_bf16=True)
    assert _linear_dtypes(plain, lambda: on_plain.ifd_scores(prompts, max_new_tokens=4, batch_size=2)) == {torch.float32}


def test_threads_follow_what_runs_now_not_the_last_minute(monkeypatch):
    """A sweep runs its cells back to back in one process: the run that just ended must not make the next
    one single-threaded (the 1-minute load average remembers it), and a busy spell must not stick."""
    from baldistill_core.student import threads

    assert threads.runnable_others(read=lambda: "9.0 9.0 9.0 1/99 5") == 0.0    # busy a minute ago, idle now
    monkeypatch.delenv("BALDISTILL_TORCH_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "runnable_others", lambda: 3.0)   # two other jobs busy on 2 cores
        assert threads.configure_threads() == 1
        monkeypatch.setattr(threads, "runnable_others", lambda: 0.0)   # quiet again (load average may still be 2+)
        assert threads.configure_threads() == threads._DEFAULT
        monkeypatch.setenv("BALDISTILL_TORCH_THREADS", "1")
        assert threads.configure_threads() == 1
    finally:
        torch.set_num_threads(before)
