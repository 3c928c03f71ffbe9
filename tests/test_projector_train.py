"""Training: the paper recipe learns, is deterministic under a seed, records its history."""
import pytest
import torch

from tests.projector_helpers import latent_world
from tinyemo.projector.evaluate import top1
from tinyemo.projector.train import PAPER_RECIPE, Recipe, train_projector

FEATURES, LABELS, ANCHORS = latent_world()
VAL = latent_world(n_per_class=20, seed=0)[:2]


def test_paper_recipe_defaults():
    assert (PAPER_RECIPE.loss, PAPER_RECIPE.epochs, PAPER_RECIPE.batch_size) == ("cosine", 5, 32)
    assert (PAPER_RECIPE.max_lr, PAPER_RECIPE.pct_start, PAPER_RECIPE.dropout) == (5.0e-4, 0.005, 0.2)


@pytest.mark.parametrize("loss", ["cosine", "ntxent", "infonce"])
def test_every_loss_learns_a_separable_world(loss):
    recipe = Recipe(loss=loss, epochs=8, max_lr=3.0e-3, pct_start=0.1)
    result = train_projector(FEATURES, LABELS, ANCHORS, recipe, val=VAL)
    assert top1(result.model, *VAL, ANCHORS.anchors) > 0.8  # chance: 1/6
    assert [row["epoch"] for row in result.history] == list(range(1, 9))
    assert all({"train_loss", "val_top1"} <= set(row) for row in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.seconds > 0


def test_same_seed_same_model_other_seed_other_model():
    recipe = Recipe(epochs=2, synonym_p=0.0, seed=3)
    a = train_projector(FEATURES, LABELS, ANCHORS, recipe).model.state_dict()
    b = train_projector(FEATURES, LABELS, ANCHORS, recipe).model.state_dict()
    c = train_projector(FEATURES, LABELS, ANCHORS, recipe.but(seed=4)).model.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(a["mlp.0.weight"], c["mlp.0.weight"])


def test_weight_averaging_and_options_train():
    recipe = Recipe(loss="infonce", epochs=6, ema_decay=0.9, label_smoothing=0.1, width=24, depth=3,
                    normalize_input=True, max_lr=3.0e-3, pct_start=0.1)
    result = train_projector(FEATURES, LABELS, ANCHORS, recipe, val=VAL)
    assert not result.model.training
    assert result.model.width == 24 and result.model.depth == 3
    assert result.history[-1]["val_top1"] > 0.5


def test_recipe_validation_and_bad_input():
    with pytest.raises(ValueError):
        Recipe(loss="triplet")
    with pytest.raises(ValueError):
        Recipe(epochs=0)
    with pytest.raises(ValueError, match="labels"):
        train_projector(FEATURES, LABELS[:5], ANCHORS)
