"""Prediction and scoring: nearest anchor among the dataset's label set.

Projected images and anchors are unit vectors, so the nearest anchor in Euclidean distance
is the one with the highest cosine similarity; the distance is `sqrt(2 - 2 cos)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (the CPU for a model without any)."""
    weights = next(iter(model.parameters()), None)
    return weights.device if weights is not None else torch.device("cpu")


@torch.no_grad()
def project(model: torch.nn.Module, pooled: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Projected unit vectors `[N, d]` on the CPU (eval mode: no dropout, running BatchNorm
    statistics); each batch is sent to the model's device and its projections brought back."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        return torch.cat([model(pooled[i:i + batch_size].to(device, non_blocking=True)).cpu()
                          for i in range(0, len(pooled), batch_size)])
    finally:
        model.train(was_training)


def nearest_anchor(projected: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(label ids [N], cosine scores [N, K]) of each projected row against the anchors."""
    scores = projected @ anchors.T
    return scores.argmax(dim=1), scores


@dataclass
class Evaluation:
    label_names: tuple[str, ...]
    labels: np.ndarray  # true label ids
    predicted: np.ndarray  # predicted label ids
    mean_nearest_distance: float | None = None  # mean Euclidean distance to the nearest anchor
    confusion: np.ndarray = field(init=False)  # [true, predicted] counts

    def __post_init__(self):
        k = len(self.label_names)
        self.confusion = np.zeros((k, k), dtype=int)
        np.add.at(self.confusion, (self.labels, self.predicted), 1)

    @property
    def top1(self) -> float:
        return float((self.labels == self.predicted).mean()) if len(self.labels) else float("nan")

    @property
    def top1_ci95(self) -> tuple[float, float]:
        """The 95 % Wilson score interval of top-1 over the n images."""
        return wilson_interval(int((self.labels == self.predicted).sum()), len(self.labels))

    @property
    def per_class(self) -> dict[str, float | None]:  # None: no image of that class
        totals = self.confusion.sum(axis=1)
        return {
            name: float(self.confusion[i, i] / totals[i]) if totals[i] else None
            for i, name in enumerate(self.label_names)
        }

    def summary(self) -> dict:
        out = {"top1": self.top1, "n": int(len(self.labels)),
               "per_class": self.per_class}
        if self.mean_nearest_distance is not None:
            out["mean_nearest_distance"] = self.mean_nearest_distance
        return out

    def confusion_records(self) -> list[dict]:
        """One {actual, predicted} row per sample: the input of a DVC confusion plot."""
        return [{"actual": self.label_names[a], "predicted": self.label_names[p]}
                for a, p in zip(self.labels.tolist(), self.predicted.tolist())]


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of the proportion hits / n (95 % for z = 1.96); sound for small
    n and for proportions near 0 or 1, where the normal approximation is not."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def score(labels: Sequence[int] | torch.Tensor, predicted, label_names: Sequence[str],
          mean_nearest_distance: float | None = None) -> Evaluation:
    return Evaluation(tuple(label_names), np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int),
                      mean_nearest_distance)


def evaluate_projector(model, pooled: torch.Tensor, labels, anchors: torch.Tensor,
                       label_names: Sequence[str]) -> Evaluation:
    """Top-1, per-class accuracy, confusion and mean nearest-anchor distance of a projector."""
    predicted, scores = nearest_anchor(project(model, pooled), anchors)
    nearest = scores.max(dim=1).values.clamp(max=1.0)
    distance = float(torch.sqrt(2.0 - 2.0 * nearest).mean()) if len(nearest) else float("nan")
    return score(labels, predicted, label_names, distance)


def top1(model, pooled: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor) -> float:
    predicted, _ = nearest_anchor(project(model, pooled), anchors)
    return float((predicted == labels).float().mean())
