"""Joint training across taxonomies and zero-shot evaluation, on features with a known truth."""
import pytest
import torch
from torch.nn import functional as F

from tinyemo.feature_store import FeatureSet
from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.joint import (
    JointTrainingError, concatenate, evaluate_on, leaked_columns, train_joint, validation_scores,
    zero_shot,
)
from tinyemo.projector.train import Recipe

UNIVERSE = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "awe")
EKMANISH = ("anger", "fear", "joy")  # one taxonomy
MIKELSISH = ("anger", "awe", "sadness")  # another; "anger" is in both
UNSEEN = ("disgust", "surprise")  # labels no training dataset has
RECIPE = Recipe(epochs=10, max_lr=3.0e-3, pct_start=0.1)  # the paper's cosine loss, longer


class World:
    """Each label has a latent point; anchors and image features are two linear images of it."""

    def __init__(self, seed=1, latent_dim=3, feature_dim=32, anchor_dim=16, noise=0.15):
        g = torch.Generator().manual_seed(seed)
        self.z = torch.randn(len(UNIVERSE), latent_dim, generator=g)
        self.anchors = AnchorSet(UNIVERSE, F.normalize(self.z @ torch.randn(latent_dim, anchor_dim, generator=g), dim=1))
        self.to_features = torch.randn(latent_dim, feature_dim, generator=g)
        self.noise, self.g = noise, g
        cosines = self.anchors.anchors @ self.anchors.anchors.T - 2 * torch.eye(len(UNIVERSE))
        assert cosines.max() < 0.9, "every pair of anchors must be distinguishable"

    def features(self, name, label_names, n_per_class=50):
        labels = [label for label in label_names for _ in range(n_per_class)]
        z = self.z[[UNIVERSE.index(label) for label in labels]]
        pooled = z @ self.to_features + self.noise * torch.randn(len(labels), self.to_features.shape[1], generator=self.g)
        return FeatureSet([f"{name}/{i}" for i in range(len(labels))], pooled, labels, label_names)


def random_anchors(seed, dim=16):
    g = torch.Generator().manual_seed(seed)
    return AnchorSet(UNIVERSE, F.normalize(torch.randn(len(UNIVERSE), dim, generator=g), dim=1))


def test_union_label_space_shares_the_common_word():
    world = World()
    joint = concatenate({"a": world.features("a", EKMANISH, 4), "b": world.features("b", MIKELSISH, 4)})
    assert joint.label_names == ("anger", "fear", "joy", "awe", "sadness")
    assert joint.pooled.shape == (24, 32)
    # "anger" rows of both datasets carry the same id, so they pull towards one anchor
    assert joint.label_ids[:4].tolist() == [0] * 4 and joint.label_ids[12:16].tolist() == [0] * 4


def test_joint_training_learns_both_taxonomies():
    world = World()
    train = {"a": world.features("a", EKMANISH), "b": world.features("b", MIKELSISH)}
    val = {"a": world.features("a", EKMANISH, 20), "b": world.features("b", MIKELSISH, 20)}
    result = train_joint(train, world.anchors, RECIPE, val=val)
    assert result.history[-1]["val_top1"] > 0.85  # among all five training anchors
    tests = {"a": world.features("a", EKMANISH, 30), "b": world.features("b", MIKELSISH, 30)}
    scores = zero_shot(result.model, world.anchors, tests, train_datasets=["a", "b"])
    assert scores["a"]["top1"] > 0.95 and scores["b"]["top1"] > 0.95
    assert scores["a"]["in_domain"] and scores["a"]["n_classes"] == 3 and scores["a"]["n"] == 90
    by_dataset = validation_scores(result.model, world.anchors, val)
    assert set(by_dataset) == {"a", "b"} and min(by_dataset.values()) > 0.95


def test_zero_shot_scores_among_the_target_label_set_and_random_anchors_sit_at_chance():
    world = World()
    train = {"a": world.features("a", EKMANISH), "b": world.features("b", MIKELSISH)}
    target = world.features("c", UNSEEN, 40)
    meaningful = train_joint(train, world.anchors, RECIPE).model
    evaluation = evaluate_on(meaningful, world.anchors, target)
    assert evaluation.label_names == UNSEEN and evaluation.confusion.shape == (2, 2)
    assert evaluation.top1 > 0.8  # chance 1/2: the anchor geometry transfers
    floors = []
    for seed in (1, 2, 3, 4):
        anchors = random_anchors(seed)
        model = train_joint(train, anchors, RECIPE).model
        floors.append(zero_shot(model, anchors, {"c": target}, ["a", "b"])["c"]["top1"])
    floor = sum(floors) / len(floors)
    assert 0.15 < floor < 0.75 and evaluation.top1 - floor > 0.2
    assert not zero_shot(meaningful, world.anchors, {"c": target}, ["a", "b"])["c"]["in_domain"]


def test_bad_inputs_get_clear_errors():
    world = World()
    small = world.features("a", EKMANISH, 4)
    wide = FeatureSet(["w0", "w1"], torch.zeros(2, 64), ["anger", "awe"], MIKELSISH)
    with pytest.raises(JointTrainingError, match=r"different widths \(a 32, b 64\)"):
        train_joint({"a": small, "b": wide}, world.anchors, RECIPE)
    with pytest.raises(JointTrainingError, match="never on a zero-shot benchmark"):
        train_joint({"a": small}, world.anchors, RECIPE, val={"c": world.features("c", UNSEEN, 4)})
    with pytest.raises(JointTrainingError, match=r"no anchor for \['disgust', 'surprise'\]"):
        evaluate_on(train_joint({"a": world.features("a", EKMANISH)}, world.anchors, RECIPE).model,
                    world.anchors.subset(EKMANISH), world.features("c", UNSEEN, 4))
    with pytest.raises(JointTrainingError, match="at least one"):
        train_joint({}, world.anchors, RECIPE)


def test_shared_images_are_flagged():
    assert leaked_columns(["emotionroi", "webemo"], ["emotion6", "emotionroi", "fi"]) == ["emotion6"]
    assert leaked_columns(["emotion6"], ["emotionroi", "emotion6"]) == ["emotionroi"]
    assert leaked_columns(["emoset"], ["emotion6", "fi"]) == []
