"""Stage `features`: encode EmoScenes with the frozen vision tower, gather Emotion6's features.

EmoScenes images go through the profile's tower once: the pooled embedding feeds the
Metric Projector, the patch grid the MM-LLM connector. Emotion6 comes as upstream's CLIP
ViT-L/14 embeddings: its `train/` is split into train and a seeded, stratified validation
set; its `test/` (when present) is kept for final reporting only.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from tinyemo import emotion6, paths
from tinyemo.features import FeatureSet
from tinyemo.scenes import load_scene_records
from tinyemo.taxonomy import MIKELS8
from tinyemo.vision import encode_images


def encode_emoscenes(tower, split: str, batch_size: int, root: Path = paths.EMOSCENES) -> tuple[FeatureSet, float]:
    """The features of one EmoScenes split (labels: Mikels-8 after noise) and images/second."""
    records = load_scene_records(root, split)
    if not records:
        raise ValueError(f"EmoScenes has no {split} images in {root}; run `dvc repro synthesize`")
    images = [r.image_path(root) for r in records]
    missing = [path for path in images if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} {split} images listed in scenes.jsonl are missing (e.g. "
            f"{missing[0]}); run `dvc repro synthesize` to regenerate EmoScenes"
        )
    started = time.perf_counter()
    pooled, patches = encode_images(tower, images, batch_size)
    rate = len(records) / (time.perf_counter() - started)
    grid = {"patch_tokens": patches.shape[1], "patch_dim": patches.shape[2]}
    features = FeatureSet(
        ids=[r.id for r in records], pooled=pooled, labels=[r.label for r in records],
        label_names=MIKELS8, patches=patches,
        meta={"dataset": "emoscenes", "split": split, "vision_tower": tower.spec.name, **grid},
    )
    return features, rate


def emotion6_splits(val_fraction: float, seed: int) -> tuple[dict[str, FeatureSet], str]:
    """{"train", "val"[, "test"]} feature sets, and where the data came from (no absolute path)."""
    root = emotion6.locate_emotion6()
    folders = emotion6.split_folders(root)
    full_train = emotion6.read_feature_folder(folders["train"])
    train, val = emotion6.carve_validation(full_train, val_fraction, seed)
    sets = {"train": train, "val": val}
    if "test" in folders:
        sets["test"] = emotion6.read_feature_folder(folders["test"])
    for split, features in sets.items():
        features.meta.update(dataset="emotion6", split=split, encoder="CLIP ViT-L/14 (upstream)")
    return sets, emotion6.describe_source(root)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
