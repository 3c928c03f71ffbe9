"""Joint training in a unified label space, and zero-shot evaluation (the paper's Table VIII).

The paper trains one projector on EmotionROI + WEBEmo + EmoSet at once and evaluates it on
every dataset, including ones it never saw. Here:

- **Training set**: the training features of several datasets concatenated (one vision tower:
  their widths must agree), each record's label mapped into the *union* of their label names.
  The same word in two taxonomies is one label and one anchor (`anger` of Ekman-6 and of
  Mikels-8 pull towards the same point); each record is anchored by its own label's text.
- **Validation** (for choosing a recipe, a seed or an epoch) uses the training datasets' own
  `val` splits only, each scored among its own labels; never a zero-shot benchmark. (Upstream
  selected its checkpoints on UnbiasedEmo, which it also reports as a zero-shot column.)
- **Zero-shot evaluation**: on each dataset, the nearest anchor among *that dataset's* label
  set (`AnchorSet.subset`), on its `test` split. A column is *in-domain* when the dataset was
  among the training datasets.

Emotion6 and EmotionROI share their 1,980 images: a projector trained on one and scored on
the other is not zero-shot (`leaked_columns` names such columns).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from tinyemo.errors import TinyEmoError
from tinyemo.feature_store import FeatureSet
from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.evaluate import Evaluation, evaluate_projector
from tinyemo.projector.train import ProjectorFit, Recipe, train_projector

# Datasets that hold the same images: training on one and scoring the other is not zero-shot.
SHARED_IMAGES: tuple[frozenset[str], ...] = (frozenset({"emotion6", "emotionroi"}),)


class JointTrainingError(ValueError, TinyEmoError):
    """Feature sets that cannot be trained or scored together; the message says why."""


def union_labels(label_sets: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The union of several label sets, in order of first appearance (deterministic)."""
    seen: dict[str, None] = {}
    for names in label_sets:
        for name in names:
            seen.setdefault(name, None)
    return tuple(seen)


def check_widths(sets: Mapping[str, FeatureSet]) -> int:
    """The common feature width of `sets`; different widths (different towers) are an error."""
    if not sets:
        raise JointTrainingError("no datasets given: joint training needs at least one")
    widths = {name: features.dim for name, features in sets.items()}
    if len(set(widths.values())) > 1:
        listed = ", ".join(f"{name} {width}" for name, width in widths.items())
        raise JointTrainingError(
            f"the datasets' features have different widths ({listed}): they come from different "
            "vision towers and cannot be trained together; encode them with one tower, or put "
            "them in separate training groups"
        )
    return next(iter(widths.values()))


@dataclass
class JointSet:
    """Several datasets' features concatenated, labels as ids into `label_names` (the union)."""

    datasets: tuple[str, ...]
    pooled: torch.Tensor  # [N, D]
    label_ids: torch.Tensor  # [N] positions in label_names
    label_names: tuple[str, ...]


def concatenate(sets: Mapping[str, FeatureSet], label_names: Sequence[str] | None = None) -> JointSet:
    """Concatenate feature sets into the union label space (or the given `label_names`)."""
    check_widths(sets)
    names = tuple(label_names) if label_names is not None else union_labels(
        [features.label_names for features in sets.values()])
    index = {name: i for i, name in enumerate(names)}
    missing = sorted({label for f in sets.values() for label in f.label_names} - set(index))
    if missing:
        raise JointTrainingError(f"labels {missing} are not in the joint label space {names}")
    pooled = torch.cat([features.pooled for features in sets.values()])
    ids = torch.tensor([index[label] for f in sets.values() for label in f.labels], dtype=torch.long)
    return JointSet(tuple(sets), pooled, ids, names)


def check_anchors(anchor_set: AnchorSet, label_names: Sequence[str], what: str) -> None:
    missing = [name for name in label_names if name not in anchor_set.label_names]
    if missing:
        raise JointTrainingError(
            f"the anchor set has no anchor for {missing} ({what}); build it over the union of "
            "every training and evaluation dataset's labels"
        )


def train_joint(train: Mapping[str, FeatureSet], anchor_set: AnchorSet, recipe: Recipe = Recipe(),
                *, val: Mapping[str, FeatureSet] | None = None) -> ProjectorFit:
    """Train one projector on every dataset of `train` at once (labels in their union).

    `anchor_set` may hold more labels than the training sets (e.g. those of the evaluation
    datasets); training uses the subset of the union of the training labels. With `val`, each
    epoch's history row gets `val_top1` (pooled over the validation sets, each image scored
    among the training union's anchors); `validation_scores` gives the per-dataset figures.
    """
    joint = concatenate(train)
    check_anchors(anchor_set, joint.label_names, "a training label")
    anchors = anchor_set.subset(joint.label_names)
    val_pair = None
    if val:
        unknown = sorted(set(val) - set(train))
        if unknown:
            raise JointTrainingError(
                f"validation datasets {unknown} are not training datasets: select on the training "
                "datasets' own val splits, never on a zero-shot benchmark"
            )
        val_joint = concatenate(val, joint.label_names)
        val_pair = (val_joint.pooled, val_joint.label_ids)
    return train_projector(joint.pooled, joint.label_ids, anchors, recipe, val=val_pair)


def evaluate_on(model, anchor_set: AnchorSet, features: FeatureSet) -> Evaluation:
    """Nearest anchor among the dataset's own label set (the paper's zero-shot protocol)."""
    check_anchors(anchor_set, features.label_names, "an evaluation label")
    subset = anchor_set.subset(features.label_names)
    return evaluate_projector(model, features.pooled, features.label_ids(), subset.anchors,
                              subset.label_names)


def leaked_columns(train_datasets: Sequence[str], eval_datasets: Sequence[str]) -> list[str]:
    """Evaluation datasets that share images with a training dataset without being one."""
    trained = set(train_datasets)
    return [name for name in eval_datasets if name not in trained
            and any(name in group and trained & (group - {name}) for group in SHARED_IMAGES)]


def zero_shot(model, anchor_set: AnchorSet, tests: Mapping[str, FeatureSet],
              train_datasets: Sequence[str]) -> dict[str, dict]:
    """Per evaluation dataset: top-1 (own label set), n, class count, in-domain and leak flags."""
    leaked = set(leaked_columns(train_datasets, list(tests)))
    out = {}
    for name, features in tests.items():
        evaluation = evaluate_on(model, anchor_set, features)
        out[name] = {"top1": evaluation.top1, "n": len(features), "n_classes": len(features.label_names),
                     "in_domain": name in train_datasets, "shares_images_with_training": name in leaked}
    return out


def validation_scores(model, anchor_set: AnchorSet, val: Mapping[str, FeatureSet]) -> dict[str, float]:
    """Top-1 on each training dataset's val split (own label set): what selection may use."""
    return {name: evaluate_on(model, anchor_set, features).top1 for name, features in val.items()}
