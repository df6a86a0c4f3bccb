"""Greedy generation engines for IFD scoring and evaluation: one interface, ``student.engine`` picks.

``hf`` (default, the CPU path) wraps ``student.model.generate`` and ``student.ifd.score`` on a
loaded transformers model. ``vllm`` runs the base model in vLLM with the stage's LoRA adapter
(``LoRARequest``): greedy rationales at temperature 0, and both IFD losses from vLLM's prompt
log-probs — the conditioned loss from prompt + rationale, the unconditioned one from start
token + rationale — scored over exactly the token ids the HF engine would use (prompts are
tokenized by the same tokenizer). vllm is imported only when chosen; it is an extra
(``pip install .[gpu]``) and has not run on hardware here (``bench/gpu_smoke.py`` checks it).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Protocol

from baldistill_core.config import StudentConfig
from baldistill_core.errors import ConfigError
from baldistill_core.student import ifd

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class GenerationEngine(Protocol):
    name: str

    def generate(self, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8) -> list[str]:
        """Greedy continuations of ``prompts`` (only the new text), in the input order."""

    def ifd_scores(self, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8,
                   variant: ifd.Variant = "ppl_ratio") -> list[ifd.IFDResult]:
        """IFD of every prompt, in the input order (see ``student.ifd``)."""


class HFEngine:
    """transformers: batched greedy decoding with the KV cache (``student.greedy``)."""

    name = "hf"

    def __init__(self, model, tokenizer, *, ifd_bf16: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.ifd_bf16 = ifd_bf16  # False: IFD forwards in fp32 even on a bf16-marked model (StudentConfig.cpu_bf16_ifd)

    def generate(self, prompts, *, max_new_tokens, batch_size=8):
        from baldistill_core.student.model import generate

        return generate(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)

    def ifd_scores(self, prompts, *, max_new_tokens, batch_size=8, variant="ppl_ratio"):
        from baldistill_core.student import precision

        with precision.marked(self.model, self.ifd_bf16 and precision.is_marked(self.model)):
            return ifd.score(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, variant=variant)


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("student.engine 'vllm' needs the vllm package, which is not installed: on a CUDA "
                          "machine run `pip install .[gpu]`; or set student.engine to 'hf'")


def vllm_lora_rank(r: int) -> int:
    """The smallest rank vLLM accepts as ``max_lora_rank`` that holds an adapter of rank ``r``.

    >>> vllm_lora_rank(4), vllm_lora_rank(8), vllm_lora_rank(9)
    (8, 8, 16)
    """
    return next(x for x in VLLM_LORA_RANKS if x >= max(r, 8))


def mean_target_loss(prompt_logprobs: list, token_ids: list[int], start: int) -> float:
    """Mean cross-entropy of ``token_ids[start:]`` from vLLM's ``prompt_logprobs`` of that sequence.

    ``prompt_logprobs[i]`` maps token id -> an object with ``.logprob`` (vLLM's ``Logprob``) and
    always holds the token actually at position i (None at position 0). NaN when nothing is scored.
    """
    lps = [prompt_logprobs[i][token_ids[i]].logprob for i in range(max(start, 1), len(token_ids))]
    return -sum(lps) / len(lps) if lps else float("nan")


def vllm_engine_args(cfg: StudentConfig, base_path, *, seed: int = 0) -> dict:
    """``vllm.LLM`` keyword arguments for the student (checked by ``bench/gpu_smoke.py --dry-run``)."""
    return dict(model=str(base_path), tokenizer=str(base_path), enable_lora=True, max_loras=1,
                max_lora_rank=vllm_lora_rank(cfg.lora_r), dtype="bfloat16" if cfg.bf16 else "float32",
                gpu_memory_utilization=cfg.vllm_gpu_memory, seed=seed, enforce_eager=True,
                # prompt log-probs (the IFD losses) are computed afresh, never read from a prefix cache
                enable_prefix_caching=False, max_model_len=cfg.max_seq_len + cfg.max_new_tokens)


class VLLMEngine:
    """vLLM: the base model once per process, the stage's adapter as a LoRA request."""

    name = "vllm"
    _llms: dict[tuple, object] = {}  # one engine per (base, settings): stages swap adapters, not models

    def __init__(self, cfg: StudentConfig, base_path: str | Path, adapter_dir: str | Path | None, *, seed: int = 0):
        require_vllm()
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("student.engine 'vllm' needs a CUDA GPU; none is visible here — set student.engine "
                              "to 'hf'")
        from baldistill_core.student.model import load_tokenizer

        self.cfg, self.base, self.adapter = cfg, str(base_path), str(adapter_dir) if adapter_dir else None
        self.tokenizer = load_tokenizer(base_path)
        key = (self.base, cfg.lora_r, cfg.max_seq_len, cfg.max_new_tokens, cfg.vllm_gpu_memory, cfg.bf16)
        if key not in self._llms:
            from vllm import LLM

            self._llms[key] = LLM(**vllm_engine_args(cfg, self.base, seed=seed))
        self.llm = self._llms[key]
        self._lora_id = abs(hash(self.adapter)) % 10**9 + 1 if self.adapter else None

    def _lora(self):
        if self.adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(Path(self.adapter).name, self._lora_id, self.adapter)

    def _stop_ids(self) -> list[int]:
        from transformers import GenerationConfig

        try:
            ids = GenerationConfig.from_pretrained(self.base).eos_token_id
        except OSError:
            ids = None
        ids = [] if ids is None else ([ids] if isinstance(ids, int) else list(ids))
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids  # the same stop set as greedy.stop_token_ids

    def _greedy(self, prompts: list[str], max_new_tokens: int) -> tuple[list[list[int]], list[list[int]]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = [self.tokenizer(p)["input_ids"] for p in prompts]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=self._stop_ids(),
                                skip_special_tokens=True, detokenize=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=e) for e in encoded], params,
                                 lora_request=self._lora(), use_tqdm=False)
        stops = set(self._stop_ids())
        new = [[t for t in o.outputs[0].token_ids if t not in stops] for o in outs]
        return encoded, new

    def generate(self, prompts, *, max_new_tokens, batch_size=8):
        _, new = self._greedy(prompts, max_new_tokens)
        return [self.tokenizer.decode(y, skip_special_tokens=True) for y in new]

    def _losses(self, seqs: list[list[int]], starts: list[int]) -> list[float]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params,
                                 lora_request=self._lora(), use_tqdm=False)
        return [mean_target_loss(o.prompt_logprobs, s, st) for o, s, st in zip(outs, seqs, starts)]

    def ifd_scores(self, prompts, *, max_new_tokens, batch_size=8, variant="ppl_ratio"):
        encoded, new = self._greedy(prompts, max_new_tokens)
        start = ifd.start_token_id(self.tokenizer)
        cond = self._losses([x + y for x, y in zip(encoded, new)], [len(x) for x in encoded])
        uncond = self._losses([[start, *y] for y in new], [1] * len(new))
        out = []
        for y, lc, lu in zip(new, cond, uncond):
            score = ifd.ifd_from_losses(lc, lu, variant) if y and not math.isnan(lc) else None
            out.append(ifd.IFDResult(score=score, loss_cond=lc, loss_uncond=lu,
                                     rationale=self.tokenizer.decode(y, skip_special_tokens=True)))
        return out


def build(cfg: StudentConfig, base_path, adapter_dir=None, *, hf_loader=None, seed: int = 0) -> GenerationEngine:
    """The engine ``cfg.engine`` names for the student base + ``adapter_dir``.

    ``hf_loader(adapter_dir) -> (model, tokenizer)`` lets the caller reuse a loaded model; by default
    the model is loaded with ``student.model.load_model``.
    """
    if cfg.engine == "vllm":
        return VLLMEngine(cfg, base_path, adapter_dir, seed=seed)
    if hf_loader is None:
        from baldistill_core.student.model import load_model

        from baldistill_core.student.precision import use_cpu_bf16

        return HFEngine(*load_model(base_path, adapter_dir=adapter_dir, quantization=cfg.quantization,
                                    cpu_bf16=use_cpu_bf16(cfg)), ifd_bf16=cfg.cpu_bf16_ifd)
    return HFEngine(*hf_loader(adapter_dir), ifd_bf16=cfg.cpu_bf16_ifd)
