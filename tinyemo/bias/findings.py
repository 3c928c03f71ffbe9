"""The bias report: ranked associations, evidence and figures, for a person to judge.

`write_report` writes `report.md` and its figures. The tool ranks and shows evidence: effect
sizes, corrected p-values, counts of images behind each pair, example images, counterfactual
flip rates, and the same analysis of a control projector trained without the planted bias.
Deciding whether a flagged pair is a bias (and what to do about it) is left to the reader.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from tinyemo.bias.analysis import Findings
from tinyemo.figures import pyplot, save_figure
from tinyemo.report import markdown_table

COLUMNS = ["rank", "predictor", "emotion", "shift (pp)", "partial r", "high: pred e / expected", "p", "q", "flagged"]


def association_markdown(table: pd.DataFrame, k: int) -> str:
    """The top-k rows of an association table as Markdown."""
    rows = []
    for rank, row in enumerate(table.head(k).itertuples(), start=1):
        rows.append([rank, f"`{row.predictor}`", row.emotion, f"{100 * row.rate_shift:+.1f}",
                     f"{row.partial_r:.3f}", f"{row.observed} / {row.expected:.1f} (of {row.n_high})",
                     f"{row.p:.2g}", f"{row.q:.2g}", "**yes**" if row.flagged else "no"])
    return markdown_table(COLUMNS, rows)


def plot_top_shifts(tables: dict[str, pd.DataFrame], path: Path, k: int = 10) -> Path:
    """Horizontal bars: the top-k pairs of the first table, and the same pairs in the others."""
    first = next(iter(tables.values())).head(k)
    keys = list(zip(first.predictor, first.emotion))
    fig, ax = pyplot().subplots(figsize=(7, 0.35 * k + 1.5))
    height = 0.8 / len(tables)
    for j, (name, table) in enumerate(tables.items()):
        indexed = table.set_index(["predictor", "emotion"])
        values = [100 * indexed.rate_shift.get(key, np.nan) for key in keys]
        flagged = [bool(indexed.flagged.get(key, False)) for key in keys]
        bars = ax.barh(np.arange(len(keys)) + j * height, values, height, label=name)
        for bar, flag in zip(bars, flagged):
            if flag:
                bar.set_hatch("//")
    ax.set_yticks(np.arange(len(keys)) + height * (len(tables) - 1) / 2)
    ax.set_yticklabels([f"{p} -> {e}" for p, e in keys])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("shift of P(pred = emotion) beyond the true label\n(percentage points; hatched = flagged)")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_flip_rates(flips: dict[str, dict[str, dict]], path: Path) -> Path:
    """Grouped bars: toward-rate of each planted bias, per projector."""
    biases = list(flips)
    models = list(next(iter(flips.values())))
    fig, ax = pyplot().subplots(figsize=(1.8 * len(biases) + 3, 3.2))
    width = 0.8 / len(models)
    for j, model in enumerate(models):
        ax.bar(np.arange(len(biases)) + j * width, [100 * flips[b][model]["toward_rate"] for b in biases],
               width, label=model)
    ax.set_xticks(np.arange(len(biases)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels([b.replace(" -> ", "\n-> ").replace(" (", "\n(") for b in biases], fontsize=8)
    ax.set_ylabel("% of pairs flipped toward the emotion")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def example_images(findings: Findings, predictor: str, emotion: str, image_paths: dict[str, Path],
                   n: int) -> list[tuple[Path, str]]:
    """Up to n images of the group `predictor` predicted `emotion` though labelled otherwise."""
    column = findings.group_columns[predictor]
    target = findings.label_names.index(emotion)
    rows = np.flatnonzero((column > 0) & (findings.pred == target) & (findings.true != target))
    return [(image_paths[findings.ids[i]], f"{findings.ids[i]}: true {findings.label_names[findings.true[i]]}")
            for i in rows[:n]]


def plot_examples(examples: Sequence[tuple[Path, str]], title: str, path: Path) -> Path | None:
    if not examples:
        return None
    fig, axes = pyplot().subplots(1, len(examples), figsize=(2.2 * len(examples), 2.6), squeeze=False)
    for ax, (image, caption) in zip(axes[0], examples):
        with Image.open(image) as im:
            ax.imshow(im.convert("RGB"))
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def flip_markdown(flips: dict[str, dict[str, dict]]) -> str:
    rows = [[bias, model, r["pairs"], f"{100 * r['flip_rate']:.1f}", f"{100 * r['toward_rate']:.1f}",
             f"{r['n_toward']} / {r['n_eligible']}"]
            for bias, by_model in flips.items() for model, r in by_model.items()]
    return markdown_table(["planted bias", "projector", "pairs", "any flip %", "flip toward emotion %",
                           "toward / eligible"], rows)


INTRO = """# Bias report

This report is produced by the `bias` stage. It **ranks** (predictor, emotion) pairs by how
strongly the predictor pushes the Metric Projector's prediction toward the emotion *beyond
what the true labels explain*, and shows the evidence behind each pair. It does not decide:
a flagged pair is a candidate for a person to inspect (look at the example images, the
counterfactual flips, the control), and only a person can judge whether it is a bias, a
legitimate cue, or noise.

How to read the tables: *shift* is the stratified difference (Mantel-Haenszel) in the share
of images predicted *emotion*, in percentage points, between images with and without the
predictor (for a concept: per standard deviation of its score) among images of the same
true label; *partial r* is the same association as a correlation; *high: pred e / expected*
counts the images in the group (for a concept: its top quartile) predicted *emotion*,
against the count their true labels alone predict; *p* is a one-sided permutation p-value
(predictions shuffled within true-label strata), *q* the p-value corrected for every pair
tested ({correction}); a pair is flagged when q <= {alpha}. A strong bias can also show as
its mirror (the other values of the attribute lean toward the other emotions): read such a
pair next to the one it mirrors before acting on it.
"""


def write_report(out: Path, *, metrics: dict, emoscenes: Findings, control: Findings,
                 raw: dict[str, Findings], flips: dict[str, dict[str, dict]],
                 emotion6: Findings | None, image_paths: dict[str, Path], correction: str,
                 alpha: float, k: int = 10, n_examples: int = 4) -> Path:
    """Write `out/report.md` and `out/figures/*.png`; return the report's path."""
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    names = {"bh": "Benjamini-Hochberg, false discovery rate", "holm": "Holm, family-wise error"}
    parts = [INTRO.format(correction=names.get(correction, correction), alpha=alpha)]

    parts.append("## Scores on known truth (EmoScenes)\n")
    rows = [[key, value] for key, value in metrics.items() if not isinstance(value, (dict, list))]
    parts.append(markdown_table(["metric", "value"], rows) + "\n")

    parts.append(f"## EmoScenes: the projector trained on the biased split\n\n"
                 f"{len(emoscenes.true)} unbiased images; projector top-1 {100 * emoscenes.accuracy:.1f} %. "
                 "Groups are the scene attributes the emotion rules never read.\n")
    parts.append(association_markdown(emoscenes.groups, k) + "\n")
    plot_top_shifts({"biased training": emoscenes.groups, "control (no planted bias)": control.groups},
                    figures / "group_shifts.png", k)
    parts.append("![group shifts](figures/group_shifts.png)\n")

    flagged = emoscenes.groups[emoscenes.groups.flagged].head(3)
    for i, row in enumerate(flagged.itertuples()):
        examples = example_images(emoscenes, row.predictor, row.emotion, image_paths, n_examples)
        figure = plot_examples(examples, f"{row.predictor}, predicted {row.emotion}, labelled otherwise",
                               figures / f"examples_{i}.png")
        if figure is not None:
            parts.append(f"Examples for `{row.predictor}` -> {row.emotion}:\n\n![examples](figures/{figure.name})\n")

    if flips:
        parts.append("### Counterfactual probe\n\nThe same test scenes rendered with and without the "
                     "attribute value of each planted bias and of each flagged pair; how often each "
                     "projector's prediction flips, and flips toward the emotion.\n")
        parts.append(flip_markdown(flips) + "\n")
        plot_flip_rates(flips, figures / "flip_rates.png")
        parts.append("![flip rates](figures/flip_rates.png)\n")

    parts.append("## The control: the same split without the planted bias\n\n"
                 f"Same scenes, labels and recipe; top-1 {100 * control.accuracy:.1f} %. "
                 f"Flagged group pairs: {int(control.groups.flagged.sum())}.\n")
    parts.append(association_markdown(control.groups, min(k, 5)) + "\n")

    parts.append("## The concept lens\n\nConcept anchors are built like the emotion anchors (same "
                 "embedding table and template); concept scores are z-scored per concept and taken net "
                 "of the images' emotion scores, and a concept pair counts only if it is also more "
                 "associated than meaningless phrases under the same template. Top concept pairs of "
                 "the biased projector:\n")
    parts.append(association_markdown(emoscenes.concepts, k) + "\n")
    if raw:
        counts = ", ".join(f"{name}: {int(f.concepts.flagged.sum())}" for name, f in raw.items())
        parts.append("The naive concept lens (raw z-scored cosines, no emotion-score adjustment, no "
                     f"null phrases) flags this many concept pairs: {counts}. Those flags appear with "
                     "and without a planted bias: a concept anchor "
                     "near an emotion's anchor scores high on every image projected near that emotion, "
                     "so raw concept scores mostly restate the geometry of the embedding table.\n")

    if emotion6 is not None:
        parts.append(f"## Emotion6 (real photographs; no ground truth)\n\n{len(emotion6.true)} held-out "
                     f"images; projector top-1 {100 * emotion6.accuracy:.1f} %. "
                     f"Flagged concept pairs: {int(emotion6.concepts.flagged.sum())}. The top candidates, "
                     "for a person to check against the images:\n")
        parts.append(association_markdown(emotion6.concepts, k) + "\n")
        plot_top_shifts({"Emotion6": emotion6.concepts}, figures / "emotion6_concepts.png", k)
        parts.append("![Emotion6 concepts](figures/emotion6_concepts.png)\n")

    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
