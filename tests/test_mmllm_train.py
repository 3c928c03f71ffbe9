"""The training loop: what trains in each stage, checkpoints and resuming, devices,
accumulation, checkpointing and reproducibility."""
import pytest
import torch

from tests.mmllm_helpers import examples_and_patches, records, tiny_mmllm
from tinyemo.mmllm import artifact, checkpoint, infer
from tinyemo.mmllm.data import build_examples, summarise
from tinyemo.mmllm.train import TrainConfig, fingerprint, train, warmup_steps, write_loss_log


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before, model):
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p)}


def test_pretraining_trains_the_connector_only(tmp_path):
    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    examples, patches = examples_and_patches(tokenizer)
    before = snapshot(model)
    result = train(model, examples, patches, tokenizer.pad_token_id,
                   TrainConfig(epochs=2, batch_size=4, lr=1e-2, checkpoint_every=0))
    moved = changed(before, model)
    assert moved and all(name.startswith("connector.") for name in moved)
    assert result.steps == 4 and result.samples == 16
    assert result.log[-1]["loss"] < result.log[0]["loss"]
    write_loss_log(result.log, tmp_path / "loss.csv")
    assert (tmp_path / "loss.csv").read_text().splitlines()[0] == "step,epoch,loss,lr,grad_norm"


def test_lora_finetuning_changes_only_adapters_and_connector(tmp_path):
    model, tokenizer = tiny_mmllm()
    artifact.add_lora(model, r=4, alpha=8, dropout=0.0, targets="all-linear")
    artifact.set_trainable(model, "lora")
    examples, patches = examples_and_patches(tokenizer)
    before = snapshot(model)
    train(model, examples, patches, tokenizer.pad_token_id,
          TrainConfig(epochs=1, batch_size=4, lr=1e-2, checkpoint_every=0))
    moved = changed(before, model)
    assert any("lora_B" in name for name in moved) and any(n.startswith("connector.") for n in moved)
    assert all(name.startswith("connector.") or "lora_" in name for name in moved)
    # saved and loaded back (merged), the model gives the same outputs
    artifact.save_mmllm(tmp_path, model, {"llm": "tiny-random-llama", "vision_tower": "tiny-random-cnn",
                                          "connector": "mlp2x_gelu", "n_image_tokens": 4,
                                          "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                                   "targets": "all-linear"}})
    loaded, _, _ = artifact.load_mmllm(tmp_path)
    model.eval()
    from tinyemo.mmllm.data import training_batch
    batch = training_batch(examples[:2], patches, tokenizer.pad_token_id)
    assert torch.allclose(model(**batch).loss, loaded(**batch).loss, atol=1e-4)


def test_full_finetuning_trains_the_llm():
    model, _ = tiny_mmllm()
    artifact.set_trainable(model, "full")
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="valid: connector, lora, full"):
        artifact.set_trainable(model, "adapters")


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    config = TrainConfig(epochs=3, batch_size=4, lr=1e-2, checkpoint_every=2, seed=3)

    def fresh():
        model, tokenizer = tiny_mmllm()
        artifact.add_lora(model, r=4, alpha=8, dropout=0.1, targets="all-linear")
        artifact.set_trainable(model, "lora")
        return model, tokenizer

    model, tokenizer = fresh()
    examples, patches = examples_and_patches(tokenizer)
    full = train(model, examples, patches, tokenizer.pad_token_id, config)
    reference = snapshot(model)

    model, _ = fresh()
    cut = train(model, examples, patches, tokenizer.pad_token_id, config,
                checkpoint_dir=tmp_path, stop_after=3)
    assert cut.steps == 3
    assert [p.name for p in tmp_path.iterdir()] == ["step-000002"]
    model, _ = fresh()
    resumed = train(model, examples, patches, tokenizer.pad_token_id, config, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 2 and resumed.steps == full.steps == 6
    assert [row["step"] for row in resumed.log] == list(range(1, 7))
    assert resumed.log == full.log  # the same loss curve (LoRA dropout draws from the restored RNG)
    for name, value in snapshot(model).items():
        assert torch.equal(value, reference[name]), name


def test_checkpoints_of_another_run_are_not_resumed(tmp_path):
    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    examples, patches = examples_and_patches(tokenizer)
    train(model, examples, patches, tokenizer.pad_token_id,
          TrainConfig(epochs=1, batch_size=4, lr=1e-2, checkpoint_every=1), tmp_path)
    other = TrainConfig(epochs=1, batch_size=4, lr=5e-3, checkpoint_every=1)
    _, digest = summarise(examples, patches)
    assert checkpoint.latest(tmp_path, fingerprint(other, digest, model)) is None
    result = train(model, examples, patches, tokenizer.pad_token_id, other, tmp_path)
    assert result.resumed_from == 0


def test_epoch_batches_cover_every_record_once_with_less_padding():
    from tinyemo.mmllm.train import epoch_batches

    lengths = torch.randint(20, 300, (203,), generator=torch.Generator().manual_seed(0)).tolist()
    plain = epoch_batches(lengths, 8, seed=1, epoch=0, window=1)
    grouped = epoch_batches(lengths, 8, seed=1, epoch=0, window=8)
    for batches in (plain, grouped):
        assert sorted(i for batch in batches for i in batch) == list(range(203))
        assert len(batches) == 26 and all(1 <= len(batch) <= 8 for batch in batches)

    def padded(batches):
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)

    assert padded(grouped) < 0.9 * padded(plain)
    assert grouped == epoch_batches(lengths, 8, seed=1, epoch=0, window=8)
    assert grouped != epoch_batches(lengths, 8, seed=1, epoch=1, window=8)


def test_a_changed_dataset_of_the_same_size_does_not_resume(tmp_path):
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-2, checkpoint_every=1)
    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    examples, patches = examples_and_patches(tokenizer)
    train(model, examples, patches, tokenizer.pad_token_id, config, tmp_path)
    changed_records = records(8)
    changed_records[3]["conversations"][1]["value"] = "A different answer."
    other = build_examples(changed_records, tokenizer, [f"{i:03d}" for i in range(8)], 4)
    assert len(other) == len(examples)
    assert train(model, other, patches, tokenizer.pad_token_id, config, tmp_path).resumed_from == 0
    assert train(model, examples, patches * 2, tokenizer.pad_token_id, config,
                 tmp_path).resumed_from == 0
    assert train(model, examples, patches * 2, tokenizer.pad_token_id, config,
                 tmp_path).resumed_from == 2


def test_warm_up_has_at_least_one_step():
    assert warmup_steps(TrainConfig(warmup_ratio=0.03), 12) == 1
    assert warmup_steps(TrainConfig(warmup_ratio=0.1), 100) == 10
    assert warmup_steps(TrainConfig(warmup_ratio=0.0), 100) == 0
    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    examples, patches = examples_and_patches(tokenizer)
    result = train(model, examples, patches, tokenizer.pad_token_id,
                   TrainConfig(epochs=2, batch_size=4, lr=1e-2, warmup_ratio=0.03,
                               checkpoint_every=0))
    assert result.log[0]["lr"] == pytest.approx(1e-2)  # the peak right after the warm-up step
    assert result.log[-1]["lr"] < result.log[1]["lr"]


def test_weights_missing_from_a_saved_file_are_refused(tmp_path):
    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    config = {"llm": "tiny-random-llama", "vision_tower": "tiny-random-cnn",
              "connector": "mlp2x_gelu", "n_image_tokens": 4, "lora": None}
    artifact.save_mmllm(tmp_path, model, config)
    from safetensors.torch import load_file, save_file
    weights = load_file(tmp_path / artifact.WEIGHTS_FILE)
    artifact.load_mmllm(tmp_path)  # complete: loads
    save_file({k: v for k, v in weights.items() if not k.startswith("connector.0.")},
              tmp_path / artifact.WEIGHTS_FILE)
    with pytest.raises(KeyError, match="lacks 2 weight"):
        artifact.load_mmllm(tmp_path)


def _lora_run(examples, patches, tokenizer_pad, **settings):
    model, _ = tiny_mmllm()
    torch.manual_seed(5)
    artifact.add_lora(model, r=4, alpha=8, dropout=0.1, targets="all-linear")
    artifact.set_trainable(model, "lora")
    config = TrainConfig(epochs=2, batch_size=4, lr=1e-2, checkpoint_every=0, seed=2,
                         **settings)
    result = train(model, examples, patches, tokenizer_pad, config)
    return snapshot(model), result


def test_finetuning_reruns_are_bit_identical():
    _, tokenizer = tiny_mmllm()
    examples, patches = examples_and_patches(tokenizer)
    first, run1 = _lora_run(examples, patches, tokenizer.pad_token_id)
    second, run2 = _lora_run(examples, patches, tokenizer.pad_token_id)
    assert run1.log == run2.log
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_gradient_checkpointing_gives_the_same_weights():
    _, tokenizer = tiny_mmllm()
    examples, patches = examples_and_patches(tokenizer)
    plain, _ = _lora_run(examples, patches, tokenizer.pad_token_id)
    recomputed, _ = _lora_run(examples, patches, tokenizer.pad_token_id,
                              gradient_checkpointing=True)
    for name in plain:
        assert torch.allclose(plain[name], recomputed[name], atol=1e-6), name


def test_gradient_accumulation_matches_one_large_batch():
    """With identical records every micro batch has the mean loss of the whole batch, so
    4 accumulated micro batches of 2 give the gradient of one batch of 8."""
    model, tokenizer = tiny_mmllm()
    same = build_examples([records(1)[0]] * 8, tokenizer, ["000"], 4)
    patches = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(1))

    def run(steps):
        model, _ = tiny_mmllm()
        artifact.set_trainable(model, "connector")
        config = TrainConfig(epochs=3, batch_size=8, lr=1e-2, checkpoint_every=0,
                             gradient_accumulation_steps=steps)
        result = train(model, same, patches, tokenizer.pad_token_id, config)
        return snapshot(model), result

    one, single = run(1)
    four, accumulated = run(4)
    assert single.steps == accumulated.steps == 3 and accumulated.samples == 24
    for name in one:
        assert torch.allclose(one[name], four[name], atol=1e-6), name
    with pytest.raises(ValueError, match="multiple of 1 processes x 3 accumulation"):
        train(model, same, patches, tokenizer.pad_token_id,
              TrainConfig(batch_size=8, gradient_accumulation_steps=3, checkpoint_every=0))


class ReachedLLM(Exception):
    """Raised by a hook once the LLM is called with every input on the model's device."""


def _meta_accelerator():
    from accelerate import Accelerator

    class MetaAccelerator(Accelerator):
        """An accelerator whose device is `meta`: a batch left on the CPU fails there as it
        would on a GPU."""

        @property
        def device(self):
            return torch.device("meta")

    return MetaAccelerator(cpu=True)


def test_training_generation_and_evaluation_move_batches_to_the_model_device(monkeypatch):
    """The model on PyTorch's `meta` device (shapes only): a batch left on the CPU fails at
    the first operation that mixes it with the model, as on a GPU. The LLM's decoder, whose
    attention-mask logic reads values, is replaced by a shapes-only stand-in."""
    from types import SimpleNamespace

    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    examples, patches = examples_and_patches(tokenizer)

    def shapes_only(inputs_embeds, attention_mask=None, **kwargs):
        assert inputs_embeds.is_meta and attention_mask.is_meta
        return SimpleNamespace(last_hidden_state=inputs_embeds * 1.0)

    model.llm.model.forward = shapes_only
    from torch.fx.experimental import _config  # boolean-mask indexing on meta: all selected
    monkeypatch.setattr(_config, "meta_nonzero_assume_all_nonzero", True)
    result = train(model, examples, patches, tokenizer.pad_token_id,
                   TrainConfig(batch_size=4, max_steps=2, checkpoint_every=0),
                   accelerator=_meta_accelerator())
    assert result.steps == 2 and next(model.parameters()).is_meta

    def generate_stand_in(**kwargs):
        tensors = [v for v in kwargs.values() if torch.is_tensor(v)]
        assert len(tensors) == 2 and all(t.is_meta for t in tensors), [t.device for t in tensors]
        raise ReachedLLM

    model.llm.generate = generate_stand_in
    prompts = [infer.generative_prompt(["joy", "fear"])] * 2
    with pytest.raises(ReachedLLM):
        infer.generate(model, tokenizer, prompts, patches[:2], max_new_tokens=2)
    with pytest.raises(ReachedLLM):
        list(infer.stream(model, tokenizer, prompts[0], patches[0], max_new_tokens=2))

    def reached(inputs_embeds, attention_mask=None, **kwargs):
        assert inputs_embeds.is_meta and attention_mask.is_meta
        raise ReachedLLM

    model.llm.model.forward = reached  # the evaluation's losses: batches follow the model too
    from tinyemo.mmllm.stage_runs import answer_losses
    with pytest.raises(ReachedLLM):
        answer_losses(model, examples[:2], patches, tokenizer.pad_token_id)


BF16_RUN = """
import torch
from tests.mmllm_helpers import examples_and_patches, tiny_mmllm
from tinyemo.mmllm import artifact
from tinyemo.mmllm.train import TrainConfig, train
torch.set_num_threads(1)
model, tokenizer = tiny_mmllm()
artifact.set_trainable(model, "connector")
examples, patches = examples_and_patches(tokenizer)
result = train(model, examples, patches, tokenizer.pad_token_id,
               TrainConfig(batch_size=4, lr=1e-2, max_steps=2, checkpoint_every=0,
                           mixed_precision="bf16", gradient_accumulation_steps=2))
print(result.log[-1]["loss"], next(model.connector.parameters()).dtype)
"""


def test_bf16_mixed_precision_trains(tmp_path):
    """In a fresh process (accelerate's precision is fixed per process): the embeddings stay
    float32 under autocast while the connector's image tokens come out in bf16."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", BF16_RUN], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loss, dtype = done.stdout.split()
    assert 0 < float(loss) < 20 and dtype == "torch.float32"  # master weights stay float32


def test_stages_with_several_processes_launch_accelerate(tmp_path):
    from tinyemo.mmllm.processes import launch_command
    from tinyemo.mmllm.params import PretrainParams

    ddp = PretrainParams(lr=1e-3, num_processes=2, gradient_accumulation_steps=2)
    command = launch_command("pretrain", ddp, tmp_path / "out", max_steps=3)
    assert command[1:3] == ["launch", "--multi_gpu"]
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[command.index("-m") + 1:command.index("-m") + 3] == ["tinyemo.mmllm.launch", "pretrain"]
    assert command[-2:] == ["--max-steps", "3"] and "--gradient_accumulation_steps" not in command
    zero2 = PretrainParams(lr=1e-3, num_processes=8, gradient_accumulation_steps=4,
                           mixed_precision="bf16",
                           accelerate_config="configs/accelerate/deepspeed_zero2.yaml")
    command = launch_command("finetune", zero2, tmp_path / "out", tmp_path / "pre")
    assert command[command.index("--config_file") + 1].endswith("deepspeed_zero2.yaml")
    assert command[command.index("--gradient_accumulation_steps") + 1] == "4"
    assert command[command.index("--mixed_precision") + 1] == "bf16"
    assert command[command.index("--pretrained") + 1] == str(tmp_path / "pre")
    import yaml
    from pathlib import Path
    for name in ("single_gpu", "multi_gpu_ddp", "deepspeed_zero2"):
        config = yaml.safe_load((Path(__file__).parents[1] / f"configs/accelerate/{name}.yaml").read_text())
        assert config["mixed_precision"] == "bf16" and config["num_machines"] == 1


def test_checkpoints_restore_every_random_generator(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    saved = checkpoint.rng_state()
    torch.save(saved, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    checkpoint.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))  # no pickles
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


class ClipRecorder:
    """Wraps a real Accelerator and records every clip_grad_norm_ call (what it clipped to,
    and the norm it measured)."""

    def __init__(self, config):
        from tinyemo.mmllm.train import make_accelerator

        self.inner, self.calls = make_accelerator(config), []

    def clip_grad_norm_(self, parameters, max_norm):
        norm = self.inner.clip_grad_norm_(parameters, max_norm)
        self.calls.append((max_norm, float(norm)))
        return norm

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_gradients_are_clipped_at_every_optimizer_step():
    _, tokenizer = tiny_mmllm()
    examples, patches = examples_and_patches(tokenizer)
    results = {}
    for clip in (1.0e-3, None):
        model, _ = tiny_mmllm()
        artifact.set_trainable(model, "connector")
        config = TrainConfig(epochs=2, batch_size=4, lr=1e-2, checkpoint_every=0,
                             gradient_accumulation_steps=2, max_grad_norm=clip)
        accelerator = ClipRecorder(config)
        result = train(model, examples, patches, tokenizer.pad_token_id, config, accelerator=accelerator)
        assert len(accelerator.calls) == result.steps == 4  # once per optimizer step, not per micro batch
        assert [row["grad_norm"] for row in result.log] == [norm for _, norm in accelerator.calls]
        results[clip] = (accelerator.calls, snapshot(model))
    assert all(limit == 1.0e-3 and norm > 1.0e-3 for limit, norm in results[1.0e-3][0])
    assert all(limit == float("inf") for limit, _ in results[None][0])  # measured, not clipped
    clipped, free = results[1.0e-3][1], results[None][1]
    assert any(not torch.equal(clipped[name], free[name]) for name in free)  # clipping changed the run
    assert TrainConfig().max_grad_norm == 1.0


def test_deepspeed_gets_its_batch_settings_before_prepare():
    """accelerate fills DeepSpeed's "auto" micro batch from a prepared DataLoader, and this
    loop prepares none: the plugin built from the project's ZeRO-2 config is completed from
    the training settings (deepspeed itself need not be installed to check the config)."""
    from pathlib import Path

    import yaml
    from accelerate.utils import DeepSpeedPlugin

    from tinyemo.mmllm.train import configure_deepspeed

    file = Path(__file__).parents[1] / "configs/accelerate/deepspeed_zero2.yaml"
    options = yaml.safe_load(file.read_text())["deepspeed_config"]
    plugin = DeepSpeedPlugin(**{key: value for key, value in options.items() if key != "zero3_init_flag"})
    plugin.set_mixed_precision("bf16")
    config = TrainConfig(batch_size=128, gradient_accumulation_steps=4, mixed_precision="bf16")
    settings = configure_deepspeed(plugin, config, processes=8)

    def autos(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from autos(value, f"{prefix}{key}.")
            elif value == "auto":
                yield prefix + key

    assert list(autos(settings)) == []
    assert settings["train_micro_batch_size_per_gpu"] == 4
    assert settings["gradient_accumulation_steps"] == 4 and settings["train_batch_size"] == 128
    assert settings["gradient_clipping"] == 1.0 and settings["zero_optimization"]["stage"] == 2
    with pytest.raises(ValueError, match="multiple of 8 processes x 4"):
        configure_deepspeed(plugin, TrainConfig(batch_size=100, gradient_accumulation_steps=4), 8)
