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


def result(*runs):
    """A mean ± std result as study.mean_std writes it (its std is ddof 0)."""
    return {"mean": float(np.mean(runs)), "std": float(np.std(runs)), "runs": list(runs)}


def test_ablation_noise_rule_and_table_marks():
    from tinyemo.projector.ablation import table_rows, within_noise

    reference = result(0.69, 0.70, 0.71)
    assert within_noise(result(0.695, 0.705, 0.715), reference, 3) is True
    assert within_noise(result(0.79, 0.80, 0.81), reference, 3) is False
    assert within_noise(result(0.80), result(0.70), 1) is None
    cell = {"reference": "a", "levels": {"a": {"d": {"val_top1": reference}},
                                         "b": {"d": {"val_top1": result(0.79, 0.80, 0.81)}},
                                         "c": {"d": {"val_top1": result(0.695, 0.705, 0.715)}}}}
    rows = table_rows({"f": cell}, ["d"], 3)
    assert rows[0][1] == "a (reference)" and rows[1][2] == "80.00 ± 1.00 (+10.00*)"
    assert rows[2][2] == "70.50 ± 1.00 (+0.50)"  # sample std of 0.69, 0.70, 0.71 is 0.01


def test_the_noise_rule_uses_the_sample_standard_deviation_of_the_seeds():
    from tinyemo.projector.ablation import sample_std, within_noise

    a, b = result(0.68, 0.70, 0.72), result(0.71, 0.73, 0.75)
    assert sample_std(a) == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / (3 - 1))
    # 2 standard errors of the difference: 2 sqrt(2 * 0.02^2 / 3) = 0.0327 > the gap 0.03
    # (with ddof 0 it would be 0.0267 < 0.03, and the gap would be called beyond noise)
    assert within_noise(a, b, 3) is True
    assert within_noise(a, result(0.72, 0.74, 0.76), 3) is False  # gap 0.04
