"""The counterfactual probe's decisions, on hand-made tables, pairs and projectors."""
import pandas as pd
import pytest
import torch

from tinyemo.bias import probe
from tinyemo.bias.counterfactual import CounterfactualPairs
from tinyemo.bias.probe import Suspect, mean_flip_rates, probe_suspects, report_flips, suspect_pairs

PLANTED = [{"attribute": "frame_color", "value": "teal", "emotion": "fear", "strength": 0.9}]
LABELS = ("joy", "fear", "anger")


def table(rows):
    return pd.DataFrame(rows, columns=["predictor", "emotion", "flagged"])


def test_suspects_are_the_planted_biases_then_each_tables_top_k_flagged_pairs_once():
    biased = table([("frame_color=teal", "fear", True), ("frame_color=red", "joy", False),
                    ("corner_mark=star", "joy", True), ("frame_color=orange", "anger", True)])
    control = table([("corner_mark=star", "joy", True), ("frame_color=blue", "fear", True),
                     ("corner_mark=moon", "anger", True)])
    suspects = suspect_pairs(PLANTED, [biased, control], top_k=2)
    assert suspects == [Suspect("frame_color", "teal", "fear", True),
                        Suspect("corner_mark", "star", "joy", False),
                        Suspect("frame_color", "blue", "fear", False)]
    assert suspects[1].label == "corner_mark=star -> joy"


def test_a_value_holding_an_equals_sign_is_kept_whole():
    suspects = suspect_pairs([], [table([("caption=a=b", "joy", True)])], top_k=1)
    assert suspects == [Suspect("caption", "a=b", "joy", False)]


def test_a_group_predictor_without_attribute_value_is_refused():
    with pytest.raises(ValueError, match="attribute=value"):
        suspect_pairs([], [table([("teal", "fear", True)])], top_k=3)


class ArgmaxProjector:
    """Predicts the largest of the first three features."""
    label_names = LABELS

    def predict(self, pooled):
        return pooled[:, :3].argmax(dim=1), None


class ConstantProjector:
    label_names = LABELS

    def predict(self, pooled):
        return torch.zeros(len(pooled), dtype=torch.long), None


def one_hot(names):
    return torch.eye(3)[[LABELS.index(n) for n in names]]


# per attribute value: (labels the originals encode, labels the counterfactuals encode)
HAND_MADE = {"teal": (["joy", "joy", "anger", "fear"], ["fear", "joy", "fear", "fear"]),
             "star": (["fear", "anger"], ["joy", "anger"])}


def test_probe_scores_each_suspect_with_every_projector_and_splits_planted_from_others(monkeypatch):
    calls = []

    def fake_encode_pairs(tower, scenes, attribute, value, image_size, batch_size, pooled=None, limit=None,
                          precision="fp32"):
        calls.append((attribute, value, image_size, batch_size, limit))
        original, counterfactual = HAND_MADE[value]
        return CounterfactualPairs(attribute, value, one_hot(original), one_hot(counterfactual),
                                   ("other",) * len(original))

    monkeypatch.setattr(probe, "encode_pairs", fake_encode_pairs)
    suspects = [Suspect("frame_color", "teal", "fear", True), Suspect("corner_mark", "star", "joy", False)]
    planted, others = probe_suspects(suspects, {"biased": ArgmaxProjector(), "control": ConstantProjector()},
                                     tower=None, scenes=[], image_size=64, batch_size=8, limit=5)
    assert calls == [("frame_color", "teal", 64, 8, 5), ("corner_mark", "star", 64, 8, 5)]
    assert list(planted) == ["frame_color=teal -> fear"] and list(others) == ["corner_mark=star -> joy"]
    teal = planted["frame_color=teal -> fear"]
    # argmax: before joy, joy, anger, fear -> after fear, joy, fear, fear: 2 of 4 flip,
    # both toward fear, of the 3 not already predicted fear
    assert teal["biased"]["flip_rate"] == 0.5
    assert teal["biased"]["toward_rate"] == pytest.approx(2 / 3)
    assert (teal["control"]["flip_rate"], teal["control"]["toward_rate"]) == (0.0, 0.0)
    star = others["corner_mark=star -> joy"]
    assert (star["biased"]["flip_rate"], star["biased"]["toward_rate"]) == (0.5, 0.5)
    assert star["control"]["n_eligible"] == 0 and star["control"]["toward_rate"] == 0.0


def test_mean_flip_rates_average_each_rate_per_projector():
    flips = {"a": {"biased": {"toward_rate": 0.5, "flip_rate": 0.25}, "control": {"toward_rate": 0.0, "flip_rate": 0.1}},
             "b": {"biased": {"toward_rate": 1.0, "flip_rate": 0.75}, "control": {"toward_rate": 1 / 3, "flip_rate": 0.2}}}
    means = mean_flip_rates(flips, ["biased", "control"])
    assert means == {"flip_toward_biased": 0.75, "flip_toward_control": 0.1667,
                     "flip_any_biased": 0.5, "flip_any_control": 0.15}
    assert list(means) == ["flip_toward_biased", "flip_toward_control", "flip_any_biased", "flip_any_control"]


def test_mean_flip_rates_are_none_when_nothing_was_probed():
    assert mean_flip_rates({}, ["biased"]) == {"flip_toward_biased": None, "flip_any_biased": None}


def test_report_flips_marks_the_pairs_nobody_planted():
    merged = report_flips({"x=1 -> joy": {"m": 1}}, {"y=2 -> fear": {"m": 2}})
    assert merged == {"x=1 -> joy": {"m": 1}, "y=2 -> fear (not planted)": {"m": 2}}
