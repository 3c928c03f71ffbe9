"""What a reviewer would try instead of the projector, on the same features and splits.

- Logistic regression on L2-normalised features, its inverse regularisation C chosen by
  stratified k-fold cross-validation on the training split only (or given, to refit cheaply
  inside an outer cross-validation). The solvers and the search are in
  `tinyemo.projector.logistic` (the objective on the accelerator when there is one); a
  search runs once per feature set in a process and is then reused.
- Nearest class centroid: the mean of each class's L2-normalised training features,
  prediction by cosine similarity to the (normalised) centroids.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from tinyemo.projector import logistic

DEFAULT_CS = logistic.DEFAULT_CS


@dataclass
class Baseline:
    name: str
    predict: object  # callable: pooled [N, D] tensor -> label ids (np.ndarray)
    seconds: float  # fitting time, model selection included (a reused search: its own time)
    details: dict = field(default_factory=dict)


def logistic_regression(pooled: torch.Tensor, labels: torch.Tensor, *, Cs=DEFAULT_CS,
                        folds: int = 5, seed: int = 0, C: float | None = None) -> Baseline:
    """The probe: C searched by `folds`-fold CV (once per feature set, see module doc), or given."""
    if C is None:
        found = logistic.searched(pooled, labels, Cs=Cs, folds=folds, seed=seed)
        return Baseline("logistic_regression", found.probe.predict, found.seconds,
                        {"C": found.C, "cv_folds": folds})
    started = time.perf_counter()
    probe = logistic.fit(pooled, labels, C)
    return Baseline("logistic_regression", probe.predict, time.perf_counter() - started,
                    {"C": float(C), "cv_folds": 0})


def nearest_centroid(pooled: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None) -> Baseline:
    started = time.perf_counter()
    x = F.normalize(pooled.float(), dim=1)
    k = n_classes or int(labels.max()) + 1
    centroids = torch.zeros(k, x.shape[1]).index_add_(0, labels.long(), x)
    centroids = F.normalize(centroids, dim=1)
    seconds = time.perf_counter() - started

    def predict(p: torch.Tensor) -> np.ndarray:
        return (F.normalize(p.float(), dim=1) @ centroids.T).argmax(dim=1).numpy()

    return Baseline("nearest_centroid", predict, seconds)
