"""Held-out-label zero-shot: does the anchor space transfer to emotions never trained on?

For each fold, a group of labels is withheld: the projector is trained only on images of the
other ("seen") labels, towards the seen labels' anchors. The images of the withheld labels
are then projected and scored two ways:
- `held_out_top1`: nearest anchor among the withheld labels only (chance = 1 / group size);
  this asks whether the space places unseen emotions in the right *relative* positions;
- `all_labels_top1`: nearest anchor among all labels (chance = 1 / K, but a projector trained
  on the seen labels pulls everything towards them, so this is a much harder test).
With random anchors the anchor geometry carries no meaning, so `held_out_top1` must be at
chance; anchors from a space that encodes emotion words must do better.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.evaluate import nearest_anchor, project
from tinyemo.projector.train import Recipe, train_projector


def held_out_folds(label_names: Sequence[str], group_size: int, seed: int = 0) -> list[tuple[str, ...]]:
    """A seeded partition of the labels into groups of `group_size` (the last may be larger)."""
    if not 2 <= group_size < len(label_names):
        raise ValueError(f"group_size must be between 2 and {len(label_names) - 1}, got {group_size}")
    order = np.random.default_rng(seed).permutation(len(label_names))
    n_groups = len(label_names) // group_size
    groups = [order[i * group_size:(i + 1) * group_size].tolist() for i in range(n_groups)]
    groups[-1] += order[n_groups * group_size:].tolist()
    return [tuple(label_names[i] for i in sorted(group)) for group in groups]


def held_out_zeroshot(pooled: torch.Tensor, labels: torch.Tensor, anchor_set: AnchorSet,
                      recipe: Recipe = Recipe(), *, group_size: int = 3, seed: int = 0) -> dict:
    """Zero-shot top-1 on withheld labels, averaged over a partition of the labels into folds."""
    names = anchor_set.label_names
    labels = labels.long()
    folds = []
    for group in held_out_folds(names, group_size, seed):
        held = torch.tensor([names.index(name) for name in group])
        seen_names = tuple(name for name in names if name not in group)
        seen_ids = torch.tensor([names.index(name) for name in seen_names])
        is_held = torch.isin(labels, held)
        remap = torch.full((len(names),), -1, dtype=torch.long)
        remap[seen_ids] = torch.arange(len(seen_ids))
        model = train_projector(pooled[~is_held], remap[labels[~is_held]],
                                anchor_set.subset(seen_names), recipe).model
        projected = project(model, pooled[is_held])
        truth = labels[is_held]
        all_pred, _ = nearest_anchor(projected, anchor_set.anchors)
        held_pred, _ = nearest_anchor(projected, anchor_set.anchors[held])
        folds.append({
            "held_out": list(group),
            "n_images": int(is_held.sum()),
            "held_out_top1": float((held[held_pred] == truth).float().mean()),
            "all_labels_top1": float((all_pred == truth).float().mean()),
        })
    weights = np.array([fold["n_images"] for fold in folds], dtype=float)
    mean = lambda key: float(np.average([fold[key] for fold in folds], weights=weights))  # noqa: E731
    return {
        "held_out_top1": mean("held_out_top1"),
        "all_labels_top1": mean("all_labels_top1"),
        "chance_held_out": float(np.average([1 / len(f["held_out"]) for f in folds], weights=weights)),
        "chance_all_labels": 1 / len(names),
        "folds": folds,
    }
