"""Student loading, cached conversion, batched greedy generation, quantization settings."""

from __future__ import annotations

import threading

import pytest
import torch

from _model_helpers import tiny_model, tiny_path, tiny_prompts
from baldistill_core import workspace
from baldistill_core.student import model as student
from baldistill_core.config import StudentConfig


def test_tiny_model_is_a_cached_two_layer_llama_with_a_real_tokenizer():
    path = tiny_path()
    assert path.parent == workspace.model_cache_dir()
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert student.resolve_model(student.TINY_TEST) == path  # cached: same folder, no rebuild
    model, tok = tiny_model()
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert tok.pad_token is not None and tok.padding_side == "left"
    assert tok.decode(tok("The capital of France")["input_ids"]) == "The capital of France"
    assert not model.training


def test_cached_build_runs_once_when_two_callers_race(tmp_path, monkeypatch):
    monkeypatch.setenv("BALDISTILL_CACHE", str(tmp_path))
    builds: list[int] = []
    gate = threading.Event()

    def build(out):
        builds.append(1)
        gate.wait(2)  # hold the lock while the other caller arrives
        (out / "config.json").write_text("{}")

    results: list = []
    threads = [threading.Thread(target=lambda: results.append(student._cached_folder("m", build))) for _ in range(2)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert builds == [1]
    assert results == [tmp_path / "m", tmp_path / "m"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]  # no temp folder left behind


def test_a_half_written_folder_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("BALDISTILL_CACHE", str(tmp_path))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("partial")  # killed mid-conversion: no .complete marker
    path = student._cached_folder("m", lambda out: (out / "config.json").write_text("{}"))
    assert (path / "config.json").read_text() == "{}"


def test_unknown_model_names_say_what_to_use(tmp_path):
    with pytest.raises(student.StudentError, match="smollm2-135m"):
        student.resolve_model("no-such-model")
    with pytest.raises(student.StudentError, match="config.json"):
        student.resolve_model(str(tmp_path))
    assert student.resolve_model(str(tiny_path())) == tiny_path()


def test_greedy_generation_matches_hf_generate_one_at_a_time():
    model, tok = tiny_model()
    prompts = tiny_prompts(6)
    got = student.greedy_decode(model, tok, prompts, max_new_tokens=7, batch_size=4)
    for p, new in zip(prompts, got.new_ids):
        enc = tok(p, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=7, do_sample=False, pad_token_id=tok.pad_token_id)
        assert new == out[0, enc["input_ids"].shape[1]:].tolist()
    assert got.prompt_ids == [tok(p)["input_ids"] for p in prompts]
    assert all(len(lp) == len(ids) and all(v <= 0 for v in lp) for lp, ids in zip(got.new_logprobs, got.new_ids))


def test_generate_is_batch_invariant_and_in_input_order():
    model, tok = tiny_model()
    prompts = tiny_prompts()
    batched = student.generate(model, tok, prompts, max_new_tokens=6, batch_size=5)
    single = student.generate(model, tok, prompts, max_new_tokens=6, batch_size=1)
    no_prefix = [student.generate(model, tok, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single == no_prefix
    assert student.generate(model, tok, [], max_new_tokens=4) == []
    assert len(set(batched)) > 1  # different prompts, different continuations


def test_stop_tokens_end_a_row(monkeypatch):
    model, tok = tiny_model()
    prompt = tiny_prompts(1)[0]
    first = student.greedy_decode(model, tok, [prompt], max_new_tokens=6).new_ids[0]
    # Declare the third generated token a stop token: the row ends before it.
    from baldistill_core.student import greedy

    monkeypatch.setattr(greedy, "stop_token_ids", lambda m, t: [first[2]])
    again = student.greedy_decode(model, tok, [prompt, tiny_prompts(2)[1]], max_new_tokens=6).new_ids[0]
    assert again == first[: first.index(first[2])]


def test_length_sorted_batches_cover_every_index_once():
    lengths = [5, 1, 9, 9, 3, 7, 2]
    batches = student.length_sorted_batches(lengths, 3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [lengths[i] for i in batches[0]] == [9, 9, 7]


def test_quantization_kwargs_for_4bit_without_a_gpu():
    from transformers import BitsAndBytesConfig

    kw = student.quantization_kwargs(StudentConfig(quantization="4bit"))
    q = kw["quantization_config"]
    assert isinstance(q, BitsAndBytesConfig)
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and kw["dtype"] == torch.bfloat16
    assert student.quantization_kwargs(StudentConfig(quantization="none")) == {}
    auto = student.quantization_kwargs(StudentConfig(quantization="auto"))
    assert (auto != {}) == student.qlora_available()


def test_qlora_is_unavailable_without_cuda():
    if not torch.cuda.is_available():
        assert student.qlora_available() is False
        assert student.resolve_quantization("auto") == "none"
    with pytest.raises(student.StudentError, match="auto, 4bit, none"):
        student.resolve_quantization("8bit")


def test_loading_4bit_without_a_gpu_says_how_to_fix():
    if student.qlora_available():
        pytest.skip("this machine can run QLoRA")
    with pytest.raises(student.StudentError, match="CUDA GPU and the bitsandbytes"):
        student.load_model(tiny_path(), quantization="4bit")


@pytest.mark.slow
def test_bundled_smollm2_knows_the_capital_of_france():
    path = student.resolve_model(student.SMOLLM2)  # converted once from the GGUF, then cached
    assert (path / "model.safetensors").exists()
    model, tok = student.load_model(path)
    (text,) = student.generate(model, tok, ["The capital of France is"], max_new_tokens=4)
    assert text.strip().startswith("Paris")
