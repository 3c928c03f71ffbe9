"""Stage `features`: a look at what stage `encode` wrote (sizes, classes, throughput, PCA).

Encoding itself lives in `tinyemo.encode` (one DVC stage per dataset); this module only
summarises the feature sets it produced, for the stage's notebook.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tinyemo import paths
from tinyemo.feature_store import FeatureError, FeatureSet, available_splits, encoded_datasets, load_features


def load_all(root: Path = paths.FEATURES) -> dict[str, dict[str, FeatureSet]]:
    """{dataset: {split: features}} of every dataset `encode` has written."""
    names = encoded_datasets(root)
    if not names:
        raise FeatureError(f"{root} holds no encoded dataset; run `dvc repro encode` first")
    return {name: {split: load_features(name, split, root) for split in available_splits(name, root)}
            for name in names}


def encode_metrics(dataset: str, results: Path = paths.RESULTS) -> dict:
    """results/encode/<dataset>/metrics.json (images/s, skipped images, source), or {}."""
    path = Path(results) / "encode" / dataset / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def summary(features: FeatureSet) -> dict:
    """Size, widths and per-class counts of a feature set (for metrics.json)."""
    counts = Counter(features.labels)
    out = {"n": len(features), "pooled_dim": features.dim,
           "per_class": {name: counts.get(name, 0) for name in features.label_names}}
    if features.patches is not None:
        out["patch_tokens"], out["patch_dim"] = features.patches.shape[1:]
    return out


def plot_pca(sets: dict[str, FeatureSet], path: Path) -> Path:
    """One panel per feature set: its pooled embeddings on their first two principal axes."""
    from sklearn.decomposition import PCA

    from tinyemo.figures import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.4), squeeze=False)
    for ax, (title, features) in zip(axes[0], sets.items()):
        pca = PCA(n_components=2, random_state=0)
        xy = pca.fit_transform(features.pooled.numpy())
        ids = features.label_ids().numpy()
        cmap = plt.get_cmap("tab10")
        for k, name in enumerate(features.label_names):
            rows = ids == k
            ax.scatter(xy[rows, 0], xy[rows, 1], s=6, alpha=0.6, color=cmap(k), label=name)
        share = pca.explained_variance_ratio_
        ax.set_title(f"{title} ({len(features)} images)", fontsize=10)
        ax.set_xlabel(f"PC1 ({share[0]:.0%})")
        ax.set_ylabel(f"PC2 ({share[1]:.0%})")
        ax.legend(fontsize=7, markerscale=2, loc="best")
    return save_figure(fig, path)
