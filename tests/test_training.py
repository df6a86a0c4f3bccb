"""LoRA SFT through TRL on the tiny random Llama: what changes, what the loss sees, stop, reload."""

from __future__ import annotations

import hashlib
import shlex
import sys

import pytest
import torch

from _model_helpers import tiny_examples, tiny_path
from baldistill_core.student import ifd
from baldistill_core.student import model as student
from baldistill_core.student import training
from baldistill_core.config import StudentConfig


def _cfg(**kw) -> StudentConfig:
    return StudentConfig(preset="test-tiny", **kw)


def _file_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter") / "stage0"
    weights = tiny_path() / "model.safetensors"
    before = _file_hash(weights)
    logs: list[dict] = []
    result = training.train_adapter(tiny_path(), tiny_examples(8), _cfg(epochs=3.0), out, seed=0, on_log=logs.append)
    return result, logs, before


def test_training_writes_adapter_and_reports_progress(trained):
    result, logs, _ = trained
    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_config.json").exists()
    assert (result.adapter_dir / "train_result.json").exists()
    assert not result.stopped
    assert result.steps == 6 == len(logs)  # 8 examples / batch 4 = 2 steps per epoch, 3 epochs
    assert [e["step"] for e in logs] == list(range(1, 7))
    assert {"step", "loss", "epoch", "tokens_per_s", "tokens_seen"} <= set(logs[0])
    assert result.tokens_seen == logs[-1]["tokens_seen"] > 0
    assert result.final_loss == pytest.approx(logs[-1]["loss"])
    assert logs[-1]["loss"] < logs[0]["loss"]  # it learns the repeated completions
    siblings = [p.name for p in result.adapter_dir.parent.iterdir()]
    assert siblings == ["stage0"]  # the temp folder was renamed into place, nothing left behind


def test_lora_weights_change_and_base_weights_do_not(trained):
    result, _, base_hash_before = trained
    assert _file_hash(tiny_path() / "model.safetensors") == base_hash_before
    base, _ = student.load_model(tiny_path())
    tuned, _ = student.load_model(tiny_path(), adapter_dir=result.adapter_dir)
    base_sd = base.state_dict()
    tuned_sd = tuned.state_dict()
    lora = {k: v for k, v in tuned_sd.items() if "lora_" in k}
    assert lora and any("lora_B" in k for k in lora)
    # LoRA B starts at zero, so non-zero B means training moved the adapter.
    assert all(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)
    for k, v in tuned_sd.items():
        if "lora_" in k:
            continue
        name = k.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(v, base_sd[name]), name


def test_loss_is_on_completion_tokens_only(tmp_path):
    examples = tiny_examples(4)
    trainer = training.build_trainer(tiny_path(), examples, _cfg(), tmp_path)
    tok = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    labels, ids, mask = batch["labels"], batch["input_ids"], batch["attention_mask"]
    seen = 0
    for row in range(ids.shape[0]):
        n = int(mask[row].sum())
        seq = ids[row, :n].tolist()
        ex = next(e for e in examples if tok(e["prompt"] + e["completion"] + tok.eos_token)["input_ids"] == seq)
        n_prompt = len(tok(ex["prompt"])["input_ids"])
        assert (labels[row, :n_prompt] == -100).all()            # prompt: no loss
        assert torch.equal(labels[row, n_prompt:n], ids[row, n_prompt:n])  # rationale + answer + EOS: loss
        assert (labels[row, n:] == -100).all()                   # padding: no loss
        assert tok.decode(ids[row, n_prompt:n]).startswith("The story is about")
        assert int(ids[row, n - 1]) == tok.eos_token_id           # learns to stop
        seen += 1
    assert seen == ids.shape[0] == 4


def test_should_stop_ends_training_cleanly_without_saving(tmp_path):
    logs: list[dict] = []
    out = tmp_path / "adapter"
    result = training.train_adapter(tiny_path(), tiny_examples(8), _cfg(epochs=5.0), out, on_log=logs.append,
                                    should_stop=lambda: len(logs) >= 2)
    assert result.stopped and result.adapter_dir is None
    assert result.steps == 2 and len(logs) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_adapter_reload_gives_the_same_outputs(tmp_path):
    trainer = training.build_trainer(tiny_path(), tiny_examples(8), _cfg(), tmp_path / "work", seed=1)
    trainer.train()
    model = trainer.model.eval()
    tok = student.load_tokenizer(tiny_path())
    probe = tok(tiny_examples(1)[0]["prompt"], return_tensors="pt")
    with torch.no_grad():
        expected = model(**probe).logits
    training._save_atomically(model, tmp_path / "adapter", {})
    reloaded, tok2 = student.load_model(tiny_path(), adapter_dir=tmp_path / "adapter")
    with torch.no_grad():
        got = reloaded(**probe).logits
    assert torch.allclose(got, expected, atol=1e-5)
    base, _ = student.load_model(tiny_path())
    with torch.no_grad():
        assert not torch.allclose(base(**probe).logits, expected, atol=1e-3)  # the adapter matters
    # IFD's batched loss runs through the adapter too (its LM-head shortcut on a PEFT model).
    (fast,) = ifd.target_losses(reloaded, [probe["input_ids"][0].tolist()], [5])
    manual = torch.nn.functional.cross_entropy(got[0, 4:-1], probe["input_ids"][0, 5:]).item()
    assert ifd._lm_head_split(reloaded) is not None and fast == pytest.approx(manual, abs=1e-4)
    prompts = [e["prompt"] for e in tiny_examples(3)]
    assert student.generate(reloaded, tok2, prompts, max_new_tokens=6) == \
        student.generate(reloaded, tok2, prompts, max_new_tokens=6, batch_size=1)


def test_continued_training_starts_from_the_given_adapter(trained, tmp_path):
    result, _, _ = trained
    trainer = training.build_trainer(tiny_path(), tiny_examples(4), _cfg(), tmp_path, init_adapter=result.adapter_dir)
    start = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if "lora_" in k}
    saved, _ = student.load_model(tiny_path(), adapter_dir=result.adapter_dir)
    saved_lora = {k: v for k, v in saved.named_parameters() if "lora_" in k}
    assert start.keys() == saved_lora.keys()
    assert all(torch.equal(start[k], saved_lora[k]) for k in start)
    assert all(p.requires_grad for k, p in trainer.model.named_parameters() if "lora_" in k)


def test_same_seed_same_adapter(tmp_path):
    a = training.train_adapter(tiny_path(), tiny_examples(4), _cfg(), tmp_path / "a", seed=3)
    b = training.train_adapter(tiny_path(), tiny_examples(4), _cfg(), tmp_path / "b", seed=3)
    assert a.final_loss == b.final_loss
    assert _file_hash(a.adapter_dir / "adapter_model.safetensors") == \
        _file_hash(b.adapter_dir / "adapter_model.safetensors")


def test_bad_examples_are_refused_with_a_reason(tmp_path):
    with pytest.raises(training.TrainingError, match="no training examples"):
        training.train_adapter(tiny_path(), [], _cfg(), tmp_path / "x")
    with pytest.raises(training.TrainingError, match="completion"):
        training.train_adapter(tiny_path(), [{"prompt": "p", "completion": ""}], _cfg(), tmp_path / "x")


def test_sft_config_follows_the_student_config(tmp_path):
    cfg = StudentConfig(preset="paper-gpu", quantization="none", bf16=False)
    args = training.sft_config(cfg, tmp_path)
    assert args.per_device_train_batch_size == 16 and args.num_train_epochs == 8.0
    assert args.learning_rate == 2e-4 and args.max_grad_norm == 0.3 and args.max_length == 1024
    assert args.warmup_steps == pytest.approx(0.03) and args.completion_only_loss is True
    assert args.report_to in ([], "none", ["none"]) and args.lr_scheduler_type == "constant_with_warmup"
    lora = training.lora_config(cfg)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.1)
    assert set(lora.target_modules) == {"q_proj", "v_proj"}


def test_accelerate_command():
    single = training.accelerate_command(_cfg(), ["-m", "baldistill_core.cli", "train-stage", "--run", "r1"])
    assert single == [sys.executable, "-m", "baldistill_core.cli", "train-stage", "--run", "r1"]
    cfg = StudentConfig(preset="paper-gpu", accelerate_num_processes=4)
    script = ["-m", "baldistill_core.cli", "train-stage", "--run", "r1"]
    cmd = training.accelerate_command(cfg, script)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[-len(script):] == script
    # accelerate's own parser understands it: 4 processes, multi-GPU, bf16, our module and arguments.
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(cmd[3:])
    assert args.num_processes == 4 and args.multi_gpu and args.mixed_precision == "bf16"
    assert args.module and args.training_script == "baldistill_core.cli"
    assert args.training_script_args == ["train-stage", "--run", "r1"]
    assert "accelerate.commands.launch" in shlex.join(cmd)
