import json
import math

import pytest
import torch

from tinyemo import assets
from tinyemo.models.llm import load_llm
from tinyemo.models.vision import load_vision_tower


def test_vision_sanity_of_a_headless_tower_reports_shapes():
    result = assets.vision_sanity(load_vision_tower("tiny-random-cnn"), "chelsea")
    assert result == {"pooled_dim": 32, "patch_tokens": 16, "patch_dim": 16, "finite": True}


def test_unknown_sanity_photo_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown sanity image 'dog'; valid: chelsea, coffee"):
        assets.sanity_photo("dog")


def test_llm_sanity_of_a_random_model_is_near_chance():
    model, tokenizer = load_llm("tiny-random-llama")
    result = assets.llm_sanity(model, tokenizer, "The capital of France is", max_new_tokens=4)
    assert result["uniform_loss"] == pytest.approx(math.log(len(tokenizer)), abs=1e-3)
    assert abs(result["prompt_loss"] - result["uniform_loss"]) < 0.5
    assert result["chat_prompt"].startswith("<|im_start|>user\nThe capital of France is")


def test_plot_without_imagenet_head(tmp_path):
    sanity = {"pooled_dim": 32, "patch_tokens": 16, "patch_dim": 16}
    path = assets.plot_vision_sanity(assets.sanity_photo("coffee"), sanity, "t", tmp_path / "f.png")
    assert path.stat().st_size > 5_000


@pytest.mark.slow
def test_assets_stage_smoke(smoke):
    root = smoke.run_through("assets")
    metrics = smoke.metrics("assets")
    assert metrics["profile"] == "smoke"
    assert metrics["vision"]["name"] == "tiny-random-cnn"
    assert (metrics["vision"]["pooled_dim"], metrics["vision"]["patch_dim"]) == (32, 16)
    assert metrics["vision"]["parameters"] < 10_000
    assert metrics["llm"]["embed_dim"] == 64
    assert abs(metrics["llm"]["prompt_loss"] - metrics["llm"]["uniform_loss"]) < 0.5
    assert 0 < metrics["prepare_seconds"] < 60
    manifest = json.loads((root / "models/base/tiny-random-llama/manifest.json").read_text())
    assert manifest["config"]["num_hidden_layers"] == 2
    assert (root / "models/base/tiny-random-cnn/manifest.json").exists()
    assert (root / "results/assets/figures/vision_sanity.png").stat().st_size > 5_000
