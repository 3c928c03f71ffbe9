"""The control: the same training split with its planted biases removed, and a projector
trained on it with the recipe of the projector under analysis.

A planted bias only ever changed one attribute of training images whose label is the bias's
emotion (`tinyemo.scenes.planted_bias.plant`); every other attribute of every image was drawn
uniformly. Re-drawing that attribute uniformly for those images therefore yields exactly the
training split the generator would have produced with no planted bias: the same scenes, the
same labels, the same size. Only the images whose attribute value changes are rendered and
encoded again; every other image keeps its stored features (rendering is deterministic, so
they are the same pixels). The control isolates the planted correlation and nothing else.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tinyemo.bias.encoding import encode
from tinyemo.projector.anchors import build_anchor_set
from tinyemo.projector.artifact import ProjectorArtifact
from tinyemo.projector.train import Recipe, train_projector
from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene, with_attribute
from tinyemo.scenes.render import render_scene
from tinyemo.taxonomy import label_positions


def unbiased_scenes(scenes: Sequence[Scene], labels: Sequence[str], planted: Sequence[dict],
                    seed: int) -> list[Scene]:
    """`scenes` with every planted attribute re-drawn uniformly where a bias could have set it."""
    rng = np.random.default_rng([seed, 0xB1A5])
    out = []
    for scene, label in zip(scenes, labels):
        for bias in planted:
            if label == bias["emotion"]:
                values = catalogue.ATTRIBUTES[bias["attribute"]]
                scene = with_attribute(scene, bias["attribute"], values[int(rng.integers(len(values)))])
        out.append(scene)
    return out


def control_features(tower, scenes: Sequence[Scene], pooled: torch.Tensor, planted: Sequence[dict],
                     labels: Sequence[str], image_size: int, seed: int,
                     batch_size: int = 32, precision: str = "fp32") -> tuple[torch.Tensor, int]:
    """Features of the unbiased copy of a split (and how many images had to be re-encoded,
    in `precision`, that of the stored `pooled`: see `encoding`)."""
    if len(scenes) != len(pooled):
        raise ValueError(f"{len(scenes)} scenes but {len(pooled)} feature rows")
    debiased = unbiased_scenes(scenes, labels, planted, seed)
    changed = [i for i, (old, new) in enumerate(zip(scenes, debiased)) if old.attributes != new.attributes]
    features = pooled.clone().float()
    if changed:
        images = [render_scene(debiased[i], image_size) for i in changed]
        features[changed] = encode(tower, images, batch_size, precision)[0]
    return features, len(changed)


def train_like(artifact: ProjectorArtifact, pooled: torch.Tensor, labels: Sequence[str]) -> ProjectorArtifact:
    """A projector trained on (`pooled`, `labels`) with the recipe and anchors of `artifact`."""
    config = artifact.config
    missing = [key for key in ("recipe", "anchor_source", "template", "llm") if key not in config]
    if missing:
        raise ValueError(f"the projector's config lacks {missing}: cannot repeat its recipe; "
                         "re-run `dvc repro projector`")
    recipe = Recipe(**config["recipe"])
    anchor_set = build_anchor_set(artifact.label_names, config["anchor_source"], config["template"],
                                  synonyms=recipe.synonym_p > 0, llm=config["llm"])
    targets = torch.tensor(label_positions(labels, artifact.label_names))
    model = train_projector(pooled, targets, anchor_set, recipe).model
    return ProjectorArtifact(model, anchor_set.anchors, artifact.label_names, dict(config, control=True))
