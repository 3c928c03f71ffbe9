"""What a reviewer would try instead of the projector, on the same features and splits.

- Logistic regression on L2-normalised features, its inverse regularisation C chosen by
  stratified k-fold cross-validation on the training split only (or given, to refit cheaply
  inside an outer cross-validation).
- Nearest class centroid: the mean of each class's L2-normalised training features,
  prediction by cosine similarity to the (normalised) centroids.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

DEFAULT_CS = tuple(float(c) for c in np.logspace(-1, 3, 9))


@dataclass
class Baseline:
    name: str
    predict: object  # callable: pooled [N, D] tensor -> label ids (np.ndarray)
    seconds: float  # fitting time, model selection included
    details: dict = field(default_factory=dict)


def _normalised(pooled: torch.Tensor) -> np.ndarray:
    return F.normalize(pooled.float(), dim=1).numpy()


def logistic_regression(pooled: torch.Tensor, labels: torch.Tensor, *, Cs=DEFAULT_CS,
                        folds: int = 5, seed: int = 0, C: float | None = None) -> Baseline:
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    x, y = _normalised(pooled), labels.numpy()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1):  # small problem: extra BLAS threads only contend
        if C is None:
            search = LogisticRegressionCV(Cs=list(Cs), cv=cv, max_iter=3000, scoring="accuracy")
            search.fit(x, y)
            best_c = float(np.atleast_1d(search.C_)[0])
        else:
            best_c, folds = float(C), 0
        model = LogisticRegression(C=best_c, max_iter=3000).fit(x, y)
    seconds = time.perf_counter() - started
    return Baseline("logistic_regression", lambda p: model.predict(_normalised(p)), seconds,
                    {"C": best_c, "cv_folds": folds})


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
