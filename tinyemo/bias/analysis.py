"""One bias analysis of one projector on one set of images, and its scoring on known truth.

Two lenses rank (predictor, emotion) pairs with the same stratified permutation test
(`tinyemo.bias.association`):
- the **concept lens** (the paper's idea): z-scored concept scores of the projected images,
  net of the emotion scores (see `tinyemo.bias.scores`), credited only when a concept beats
  meaningless phrases built the same way; it needs nothing but the projector and a list of
  words, so it also runs on real data with no metadata;
- the **group lens**: 0/1 indicators `attribute=value` from per-image metadata, when the
  images have some (EmoScenes records its rule-irrelevant attributes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from tinyemo.bias.association import associate, group_indicators
from tinyemo.bias.concepts import ConceptBank
from tinyemo.bias.scores import concept_scores
from tinyemo.taxonomy import label_positions


@dataclass
class Settings:
    alpha: float = 0.05  # significance level after the correction
    correction: str = "bh"  # bh (Benjamini-Hochberg) or holm
    n_permutations: int = 20000
    residualise: bool = True  # concept scores net of the emotion scores
    seed: int = 0


@dataclass
class Findings:
    """What one analysis found, with everything the report shows."""

    name: str  # e.g. "EmoScenes, biased projector"
    label_names: tuple[str, ...]
    true: np.ndarray  # label ids [N]
    pred: np.ndarray  # predicted ids [N]
    ids: list[str]  # image ids [N]
    concepts: pd.DataFrame  # ranked concept x emotion table
    groups: pd.DataFrame | None  # ranked attribute=value x emotion table, when metadata exists
    group_columns: dict[str, np.ndarray] | None = None  # attribute=value -> 0/1 per image

    @property
    def accuracy(self) -> float:
        return float((self.true == self.pred).mean())


def analyse(name: str, projector, pooled: torch.Tensor, labels: Sequence[str], ids: Sequence[str],
            bank: ConceptBank, anchors: torch.Tensor, settings: Settings,
            attributes: dict[str, Sequence[str]] | None = None,
            null_anchors: torch.Tensor | None = None) -> Findings:
    """Run both lenses for `projector` on images with features `pooled` and true `labels`.

    `anchors` are the bank's concept anchors; `null_anchors` (optional) those of meaningless
    phrases built the same way, which a concept must out-associate to be credited.
    """
    true = np.array(label_positions(labels, projector.label_names))
    projected = projector.project(pooled)
    pred, _ = projector.predict(pooled)
    pred = pred.numpy()
    emotion_anchors = projector.anchors if settings.residualise else None
    scores = concept_scores(projected, anchors, emotion_anchors)
    null = None if null_anchors is None else concept_scores(projected, null_anchors, emotion_anchors)
    test = dict(n_permutations=settings.n_permutations, correction=settings.correction,
                alpha=settings.alpha, seed=settings.seed)
    concepts = associate(scores, true, pred, bank.concepts, projector.label_names, null=null, **test)
    concepts.insert(1, "group", [bank.group_of(c) for c in concepts.predictor])
    groups, columns = None, None
    if attributes:
        x, names = group_indicators(attributes)
        groups = associate(x, true, pred, names, projector.label_names, **test)
        columns = dict(zip(names, x.T))
    return Findings(name, tuple(projector.label_names), true, pred, list(ids), concepts, groups, columns)


def _mentions(concept: str, value: str) -> bool:
    return re.search(rf"\b{re.escape(value)}\b", concept) is not None


def score_planted(findings: Findings, planted: Sequence[dict], top_k: int = 5) -> dict:
    """Known-truth scores for each lens: `*_recall`, the share of planted biases among the
    top-k flagged pairs; `*_flags`, all flagged pairs; `*_false_flags`, flagged pairs that are
    not planted. A concept matches a planted bias when it names the planted value as a word
    (e.g. "teal frame" for frame_color=teal) and the emotion is the planted one."""
    scores: dict = {"top_k": top_k}
    if findings.groups is not None:
        truth = {(f"{b['attribute']}={b['value']}", b["emotion"]) for b in planted}
        flagged = findings.groups[findings.groups.flagged]
        top = set(zip(flagged.predictor.head(top_k), flagged.emotion.head(top_k)))
        hits = set(zip(flagged.predictor, flagged.emotion))
        scores["group_recall"] = len(truth & top) / len(truth) if truth else None
        scores["group_flags"] = int(len(flagged))
        scores["group_false_flags"] = int(len(hits - truth))
    flagged = findings.concepts[findings.concepts.flagged]
    top = flagged.head(top_k)
    recalled = [any(_mentions(c, b["value"]) and e == b["emotion"] for c, e in zip(top.predictor, top.emotion))
                for b in planted]
    matching = [any(_mentions(c, b["value"]) and e == b["emotion"] for b in planted)
                for c, e in zip(flagged.predictor, flagged.emotion)]
    scores["concept_recall"] = float(np.mean(recalled)) if planted else None
    scores["concept_flags"] = int(len(flagged))
    scores["concept_false_flags"] = int(len(flagged) - sum(matching))
    return scores


def emoscenes_splits(splits: Sequence[str]):
    """Features of EmoScenes splits, concatenated, with each image's scene record."""
    from tinyemo.feature_store import load_features
    from tinyemo.scenes.records import load_scene_records

    records = {record.id: record for record in load_scene_records()}
    features = [load_features("emoscenes", split) for split in splits]
    ids = [i for f in features for i in f.ids]
    missing = [i for i in ids if i not in records]
    if missing:
        raise ValueError(f"{len(missing)} feature ids (e.g. {missing[0]}) have no scene record; "
                         "re-run `dvc repro synthesize features`")
    pooled = torch.cat([f.pooled for f in features])
    labels = [label for f in features for label in f.labels]
    return ids, pooled, labels, [records[i] for i in ids]


def attribute_values(records) -> dict[str, list[str]]:
    """attribute -> the value of each record, for every rule-irrelevant scene attribute."""
    from tinyemo.scenes import catalogue

    return {name: [record.attributes[name] for record in records] for name in catalogue.ATTRIBUTES}
