"""Training: the paper recipe learns, is deterministic under a seed (on the profile's threads),
records its history, and sends its batches to the model's device."""
import pytest
import torch

from tests.projector_helpers import latent_world, random_anchor_set
from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.evaluate import project, top1
from tinyemo.projector.model import MetricProjector
from tinyemo.projector.train import (
    PAPER_RECIPE, Recipe, steps_per_epoch, steps_per_second, threads_per_worker, torch_threads, train_projector,
)

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


def test_same_params_same_machine_same_numbers_on_two_threads():
    """The default profile's determinism: 2 threads (base.threads), the same seed, twice, bit for bit,
    at the widths where the kernels split their work (768-d CLIP features into 576-d anchors)."""
    features, labels, _ = latent_world(n_per_class=60, feature_dim=768, anchor_dim=576, seed=2)
    anchors = random_anchor_set(dim=576)
    recipe = Recipe(loss="ntxent", epochs=2, synonym_p=0.0, normalize_input=True)
    with torch_threads(2):
        assert torch.get_num_threads() == 2
        runs = [train_projector(features, labels, anchors, recipe, val=(features[:90], labels[:90]), device="cpu")
                for _ in range(2)]
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert runs[0].history == runs[1].history  # the metrics, exactly


def test_threads_are_restored_and_split_between_workers():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert threads_per_worker(8, 2) == 4 and threads_per_worker(2, 2) == 1 and threads_per_worker(1, 4) == 1


class DevicesSeen:
    """Records the device of every tensor that reaches any module's forward."""

    def __init__(self):
        self.devices, self.projector_calls = set(), 0

    def __call__(self, module, args):
        self.devices |= {a.device.type for a in args if torch.is_tensor(a)}
        self.projector_calls += isinstance(module, MetricProjector)

    def __enter__(self):
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(self)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("loss", ["cosine", "infonce"])
def test_training_batches_follow_the_device(loss):
    """On the meta device (shapes, no data), every batch, target and anchor must be there: a batch
    left on the CPU would fail at the first step. The run stops at the first value read back."""
    recipe = Recipe(loss=loss, epochs=1, synonym_p=0.5)
    anchors = AnchorSet(ANCHORS.label_names, ANCHORS.anchors, torch.stack([ANCHORS.anchors] * 3, dim=1))
    with DevicesSeen() as seen, pytest.raises(RuntimeError, match="cannot be called on meta tensors"):
        train_projector(FEATURES, LABELS, anchors, recipe, device="meta")
    assert seen.devices == {"meta"}
    assert seen.projector_calls == steps_per_epoch(len(FEATURES), recipe.batch_size)  # every step's batch


def test_scoring_batches_follow_the_model():
    model = MetricProjector(FEATURES.shape[1], ANCHORS.dim).to("meta")
    with DevicesSeen() as seen, pytest.raises(NotImplementedError, match="meta tensor"):
        project(model, FEATURES, batch_size=100)  # the projections come back to the CPU: no data on meta
    assert seen.devices == {"meta"} and seen.projector_calls == 1
    cpu = train_projector(FEATURES, LABELS, ANCHORS, Recipe(epochs=1), device="cpu").model
    assert project(cpu, FEATURES, batch_size=100).device.type == "cpu"
    assert project(cpu, FEATURES, batch_size=100).shape == (len(FEATURES), ANCHORS.dim)


def test_steps_per_second_is_measured_on_the_shapes_given():
    speed = steps_per_second(32, ANCHORS, Recipe(), steps=5, device="cpu")
    assert 0 < speed < float("inf")
