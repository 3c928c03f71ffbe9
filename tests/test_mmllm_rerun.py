"""Nothing trained is lost: the finished model is saved with its training record before
anything evaluates it, a rerun of the same training takes it instead of training, and the
records are tokenised once per run (a token cache every process and every resume reads)."""
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.mmllm_helpers import N_IMAGE_TOKENS, tiny_mmllm
from tests.test_mmllm_records_join import llava, params, webemo, write  # noqa: F401 (fixture)
from tinyemo import config
from tinyemo.feature_store import FeatureSet
from tinyemo.mmllm import artifact, data, stage_runs
from tinyemo.mmllm.checkpoint import checkpoint_dir
from tinyemo.mmllm.data import TokenisedExamples, summarise
from tinyemo.mmllm.train import BatchSizeError, TrainConfig, train

BASE = {"profile": "default", "llm": "tiny-random-llama", "vision_tower": "tiny-random-cnn"}


def settings_of(kind, file, folder, **more):
    """Params of `kind` on the records file, long enough for every answer (the byte-level
    tiny tokenizer spells a prompt in hundreds of tokens)."""
    update = {"max_length": 384, **({"lr": more.pop("lr")} if "lr" in more else {})}
    return params(kind, file, folder, **more).model_copy(update=update)


@pytest.fixture
def records_file(webemo, tmp_path):
    folder, features = webemo
    return write(tmp_path / "records.json", llava(features.ids[:16])), folder


def test_a_rerun_of_a_finished_training_takes_the_saved_model(records_file, tmp_path, capsys):
    file, folder = records_file
    base = config.validate_section("base", BASE)
    settings = settings_of("pretrain", file, folder, batch_size=4, checkpoint_every=1, n_records=8)
    out = tmp_path / "mmllm" / "pretrain"
    first = stage_runs.pretrain_run(base, settings, out)
    # saved, with its training record, before anything evaluates it; the steps are dropped
    record = artifact.training_record(out)
    assert record["fingerprint"] == first.fingerprint and record["result"]["steps"] == 2
    work = checkpoint_dir(out)
    assert artifact.finished(work / stage_runs.FINISHED) is not None
    assert not list(work.glob("step-*"))
    weights = load_file(out / artifact.WEIGHTS_FILE)

    shutil.rmtree(out)  # as `dvc repro` clears a stage's outputs before rerunning it
    capsys.readouterr()
    again = stage_runs.pretrain_run(base, settings, out)
    assert "training skipped" in capsys.readouterr().out
    assert again.result == first.result and again.fingerprint == first.fingerprint
    assert all(torch.equal(weights[k], v) for k, v in load_file(out / artifact.WEIGHTS_FILE).items())
    assert all(torch.equal(weights[n], p.detach()) for n, p in again.model.named_parameters()
               if n in weights)

    other = stage_runs.pretrain_run(base, settings.model_copy(update={"lr": 5e-3}), out)
    assert "training skipped" not in capsys.readouterr().out
    assert other.fingerprint != first.fingerprint
    assert artifact.training_record(out)["fingerprint"] == other.fingerprint


def test_a_measurement_that_fails_mid_run_loses_no_step(records_file, tmp_path):
    """Fine-tuning measured along the run: the measurement after the first stretch raises.
    The stretch's checkpoint stays, and the rerun resumes from it."""
    file, folder = records_file
    base = config.validate_section("base", BASE)
    stage_runs.pretrain_run(base, settings_of("pretrain", file, folder, batch_size=4,
                                              checkpoint_every=0, n_records=8), tmp_path / "pretrain")
    settings = settings_of("finetune", file, folder, batch_size=4, checkpoint_every=0, n_records=16)

    def failing(model, tokenizer):
        raise RuntimeError("evaluation failed")

    out = tmp_path / "finetune"
    with pytest.raises(RuntimeError, match="evaluation failed"):
        stage_runs.finetune_run(base, settings, tmp_path / "pretrain", out, every=2, probe=failing)
    assert [p.name for p in checkpoint_dir(out).glob("step-*")] == ["step-000002"]
    run = stage_runs.finetune_run(base, settings, tmp_path / "pretrain", out, every=2,
                                  probe=lambda model, tokenizer: {"measured": 1.0})
    assert run.result.resumed_from == 2 and run.result.steps == 4
    assert [row["step"] for row in run.curve] == [2, 4]


def test_a_micro_batch_that_does_not_divide_the_global_batch_names_the_parameters(records_file):
    file, folder = records_file
    settings = params("finetune", file, folder, batch_size=10, gradient_accumulation_steps=4)
    with pytest.raises(BatchSizeError) as err:
        stage_runs.train_config(settings, seed=0)  # before any model is loaded
    message = str(err.value)
    for part in ("finetune.batch_size 10", "finetune.gradient_accumulation_steps",
                 "set finetune.batch_size to 8 or 12", "one of [1, 2, 5, 10]"):
        assert part in message, message


def test_records_are_tokenised_once_and_read_back_from_the_cache(records_file, tmp_path, monkeypatch):
    file, folder = records_file
    features = FeatureSet.load(folder)
    _, tokenizer = tiny_mmllm()
    settings = settings_of("pretrain", file, folder)
    cache = tmp_path / "work"

    def examples(**changes):
        return stage_runs.examples_of("pretrain", "train", tokenizer, features, None, 0,
                                      N_IMAGE_TOKENS, settings.model_copy(update=changes), cache=cache)

    cached = examples()
    assert isinstance(cached, TokenisedExamples) and len(cached) == 16
    eager = stage_runs.examples_of("pretrain", "train", tokenizer, features, None, 0, N_IMAGE_TOKENS,
                                   settings)
    assert [cached[i] for i in range(16)] == [eager[i] for i in range(16)]
    assert summarise(cached, features.patches) == summarise(eager, features.patches)
    assert pickle.loads(pickle.dumps(cached))[3] == cached[3]  # DataLoader workers reopen it

    def no_tokenising(*args, **kwargs):
        raise AssertionError("tokenised again")

    with monkeypatch.context() as patch:
        patch.setattr(data, "_example", no_tokenising)
        assert examples()[5] == cached[5]  # a second read (another process, a resume) tokenises nothing
    first = {p.name for p in (cache / stage_runs.TOKENS).iterdir()}
    shorter = examples(max_length=64)
    assert {p.name for p in (cache / stage_runs.TOKENS).iterdir()} != first  # a new key, the old one gone
    assert max(shorter.lengths()) <= 64 < max(cached.lengths())
    assert len({p.name for p in (cache / stage_runs.TOKENS).iterdir()}) == 1
    prompted = examples(system_prompt="Be brief.")
    assert prompted[0] != cached[0]


def test_cached_examples_train_like_tokenised_ones_with_workers(records_file, tmp_path):
    file, folder = records_file
    features = FeatureSet.load(folder)
    weights = []
    for cache, workers in ((None, 0), (tmp_path / "work", 2)):
        torch.manual_seed(0)
        model, tokenizer = artifact.build_mmllm("tiny-random-llama", "tiny-random-cnn",
                                                features.patches.shape[1])
        artifact.set_trainable(model, "connector")
        examples = stage_runs.examples_of("pretrain", "train", tokenizer, features, None, 0,
                                          model.n_image_tokens, settings_of("pretrain", file, folder),
                                          cache=cache)
        train(model, examples, features.patches, tokenizer.pad_token_id,
              TrainConfig(batch_size=4, lr=1e-2, checkpoint_every=0, num_workers=workers))
        weights.append({n: p.detach().clone() for n, p in model.connector.named_parameters()})
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_a_finished_model_that_started_from_other_weights_is_not_taken(records_file, tmp_path, capsys):
    """The training's name covers what it starts from: fine-tuning another pre-trained
    connector, with the same settings and data, trains again."""
    file, folder = records_file
    base = config.validate_section("base", BASE)
    for name, lr in (("a", 1e-3), ("b", 5e-3)):
        stage_runs.pretrain_run(base, settings_of("pretrain", file, folder, batch_size=4, lr=lr,
                                                  checkpoint_every=0, n_records=8), tmp_path / name)
    settings = settings_of("finetune", file, folder, batch_size=4, checkpoint_every=0, n_records=4)
    first = stage_runs.finetune_run(base, settings, tmp_path / "a", tmp_path / "finetune")
    capsys.readouterr()
    other = stage_runs.finetune_run(base, settings, tmp_path / "b", tmp_path / "finetune")
    assert "training skipped" not in capsys.readouterr().out
    assert other.fingerprint != first.fingerprint
    again = stage_runs.finetune_run(base, settings, tmp_path / "b", tmp_path / "finetune")
    assert "training skipped" in capsys.readouterr().out and again.result == other.result
