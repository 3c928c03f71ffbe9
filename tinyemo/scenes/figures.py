"""Figures of the synthesize stage: sample images with a conversation each, class counts."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from tinyemo.figures import pyplot, save_figure
from tinyemo.scenes.records import SPLITS, SceneRecord
from tinyemo.taxonomy import MIKELS8


def sample_grid(records: list[SceneRecord], finetune: dict[str, dict], root: Path, path: Path,
                columns: int = 4, wrap: int = 46) -> Path:
    """Images with label / rule label, and the teacher's answer under each."""
    rows = int(np.ceil(len(records) / columns))
    fig, axes = pyplot().subplots(rows * 2, columns, figsize=(4.2 * columns, 6.4 * rows),
                             gridspec_kw={"height_ratios": [1, 0.75] * rows})
    axes = np.atleast_2d(axes)
    for ax in axes.flat:
        ax.axis("off")
    for i, record in enumerate(records):
        top, bottom = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        top.imshow(Image.open(record.image_path(root)))
        noisy = f" (rules: {record.rule_label})" if record.noisy else ""
        top.set_title(f"{record.id}: {record.label}{noisy}", fontsize=10)
        answer = finetune[record.id]["conversations"][1]["value"]
        text = "\n".join(textwrap.fill(part, wrap) for part in answer.split("\n") if part)
        bottom.text(0, 1, text, va="top", ha="left", fontsize=7, family="serif", wrap=True)
    return save_figure(fig, path)


def class_counts_chart(counts: dict[str, dict[str, int]], path: Path) -> Path:
    """Grouped bars: images per Mikels-8 class, one bar per split."""
    fig, ax = pyplot().subplots(figsize=(9, 3.6))
    width = 0.8 / len(SPLITS)
    x = np.arange(len(MIKELS8))
    for k, split in enumerate(SPLITS):
        ax.bar(x + (k - 1) * width, [counts[split][e] for e in MIKELS8], width, label=split)
    ax.set_xticks(x, MIKELS8, rotation=20)
    ax.set_ylabel("images")
    ax.set_title("EmoScenes: images per class (label after noise)")
    ax.legend()
    return save_figure(fig, path)


def counterfactual_figure(scene, attribute: str, value: str, size: int, path: Path) -> Path:
    """A scene, its counterfactual with one attribute changed, and the pixels that differ."""
    from tinyemo.scenes.graph import with_attribute
    from tinyemo.scenes.render import render_scene

    before = np.asarray(render_scene(scene, size))
    after = np.asarray(render_scene(with_attribute(scene, attribute, value), size))
    changed = (before != after).any(axis=2).astype(float)
    fig, axes = pyplot().subplots(1, 3, figsize=(9, 3.3))
    panels = ((before, f"{attribute} = {scene.attributes[attribute]}"),
              (after, f"{attribute} = {value}"),
              (changed, f"pixels that differ ({100 * changed.mean():.1f}%)"))
    for ax, (image, title) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0) if image.ndim == 2 else ax.imshow(image)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return save_figure(fig, path)
