"""Model selection: held-out data set aside first, seeded stratified folds, refit on all of
train, and the same choice for the same seed."""
from collections import Counter

import numpy as np
import pytest
import torch

from tests.projector_helpers import latent_world
from tinyemo.feature_store import FeatureSet
from tinyemo.projector import selection, study
from tinyemo.projector.hyperparameters import Candidate, Recipe
from tinyemo.taxonomy import EKMAN6

GOOD = Candidate(recipe=Recipe(loss="infonce", epochs=20, batch_size=16, max_lr=3.0e-3, pct_start=0.1))
STUCK = Candidate(recipe=Recipe(epochs=1, max_lr=1.0e-7))  # barely moves from its random start


def as_features(features, labels, prefix="img"):
    return FeatureSet([f"{prefix}{i}" for i in range(len(labels))], features,
                      [EKMAN6[k] for k in labels.tolist()], EKMAN6)


@pytest.fixture(scope="module")
def world():
    features, labels, anchors = latent_world(n_per_class=25, noise=0.3)
    return as_features(features, labels), anchors


def test_a_test_split_is_carved_seeded_and_stratified_when_absent(world):
    train, _ = world
    val = as_features(*latent_world(n_per_class=5, seed=3)[:2], prefix="val")
    development = selection.held_out_split({"train": train, "val": val}, 0.2, seed=0)
    test = development.held_out["test"]
    assert list(development.held_out) == ["test", "val"] and development.held_out["val"] is not val
    assert development.held_out["val"].ids == val.ids
    assert Counter(test.labels) == {label: 5 for label in EKMAN6}  # 20 % of 25 per class
    assert set(test.ids).isdisjoint(development.train.ids)
    assert sorted(test.ids + development.train.ids) == sorted(train.ids)
    again = selection.held_out_split({"train": train}, 0.2, seed=0)
    assert again.held_out["test"].ids == test.ids
    assert selection.held_out_split({"train": train}, 0.2, seed=1).held_out["test"].ids != test.ids
    assert "carved from train" in development.test_source


def test_a_datasets_own_test_split_is_used_and_train_kept_whole(world):
    train, _ = world
    test = as_features(*latent_world(n_per_class=5, seed=4)[:2], prefix="test")
    development = selection.held_out_split({"train": train, "test": test}, 0.2, seed=0)
    assert development.train.ids == train.ids and development.held_out["test"].ids == test.ids
    leaky = train.subset(range(3))
    with pytest.raises(ValueError, match="both train and test"):
        selection.held_out_split({"train": train, "test": leaky}, 0.2, seed=0)


def test_folds_are_seeded_stratified_and_cover_train_once_per_repeat(world):
    train, _ = world
    rows = selection.fold_rows(train.labels, folds=5, repeats=2, seed=0)
    assert len(rows) == 10
    for fit, scored in rows:
        assert set(fit).isdisjoint(scored)
        assert Counter(train.labels[i] for i in scored) == {label: 5 for label in EKMAN6}
    for repeat in (rows[:5], rows[5:]):
        assert sorted(np.concatenate([scored for _, scored in repeat]).tolist()) == list(range(len(train)))
    same = selection.fold_rows(train.labels, folds=5, repeats=2, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(rows, same))
    other = selection.fold_rows(train.labels, folds=5, repeats=2, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(rows, other))


def run_selection(world, n_jobs=1):
    train, anchors = world
    development = selection.held_out_split({"train": train}, 0.2, seed=0)
    candidates = {"stuck": STUCK, "good": GOOD}
    chosen = selection.select(development.train, candidates, {"stuck": anchors, "good": anchors}, [0, 1],
                              folds=3, repeats=2, seed=0, lr_folds=2, n_jobs=n_jobs)
    return development, chosen


def test_selection_sees_only_train_and_picks_the_candidate_that_learns(world):
    development, chosen = run_selection(world)
    test_ids = set(development.held_out["test"].ids)
    scored = [set(ids) for ids in chosen.fold_ids]
    assert len(scored) == 6 and all(ids <= set(development.train.ids) for ids in scored)
    assert all(ids.isdisjoint(test_ids) for ids in scored)
    assert chosen.selected == "good"
    summary = chosen.summary()
    assert summary["scores"]["good"]["top1"]["mean"] > summary["scores"]["stuck"]["top1"]["mean"] + 0.3
    assert summary["scores"]["stuck"]["vs_paper_points"]["mean"] == 0.0  # the first candidate is the reference
    assert set(summary["scores"]) == {"stuck", "good", "logistic_regression", "nearest_centroid"}
    assert len(chosen.single_seed) == len(chosen.ensemble) == 6
    assert summary["ship_ensemble"] == (np.mean(chosen.ensemble) > np.mean(chosen.single_seed))


def test_same_seed_same_choice_and_numbers_whatever_the_number_of_processes(world):
    _, first = run_selection(world)
    _, second = run_selection(world, n_jobs=2)
    assert first.summary() == second.summary()
    assert first.fold_ids == second.fold_ids


def test_mean_and_standard_error():
    assert selection.mean_se([0.5, 0.7, 0.6]) == pytest.approx({"mean": 0.6, "se": 0.1 / np.sqrt(3), "n": 3})


def test_refit_trains_on_every_training_row(world, monkeypatch):
    train, anchors = world
    development = selection.held_out_split({"train": train}, 0.2, seed=0)
    seen = []
    original = study.train_projector

    def recording(pooled, labels, *args, **kwargs):
        seen.append((pooled.clone(), labels.clone()))
        return original(pooled, labels, *args, **kwargs)

    monkeypatch.setattr(study, "train_projector", recording)
    run = selection.refit(development, "good", GOOD, anchors, seeds=[0, 1])
    assert len(seen) == 2
    for pooled, labels in seen:
        assert torch.equal(pooled, development.train.pooled) and torch.equal(labels, development.train.label_ids())
    assert set(run.evaluations) == {"test"} and len(run.evaluations["test"]) == 2


def test_the_probe_is_searched_once_for_selection_and_the_held_out_comparison(world, monkeypatch):
    from tinyemo.projector import logistic

    searched = []
    original = logistic.search

    def counting(pooled, labels, **kwargs):
        searched.append(len(labels))
        return original(pooled, labels, **kwargs)

    monkeypatch.setattr(logistic, "search", counting)
    monkeypatch.setattr(logistic, "_SEARCHES", {})
    train, anchors = world
    shipped = selection.select_and_ship({"train": train}, {"good": GOOD}, {"good": anchors}, anchors, [0],
                                        folds=2, repeats=1, seed=0, lr_folds=2)
    development = shipped.development
    assert searched == [len(development.train)]  # selection's search, reused by the baselines
    assert shipped.baselines["logistic_regression"]["C"] == shipped.selection.lr_c
