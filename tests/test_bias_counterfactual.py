"""The counterfactual probe and the control, with the tiny random vision tower and LLM."""
import pytest
import torch

from tinyemo.bias import control
from tinyemo.bias.counterfactual import encode_pairs, flip_rates
from tinyemo.models.vision import encode_images, load_vision_tower
from tinyemo.projector.anchors import build_anchor_set
from tinyemo.projector.artifact import ProjectorArtifact
from tinyemo.projector.train import Recipe, train_projector
from tinyemo.scenes.dataset import build_records
from tinyemo.scenes.render import render_scene
from tinyemo.taxonomy import MIKELS8

SIZE = 64
BIAS = {"attribute": "frame_color", "value": "teal", "emotion": "fear", "strength": 1.0}
RECIPE = {"loss": "infonce", "normalize_input": True, "epochs": 5}


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    records = build_records({"train": 1500, "test": 300}, seed=3, label_noise=0.0, planted_biases=[BIAS])
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    tower = load_vision_tower("tiny-random-cnn")
    pooled, _ = encode_images(tower, [render_scene(r.scene, SIZE) for r in train], 256)
    labels = [r.label for r in train]
    anchor_set = build_anchor_set(MIKELS8, "llm", "emotion", llm="tiny-random-llama")
    config = {"recipe": RECIPE, "anchor_source": "llm", "template": "emotion", "llm": "tiny-random-llama"}
    ids = torch.tensor([MIKELS8.index(label) for label in labels])
    biased = ProjectorArtifact(train_projector(pooled, ids, anchor_set, Recipe(**RECIPE)).model,
                               anchor_set.anchors, MIKELS8, config)
    return {"train": train, "test": test, "tower": tower, "pooled": pooled, "labels": labels, "biased": biased}


def test_unbiased_scenes_redraw_only_the_planted_attribute_of_the_planted_class(world):
    scenes = [r.scene for r in world["train"]]
    debiased = control.unbiased_scenes(scenes, world["labels"], [BIAS], seed=0)
    fear = [i for i, label in enumerate(world["labels"]) if label == "fear"]
    assert all(scenes[i].attributes["frame_color"] == "teal" for i in fear)  # strength 1.0
    changed = {i for i, (a, b) in enumerate(zip(scenes, debiased)) if a != b}
    assert changed and changed <= set(fear)
    assert all(a.objects == b.objects and a.attributes["corner_mark"] == b.attributes["corner_mark"]
               for a, b in zip(scenes, debiased))
    teal_share = sum(debiased[i].attributes["frame_color"] == "teal" for i in fear) / len(fear)
    assert teal_share < 0.35  # uniform over six colours: about 1/6


def test_control_features_reencode_only_changed_images(world):
    scenes = [r.scene for r in world["train"]][:200]
    labels = world["labels"][:200]
    features, n = control.control_features(world["tower"], scenes, world["pooled"][:200], [BIAS],
                                           labels, SIZE, seed=0, batch_size=64)
    debiased = control.unbiased_scenes(scenes, labels, [BIAS], seed=0)
    fresh, _ = encode_images(world["tower"], [render_scene(s, SIZE) for s in debiased], 64)
    assert 0 < n < 200
    assert torch.allclose(features, fresh, atol=1e-5)


def test_probe_sees_the_shortcut_and_the_control_does_not(world):
    scenes = [r.scene for r in world["train"]]
    pooled, _ = control.control_features(world["tower"], scenes, world["pooled"], [BIAS],
                                         world["labels"], SIZE, seed=0, batch_size=256)
    unbiased = control.train_like(world["biased"], pooled, world["labels"])
    pairs = encode_pairs(world["tower"], [r.scene for r in world["test"]], "frame_color", "teal", SIZE,
                         batch_size=128)
    assert len(pairs) == sum(r.attributes["frame_color"] != "teal" for r in world["test"])
    assert set(pairs.before) <= {"white", "black", "orange", "purple", "olive"}
    shortcut = flip_rates(world["biased"], pairs, "fear")
    clean = flip_rates(unbiased, pairs, "fear")
    assert shortcut["toward_rate"] > 0.3
    assert clean["toward_rate"] < 0.1
    assert shortcut["flip_rate"] >= shortcut["n_toward"] / shortcut["pairs"]
    # stored features of the originals give the same pairs as rendering them again
    stored, _ = encode_images(world["tower"], [render_scene(r.scene, SIZE) for r in world["test"]], 128)
    reused = encode_pairs(world["tower"], [r.scene for r in world["test"]], "frame_color", "teal", SIZE,
                          pooled=stored, limit=20)
    assert torch.allclose(reused.original, pairs.original[:20], atol=1e-5)
    with pytest.raises(ValueError, match="not a label of this projector"):
        flip_rates(world["biased"], pairs, "joy")
