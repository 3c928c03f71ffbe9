"""Figures of the MM-LLM stages: loss curves, and test images beside their reasoning."""
from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image

from tinyemo.figures import pyplot, save_figure


def plot_loss(log: list[dict], path: Path, title: str) -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=1.2)
    ax.set(xlabel="optimizer step", ylabel="answer-token loss", title=title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_curve(rows: list[dict], x: str, ys: list[str], path: Path, title: str) -> Path:
    """Columns `ys` of `rows` against column `x`, one line each."""
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    for y in ys:
        ax.plot([r[x] for r in rows], [r[y] for r in rows], marker="o", lw=1.2, label=y)
    ax.set(xlabel=x.replace("_", " "), title=title)
    if len(ys) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_budget(curves: dict[str, list[dict]], measures: list[str], path: Path,
                ceiling: dict[str, float] | None = None) -> Path:
    """One panel per measure against training CPU-minutes, a line per connector; a dashed
    line where `ceiling` gives the measure's reference (the vision probe's)."""
    fig, axes = pyplot().subplots(1, len(measures), figsize=(4.2 * len(measures), 3.4), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        for name, rows in curves.items():
            ax.plot([r["train_cpu_minutes"] for r in rows], [r[measure] for r in rows],
                    marker="o", lw=1.2, label=name)
        if ceiling and measure in ceiling:
            ax.axhline(ceiling[measure], ls="--", color="grey", lw=1, label="vision probe")
        ax.set(xlabel="training CPU-minutes", title=measure.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return save_figure(fig, path)


def plot_reasonings(images: list[Path], captions: list[str], texts: list[str], path: Path,
                    width: int = 60) -> Path:
    """One row per image: the picture, then its caption line and wrapped reasoning."""
    fig, axes = pyplot().subplots(len(images), 2, figsize=(11, 3.2 * len(images)),
                             gridspec_kw={"width_ratios": [1, 2.6]}, squeeze=False)
    for (ax_img, ax_txt), image, caption, text in zip(axes, images, captions, texts):
        ax_img.imshow(Image.open(image).convert("RGB"))
        ax_img.axis("off")
        ax_txt.axis("off")
        wrapped = "\n".join(textwrap.fill(part, width) for part in text.split("\n") if part.strip())
        ax_txt.text(0, 1, f"{caption}\n\n{wrapped}", va="top", ha="left", fontsize=8.5,
                    family="monospace", transform=ax_txt.transAxes)
    return save_figure(fig, path)
