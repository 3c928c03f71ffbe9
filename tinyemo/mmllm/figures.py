"""Figures of the MM-LLM stages: loss curves, and test images beside their reasoning."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402


def plot_loss(log: list[dict], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=1.2)
    ax.set(xlabel="optimizer step", ylabel="answer-token loss", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reasonings(images: list[Path], captions: list[str], texts: list[str], path: Path,
                    width: int = 60) -> Path:
    """One row per image: the picture, then its caption line and wrapped reasoning."""
    fig, axes = plt.subplots(len(images), 2, figsize=(11, 3.2 * len(images)),
                             gridspec_kw={"width_ratios": [1, 2.6]}, squeeze=False)
    for (ax_img, ax_txt), image, caption, text in zip(axes, images, captions, texts):
        ax_img.imshow(Image.open(image).convert("RGB"))
        ax_img.axis("off")
        ax_txt.axis("off")
        wrapped = "\n".join(textwrap.fill(part, width) for part in text.split("\n") if part.strip())
        ax_txt.text(0, 1, f"{caption}\n\n{wrapped}", va="top", ha="left", fontsize=8.5,
                    family="monospace", transform=ax_txt.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
