"""Generation engines: the HF engine against the direct path, the vLLM engine's loss arithmetic on the
tiny model's real log-probs, and the clear error when vllm (or a GPU) is missing."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import pytest
import torch

from _model_helpers import tiny_model, tiny_path, tiny_prompts
from baldistill_core.config import StudentConfig
from baldistill_core.errors import ConfigError
from baldistill_core.evaluation import evaluate
from baldistill_core.student import engines, ifd
from baldistill_core.student import model as student
from baldistill_core.task.view import StudentView

MAX_NEW = 8
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_hf_engine_equals_the_direct_path():
    model, tok = tiny_model()
    prompts = tiny_prompts()
    eng = engines.build(StudentConfig(model="tiny-llama-test", preset="test-tiny"), tiny_path(),
                        hf_loader=lambda adapter: (model, tok))
    assert eng.name == "hf"
    assert eng.generate(prompts, max_new_tokens=MAX_NEW, batch_size=4) == student.generate(
        model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=4)
    assert eng.ifd_scores(prompts, max_new_tokens=MAX_NEW, batch_size=4, variant="cherry") == ifd.score(
        model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=4, variant="cherry")
    items = [dict(id=str(i), domain="d" if i % 2 else "e", answer="grain", input=p) for i, p in enumerate(prompts)]
    view = StudentView("classification", "Classify.")
    direct = evaluate.evaluate_model(model, tok, items, view, labels=["grain"], max_new_tokens=MAX_NEW)
    via = evaluate.evaluate_with(eng, items, view, labels=["grain"], max_new_tokens=MAX_NEW)
    assert via.predictions == direct.predictions and via.overall == direct.overall


@dataclass
class Logprob:  # the fields of vllm.sequence.Logprob that the engine reads
    logprob: float


def _prompt_logprobs(model, seq: list[int]) -> list:
    """What vLLM's ``prompt_logprobs=0`` returns for ``seq``: None, then {actual token: its log-prob}."""
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0].double(), -1)
    return [None] + [{seq[i]: Logprob(float(logp[i - 1, seq[i]]))} for i in range(1, len(seq))]


def test_the_vllm_engines_losses_from_prompt_logprobs_match_the_hf_engine():
    """The conditioned loss from prompt + rationale's prompt log-probs (the vLLM path) equals the one the
    HF engine reads off its decoding, and likewise the unconditioned one, on the tiny model."""
    model, tok = tiny_model()
    prompts = tiny_prompts(6)
    hf = ifd.score(model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=4)
    greedy = student.greedy_decode(model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=4)
    start = ifd.start_token_id(tok)
    checked = 0
    for x, y, res in zip(greedy.prompt_ids, greedy.new_ids, hf):
        if not y:
            continue
        cond = engines.mean_target_loss(_prompt_logprobs(model, x + y), x + y, len(x))
        uncond = engines.mean_target_loss(_prompt_logprobs(model, [start, *y]), [start, *y], 1)
        assert cond == pytest.approx(res.loss_cond, abs=1e-4) and uncond == pytest.approx(res.loss_uncond, abs=1e-4)
        assert ifd.ifd_from_losses(cond, uncond) == pytest.approx(res.score, rel=1e-3)
        checked += 1
    assert checked >= 4
    assert engines.mean_target_loss([None], [5], 1) != engines.mean_target_loss([None], [5], 1)  # NaN: nothing scored


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_choosing_vllm_without_it_says_how_to_install_it(tmp_path):
    cfg = StudentConfig(model="tiny-llama-test", preset="test-tiny", engine="vllm")
    with pytest.raises(ConfigError, match=r"pip install \.\[gpu\].*student\.engine to 'hf'"):
        engines.build(cfg, tiny_path())
    # A run configured so fails at its first generation, with that message, and can be resumed.
    from baldistill_core.runs import jobs
    from baldistill_core.runs import records as runs
    from baldistill_core.workspace import open_workspace
    from _run_helpers import import_tiny, tiny_config

    ws, conn = open_workspace(tmp_path / "ws", bundled=False)
    import_tiny(conn, tmp_path / "data")
    run_id = runs.create_run(conn, ws.runs_dir, tiny_config(student=dict(engine="vllm")))
    assert jobs.run_worker(ws, conn, run_id) != 0
    run = runs.get_run(conn, run_id)
    assert run["status"] == "failed" and "pip install .[gpu]" in run["error"]
    conn.close()


def test_vllm_is_imported_only_when_chosen():
    import sys

    eng = engines.build(StudentConfig(model="tiny-llama-test", preset="test-tiny"), tiny_path(),
                        hf_loader=lambda adapter: tiny_model())
    assert eng.name == "hf" and "vllm" not in sys.modules
    assert engines.vllm_lora_rank(4) == 8 and engines.vllm_lora_rank(64) == 64 and engines.vllm_lora_rank(65) == 128
