"""Concept scores of projected images.

A concept's raw score for an image is the cosine between the projected image and the
concept's anchor. Raw scores are not comparable across concepts: an anchor made of frequent
tokens (or of the template's shared tokens) is close to *every* image. Each concept's scores
are therefore z-scored across the images analysed, so a score says how unusually close this
image is to the concept, relative to the other images.

A second, optional step removes what the emotion anchors already explain. A concept whose
anchor lies near emotion e's anchor scores high on every image projected near e, whatever the
image shows; its score then "predicts" the prediction e by construction, and an association
test would rediscover the geometry of the embedding table, not a bias of the model.
`residualise` regresses each concept's scores on the images' cosines to the emotion anchors
and keeps the residual, the part of the concept score the emotion scores do not explain.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from tinyemo.errors import TinyEmoError


class ScoreError(ValueError, TinyEmoError):
    """Projected images and anchors that do not fit together."""


def cosine_scores(projected: torch.Tensor, anchors: torch.Tensor) -> np.ndarray:
    """Cosine [N, C] of every projected image (rows) with every anchor."""
    if projected.dim() != 2 or anchors.dim() != 2 or projected.shape[1] != anchors.shape[1]:
        raise ScoreError(
            f"projected images {list(projected.shape)} and anchors {list(anchors.shape)} must be "
            "[N, d] and [C, d] in the same space; build the anchors with the projector's own config"
        )
    return (F.normalize(projected.float(), dim=1) @ F.normalize(anchors.float(), dim=1).T).numpy()


def zscore(scores: np.ndarray) -> np.ndarray:
    """Each column minus its mean, over its standard deviation (constant columns become 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    spread = scores.std(axis=0)
    return np.where(spread > 0, (scores - scores.mean(axis=0)) / np.where(spread > 0, spread, 1.0), 0.0)


def residualise(scores: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """z-scored residuals of each score column after a least-squares fit on `covariates` [N, K]."""
    scores = np.asarray(scores, dtype=np.float64)
    design = np.column_stack([np.ones(len(scores)), np.asarray(covariates, dtype=np.float64)])
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    return zscore(scores - design @ coef)


def concept_scores(projected: torch.Tensor, concept_anchors: torch.Tensor,
                   emotion_anchors: torch.Tensor | None = None) -> np.ndarray:
    """Normalised concept scores [N, C]; with `emotion_anchors`, net of the emotion scores."""
    raw = cosine_scores(projected, concept_anchors)
    if emotion_anchors is None:
        return zscore(raw)
    return residualise(raw, cosine_scores(projected, emotion_anchors))
