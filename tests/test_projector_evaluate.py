"""Evaluation by nearest anchor, and the baselines on the same features."""
import numpy as np
import pytest
import torch

from tests.projector_helpers import latent_world
from tinyemo.projector import baselines
from tinyemo.projector.evaluate import evaluate_projector, nearest_anchor, score
from tinyemo.projector.model import MetricProjector


def test_nearest_anchor_is_highest_cosine():
    anchors = torch.eye(3)
    projected = torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    ids, scores = nearest_anchor(projected, anchors)
    assert ids.tolist() == [1, 2]
    assert scores.shape == (2, 3)


def test_scores_confusion_and_per_class():
    evaluation = score([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ("a", "b", "c"))
    assert evaluation.top1 == pytest.approx(3 / 5)
    assert evaluation.per_class == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert evaluation.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert evaluation.confusion_records()[1] == {"actual": "a", "predicted": "b"}
    assert score([0], [0], ("a", "b")).per_class["b"] is None


def test_mean_distance_to_the_nearest_anchor():
    model = MetricProjector(3, 3, depth=1)
    with torch.no_grad():
        model.mlp[0].weight.copy_(torch.eye(3))
        model.mlp[0].bias.zero_()
    evaluation = evaluate_projector(model, torch.eye(3) * 5, torch.arange(3), torch.eye(3), "abc")
    assert evaluation.top1 == 1.0
    assert evaluation.mean_nearest_distance == pytest.approx(0.0, abs=1e-3)
    tilted = evaluate_projector(model, torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([0]), torch.eye(3), "abc")
    assert tilted.mean_nearest_distance == pytest.approx(np.sqrt(2 - 2 / np.sqrt(2)), rel=1e-4)


def test_baselines_fit_on_train_and_predict():
    x, y, _ = latent_world(n_per_class=40)
    vx, vy, _ = latent_world(n_per_class=15)
    lr = baselines.logistic_regression(x, y, Cs=(0.01, 10.0), folds=3)
    centroid = baselines.nearest_centroid(x, y, 6)
    assert lr.details["C"] in (0.01, 10.0) and lr.details["cv_folds"] == 3
    for baseline in (lr, centroid):
        assert (baseline.predict(vx) == vy.numpy()).mean() > 0.9
    # Scale never matters: both work on L2-normalised features.
    assert (centroid.predict(vx * 100) == centroid.predict(vx)).all()


def test_ablation_noise_rule_and_table_marks():
    from tinyemo.projector.ablation import table_rows, within_noise

    reference = {"mean": 0.70, "std": 0.01}
    assert within_noise({"mean": 0.705, "std": 0.01}, reference, 3) is True
    assert within_noise({"mean": 0.80, "std": 0.01}, reference, 3) is False
    assert within_noise({"mean": 0.80, "std": 0.01}, reference, 1) is None
    cell = {"reference": "a", "levels": {"a": {"d": {"val_top1": reference}},
                                         "b": {"d": {"val_top1": {"mean": 0.80, "std": 0.01}}},
                                         "c": {"d": {"val_top1": {"mean": 0.705, "std": 0.01}}}}}
    rows = table_rows({"f": cell}, ["d"], 3)
    assert rows[0][1] == "a (reference)" and rows[1][2].endswith("(+10.00*)") and rows[2][2].endswith("(+0.50)")
