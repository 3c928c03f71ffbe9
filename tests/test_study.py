"""`study.run_recipe` and `study.run_baselines` on cases whose answer is known."""
import pytest
import torch

from tests.projector_helpers import random_anchor_set
from tinyemo.feature_store import FeatureSet
from tinyemo.projector import study
from tinyemo.projector.ensemble import SeedEnsemble, ensemble_projection
from tinyemo.projector.evaluate import project
from tinyemo.projector.model import MetricProjector
from tinyemo.projector.train import Recipe
from tinyemo.taxonomy import EKMAN6

RECIPE = Recipe(loss="infonce", normalize_input=True, epochs=15, max_lr=3.0e-3, pct_start=0.1)


def feature_set(features, labels, prefix):
    return FeatureSet([f"{prefix}{i}" for i in range(len(labels))], features,
                      [EKMAN6[k] for k in labels.tolist()], EKMAN6)


def clusters(n_per_class, seed, *, shuffled=False, noise=0.05):
    """Six tight clusters around orthogonal centres (one per class) in 24-d; with `shuffled`,
    the labels are a random permutation, so the features say nothing about them."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(EKMAN6)).repeat_interleave(n_per_class)
    centres = 3.0 * torch.eye(24)[: len(EKMAN6)]
    features = centres[labels] + noise * torch.randn(len(labels), 24, generator=g)
    if shuffled:
        labels = labels[torch.randperm(len(labels), generator=g)]
    return features, labels


def splits_of(shuffled):
    train = feature_set(*clusters(30, 0, shuffled=shuffled), "train-")
    test = feature_set(*clusters(150, 1, shuffled=shuffled), "test-")
    return {"train": train, "test": test}


def test_separable_clusters_are_classified_perfectly_by_every_model():
    splits = splits_of(shuffled=False)
    run = study.run_recipe("clusters", splits, random_anchor_set(), RECIPE, seeds=[0, 1])
    assert [e.top1 for e in run.evaluations["test"]] == [1.0, 1.0]
    assert run.ensemble_evaluations["test"].top1 == 1.0
    assert len(run.runs) == 2 and "val" not in run.evaluations  # no val split: no curve, no score
    records = study.run_baselines(splits, folds=3, seed=0)
    assert records["logistic_regression"]["test"]["top1"] == 1.0
    assert records["nearest_centroid"]["test"]["top1"] == 1.0


def test_shuffled_labels_leave_every_model_at_chance():
    splits = splits_of(shuffled=True)
    chance = 1 / len(EKMAN6)  # 900 test images: one standard error is 1.2 points
    run = study.run_recipe("shuffled", splits, random_anchor_set(), RECIPE, seeds=[0])
    assert run.evaluations["test"][0].top1 == pytest.approx(chance, abs=0.05)
    for record in study.run_baselines(splits, folds=3, seed=0).values():
        assert record["test"]["top1"] == pytest.approx(chance, abs=0.05)


def test_the_ensemble_is_the_normalised_mean_of_its_members():
    # Two linear members on 2-d inputs: one keeps x, the other swaps its coordinates.
    members = [MetricProjector(2, 2, depth=1), MetricProjector(2, 2, depth=1)]
    with torch.no_grad():
        for member, weight in zip(members, (torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))):
            member.mlp[0].weight.copy_(weight)
            member.mlp[0].bias.zero_()
    ensemble = SeedEnsemble(members).eval()
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    # [1, 0] -> members give [1, 0] and [0, 1] -> their mean direction is [1, 1] / sqrt(2).
    # [3, 4] -> [0.6, 0.8] and [0.8, 0.6] -> the mean direction is again [1, 1] / sqrt(2).
    expected = torch.full((2, 2), 2 ** -0.5)
    assert torch.allclose(project(ensemble, x), expected, atol=1e-6)
    assert torch.allclose(ensemble_projection([m(x) for m in members]), expected, atol=1e-6)
    assert ensemble.config() == {**members[0].config(), "members": 2}


def test_an_ensemble_refuses_members_of_different_widths():
    with pytest.raises(ValueError, match="disagree"):
        SeedEnsemble([MetricProjector(2, 2, depth=1), MetricProjector(3, 2, depth=1)])
    with pytest.raises(ValueError, match="at least one"):
        ensemble_projection([])
