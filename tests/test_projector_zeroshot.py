"""Held-out-label zero-shot tells meaningful anchors from random ones."""
import pytest

from tests.projector_helpers import latent_world, random_anchor_set
from tinyemo.projector.train import Recipe
from tinyemo.projector.zeroshot import held_out_folds, held_out_zeroshot
from tinyemo.taxonomy import EKMAN6

RECIPE = Recipe(loss="infonce", epochs=10, max_lr=3.0e-3, pct_start=0.1)


def test_folds_partition_the_labels():
    folds = held_out_folds(EKMAN6, 2, seed=0)
    assert len(folds) == 3 and sorted(sum(map(list, folds), [])) == sorted(EKMAN6)
    assert held_out_folds(EKMAN6, 2, seed=0) == folds
    assert [len(f) for f in held_out_folds(EKMAN6, 4)] == [6]  # one group takes the rest
    with pytest.raises(ValueError, match="group_size"):
        held_out_folds(EKMAN6, 6)


def test_meaningful_anchors_transfer_and_random_ones_do_not():
    features, labels, anchors = latent_world(n_per_class=60)
    meaningful = held_out_zeroshot(features, labels, anchors, RECIPE, group_size=2)
    controls = [held_out_zeroshot(features, labels, random_anchor_set(seed=s), RECIPE, group_size=2)
                for s in (1, 2, 3, 4)]
    assert meaningful["chance_held_out"] == 0.5
    assert meaningful["held_out_top1"] > 0.85
    control = sum(c["held_out_top1"] for c in controls) / len(controls)
    assert 0.15 < control < 0.75  # chance 0.5; a few random geometries scatter around it
    assert meaningful["held_out_top1"] - control > 0.2
    assert len(meaningful["folds"]) == 3
