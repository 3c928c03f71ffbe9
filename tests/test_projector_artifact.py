"""Saved projectors: safetensors + JSON, same predictions after loading, clear errors."""
import json

import pytest
import torch

from tests.projector_helpers import latent_world
from tinyemo.projector.artifact import (
    FeatureWidthError, ProjectorLoadError, load_projector, save_projector,
)
from tinyemo.projector.evaluate import nearest_anchor, project
from tinyemo.projector.train import Recipe, train_projector


@pytest.fixture(scope="module")
def trained():
    features, labels, anchors = latent_world(n_per_class=20)
    model = train_projector(features, labels, anchors, Recipe(epochs=2)).model
    return features, anchors, model


def test_round_trip_keeps_predictions(tmp_path, trained):
    features, anchors, model = trained
    save_projector(tmp_path, model, anchors.anchors, anchors.label_names,
                   {"vision_tower": "tiny-random-cnn", "llm": "tiny-random-llama"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anchors.safetensors", "config.json",
                                                         "projector.safetensors"]
    artifact = load_projector(tmp_path)
    ids, scores = artifact.predict(features)
    expected_ids, expected_scores = nearest_anchor(project(model, features), anchors.anchors)
    assert torch.equal(ids, expected_ids)
    torch.testing.assert_close(scores, expected_scores)
    top_ids, top_scores = artifact.topk(features[:4], k=3)
    assert top_ids.shape == (4, 3) and torch.equal(top_ids[:, 0], ids[:4])
    assert (top_scores[:, :-1] >= top_scores[:, 1:]).all()
    assert artifact.label_names == anchors.label_names and artifact.vision_tower == "tiny-random-cnn"
    assert artifact.project(features[0]).shape == (1, anchors.dim)  # a single vector is fine
    assert json.loads((tmp_path / "config.json").read_text())["model"]["in_dim"] == features.shape[1]


def test_wrong_width_names_the_vision_tower(tmp_path, trained):
    features, anchors, model = trained
    save_projector(tmp_path, model, anchors.anchors, anchors.label_names, {"vision_tower": "tiny-random-cnn"})
    with pytest.raises(FeatureWidthError, match=r"\[N, 32\] pooled features from tiny-random-cnn"):
        load_projector(tmp_path).predict(torch.randn(2, 768))


def test_missing_or_corrupt_directories(tmp_path, trained):
    with pytest.raises(ProjectorLoadError, match="not a projector directory.*dvc repro projector"):
        load_projector(tmp_path / "nowhere")
    features, anchors, model = trained
    save_projector(tmp_path, model, anchors.anchors, anchors.label_names)
    (tmp_path / "projector.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ProjectorLoadError, match="unreadable"):
        load_projector(tmp_path)
    with pytest.raises(ValueError, match="do not match"):
        save_projector(tmp_path, model, anchors.anchors[:3], anchors.label_names)


def test_a_seed_ensemble_round_trips(tmp_path):
    from tinyemo.projector.ensemble import SeedEnsemble

    features, labels, anchors = latent_world(n_per_class=20)
    members = [train_projector(features, labels, anchors, Recipe(epochs=1, seed=s)).model for s in (0, 1)]
    ensemble = SeedEnsemble(members).eval()
    save_projector(tmp_path, ensemble, anchors.anchors, anchors.label_names)
    artifact = load_projector(tmp_path)
    assert isinstance(artifact.model, SeedEnsemble) and len(artifact.model.members) == 2
    assert json.loads((tmp_path / "config.json").read_text())["model"]["members"] == 2
    assert torch.allclose(artifact.project(features), project(ensemble, features), atol=1e-6)
