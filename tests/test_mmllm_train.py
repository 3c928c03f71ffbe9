"""The training loop: what trains in each stage, checkpoints and resuming."""
import pytest
import torch

from tests.mmllm_helpers import examples_and_patches, tiny_mmllm
from tinyemo.mmllm import artifact, checkpoint
from tinyemo.mmllm.train import TrainConfig, train, write_loss_log


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
    assert (tmp_path / "loss.csv").read_text().splitlines()[0] == "step,epoch,loss,lr"


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
    for name, value in snapshot(model).items():
        assert torch.allclose(value, reference[name], atol=1e-6), name


def test_checkpoints_of_another_run_are_not_resumed(tmp_path):
    model, tokenizer = tiny_mmllm()
    artifact.set_trainable(model, "connector")
    examples, patches = examples_and_patches(tokenizer)
    train(model, examples, patches, tokenizer.pad_token_id,
          TrainConfig(epochs=1, batch_size=4, lr=1e-2, checkpoint_every=1), tmp_path)
    other = TrainConfig(epochs=1, batch_size=4, lr=5e-3, checkpoint_every=1)
    from tinyemo.mmllm.train import fingerprint
    assert checkpoint.latest(tmp_path, fingerprint(other, len(examples), model)) is None
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
