"""Figures of the projector stages: the 2-D map, the confusion matrix, per-epoch curves, bars."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tinyemo.figures import pyplot, save_figure


def embedding_map(projected: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor,
                  label_names: Sequence[str], path: Path, *, max_points: int = 600,
                  seed: int = 0, title: str = "") -> Path:
    """t-SNE of projected images (dots) and the label anchors (stars), in one embedding."""
    from sklearn.manifold import TSNE

    plt = pyplot()
    rows = np.random.default_rng(seed).permutation(len(projected))[:max_points]
    points = torch.cat([projected[rows], anchors]).numpy()
    perplexity = float(min(30, max(2, (len(points) - 1) // 3)))
    xy = TSNE(n_components=2, metric="cosine", init="pca", random_state=seed,
              perplexity=perplexity).fit_transform(points)
    dots, stars = xy[: len(rows)], xy[len(rows):]
    ids = labels[rows].numpy()
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    for k, name in enumerate(label_names):
        ax.scatter(*dots[ids == k].T, s=8, alpha=0.55, color=cmap(k % 10), label=name)
        ax.scatter(*stars[k], marker="*", s=380, color=cmap(k % 10), edgecolor="black", linewidth=1.2)
        ax.annotate(name, stars[k], xytext=(6, 6), textcoords="offset points", fontsize=9, weight="bold")
    ax.set_title(title or "projected images (dots) and anchors (stars), t-SNE", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=2, loc="best")
    return save_figure(fig, path)


def confusion_heatmap(confusion: np.ndarray, label_names: Sequence[str], path: Path, title: str = "") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(label_names), 0.6 + 0.7 * len(label_names)))
    totals = confusion.sum(axis=1, keepdims=True).clip(min=1)
    ax.imshow(confusion / totals, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(label_names)):
        for j in range(len(label_names)):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(label_names)), label_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def epoch_curves(histories: dict[str, list[dict]], path: Path, key: str = "val_top1", title: str = "") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for name, history in histories.items():
        ax.plot([row["epoch"] for row in history], [row[key] for row in history], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def bar_chart(groups: dict[str, dict[str, tuple[float, float]]], path: Path, *, ylabel: str = "top-1",
              title: str = "", chance: float | None = None) -> Path:
    """Grouped bars with error bars: {group: {bar: (mean, std)}}."""
    plt = pyplot()
    names = list(groups)
    bars = list(dict.fromkeys(bar for group in groups.values() for bar in group))
    width = 0.8 / max(1, len(bars))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(names) * max(1, len(bars)) * 0.5 + 2), 3.8))
    for i, bar in enumerate(bars):
        means = [groups[g].get(bar, (np.nan, 0))[0] for g in names]
        stds = [groups[g].get(bar, (np.nan, 0))[1] for g in names]
        ax.bar(np.arange(len(names)) + (i - (len(bars) - 1) / 2) * width, means, width, yerr=stds,
               capsize=3, label=bar)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
