"""The projector stage's experiments, as functions the notebook calls.

`run_recipe` trains one recipe once per seed on a train split and scores every evaluation
split, per seed and as a seed ensemble; `run_baselines` fits the baselines on the same train
split; `held_out_comparison` lines up the shipped projector, the paper recipe, the baselines
and the random-anchor floor on data none of them saw; `vision_tower_of` names the tower that
produced a feature set (recorded in saved projectors).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from tinyemo.feature_store import FeatureSet, available_splits, load_features
from tinyemo.projector import baselines
from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.ensemble import SeedEnsemble
from tinyemo.projector.evaluate import Evaluation, evaluate_projector, score
from tinyemo.projector.train import ProjectorFit, Recipe, train_projector

EMOTION6_TOWER = "clip-vit-l-14"  # upstream's Emotion6 features are CLIP ViT-L/14 encode_image


def load_splits(dataset: str) -> dict[str, FeatureSet]:
    """Every cached split of a dataset (train, val, and test when present)."""
    return {split: load_features(dataset, split) for split in available_splits(dataset)}


def vision_tower_of(features: FeatureSet) -> str:
    if features.meta.get("vision_tower"):
        return features.meta["vision_tower"]
    if features.meta.get("dataset") == "emotion6":
        return EMOTION6_TOWER
    raise ValueError("the feature set does not record which vision tower produced it")


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for a single run) over seeds' runs."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "runs": [float(v) for v in values]}


@dataclass
class RecipeRun:
    """One recipe trained once per seed; evaluations per split, one per seed and one of the ensemble."""

    name: str
    recipe: Recipe
    template: str | list[str]
    runs: list[ProjectorFit] = field(default_factory=list)
    evaluations: dict[str, list[Evaluation]] = field(default_factory=dict)
    ensemble_evaluations: dict[str, Evaluation] = field(default_factory=dict)

    def ensemble(self) -> SeedEnsemble:
        """Every seed's model as one (the mean of their unit projections)."""
        return SeedEnsemble([run.model for run in self.runs])

    def top1(self, split: str) -> dict:
        return mean_std([e.top1 for e in self.evaluations[split]])

    def summary(self) -> dict:
        out = {split: {"top1": self.top1(split), "ensemble_top1": self.ensemble_evaluations[split].top1}
               for split in self.evaluations}
        out["train_seconds"] = mean_std([r.seconds for r in self.runs])
        return out

    def chosen_evaluations(self, ensemble: bool) -> dict[str, Evaluation]:
        """Per split: the seed ensemble's evaluation, or the first seed's."""
        if ensemble:
            return dict(self.ensemble_evaluations)
        return {split: evaluations[0] for split, evaluations in self.evaluations.items()}

    def first(self) -> tuple[ProjectorFit, dict[str, Evaluation]]:
        """The run of the first seed (the one that is saved and drawn)."""
        return self.runs[0], {split: evals[0] for split, evals in self.evaluations.items()}


def run_recipe(name: str, splits: dict[str, FeatureSet], anchor_set: AnchorSet, recipe: Recipe,
               seeds: Sequence[int], template: str | list[str] = "bare") -> RecipeRun:
    """Train on `splits['train']` per seed (validation curve on 'val'); score every other split."""
    train = splits["train"]
    val = splits.get("val")
    run = RecipeRun(name, recipe, template)
    for seed in seeds:
        result = train_projector(
            train.pooled, train.label_ids(), anchor_set, recipe.but(seed=seed),
            val=(val.pooled, val.label_ids()) if val is not None else None,
        )
        run.runs.append(result)
        for split, features in splits.items():
            if split == "train":
                continue
            evaluation = evaluate_projector(result.model, features.pooled, features.label_ids(),
                                            anchor_set.anchors, anchor_set.label_names)
            run.evaluations.setdefault(split, []).append(evaluation)
    ensemble = run.ensemble()
    for split, features in splits.items():
        if split != "train":
            run.ensemble_evaluations[split] = evaluate_projector(
                ensemble, features.pooled, features.label_ids(), anchor_set.anchors, anchor_set.label_names)
    return run


def run_baselines(splits: dict[str, FeatureSet], folds: int, seed: int, C: float | None = None) -> dict[str, dict]:
    """Logistic regression (C by `folds`-fold CV on train, unless given) and nearest centroid,
    fitted on train, scored on the other splits."""
    train = splits["train"]
    out = {}
    for baseline in (
        baselines.logistic_regression(train.pooled, train.label_ids(), folds=folds, seed=seed, C=C),
        baselines.nearest_centroid(train.pooled, train.label_ids(), len(train.label_names)),
    ):
        record = {"fit_seconds": baseline.seconds, **baseline.details}
        for split, features in splits.items():
            if split != "train":
                evaluation = score(features.label_ids(), baseline.predict(features.pooled), train.label_names)
                record[split] = {"top1": evaluation.top1, "per_class": evaluation.per_class}
        out[baseline.name] = record
    return out


SHIPPED, PAPER_RECIPE_ROW, RANDOM_ANCHORS = "shipped projector", "paper recipe", "random anchors"


def held_out_comparison(shipped: Mapping[str, Evaluation], others: Mapping[str, Mapping[str, Evaluation]],
                        baseline_records: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """{split: {model: top-1}} on the held-out splits: the shipped model, the other models
    ({name: {split: Evaluation}}), the baselines, and the shipped minus the logistic probe in points."""
    table = {}
    for split, evaluation in shipped.items():
        row = {SHIPPED: evaluation.top1}
        for name, evaluations in others.items():
            row[name] = evaluations[split].top1
        for name, record in baseline_records.items():
            row[name.replace("_", " ")] = record[split]["top1"]
        row["shipped minus logistic (points)"] = 100 * (evaluation.top1 - baseline_records["logistic_regression"][split]["top1"])
        table[split] = row
    return table
