"""The paper's released projectors as a row group of Table VIII (stage `paper_table`).

Beside the rows this pipeline retrains, the table scores the four projectors the paper released
(`tinyemo.projector.upstream_checkpoint.RELEASED`) on every column whose features are CLIP ViT-L/14's,
the tower they read, as upstream scored them: anchors from the LLM's input-embedding table with
the tokens its tokenizer gives, upstream's label texts, the nearest anchor among the labels
present. Each cell gives top-1 with n and its 95 % Wilson interval, the paper's number for the
same model and column, and the difference in points. The paper's numbers are on upstream's
test splits; a column scored on another split (or on other images, such as the shipped
Emotion6 sample) is a like-for-like protocol on different images, not the same measurement.

The checkpoints and the LLMs' tables come from the Hugging Face hub. The paper profile
downloads them; the offline profiles (HF_HUB_OFFLINE=1) use whatever the local cache holds, and
a projector that cannot be reached is skipped with the reason, not an error.
"""
from __future__ import annotations

from typing import Mapping

from tinyemo.feature_store import FeatureSet
from tinyemo.models import registry
from tinyemo.models.embedding_table import HubUnreachableError
from tinyemo.projector.paper_numbers import PAPER_TRAIN_DATASETS, column_title
from tinyemo.projector.upstream import VISION_TOWER, evaluate_features, open_released, shares_images_with_training
from tinyemo.projector.upstream_checkpoint import RELEASED
from tinyemo.report import markdown_table


def _reads(features: FeatureSet) -> bool:
    """Whether the features are the ones the released projectors read (CLIP ViT-L/14)."""
    return (features.dim == registry.vision_tower_spec(VISION_TOWER).pooled_dim
            and features.meta.get("vision_tower", VISION_TOWER) == VISION_TOWER)


def score_released(tests: Mapping[str, FeatureSet], splits: Mapping[str, str]) -> dict:
    """Every released projector on every column it can read: {"rows", "skipped", "skipped_columns"}."""
    columns = {name: features for name, features in tests.items() if _reads(features)}
    out = {"rows": {}, "skipped": {},
           "skipped_columns": {name: f"{features.dim}-d features of another tower; the released "
                               f"projectors read {VISION_TOWER}" for name, features in tests.items()
                               if name not in columns}}
    if not columns:
        out["skipped"] = {repo: f"no column has {VISION_TOWER} features" for repo in RELEASED}
        return out
    for repo in RELEASED:
        try:
            released = open_released(repo)
        except HubUnreachableError as err:
            out["skipped"][repo] = str(err)
            continue
        cells = {}
        for dataset, features in columns.items():
            evaluation, artifact = evaluate_features(released, dataset, features)
            paper = released.paper_top1(dataset)
            cells[dataset] = {
                "top1": evaluation.top1, "ci95": list(evaluation.top1_ci95), "n": len(features),
                "n_classes": len(artifact.label_names), "split": splits[dataset],
                "template": artifact.config["template"], "in_domain": dataset in PAPER_TRAIN_DATASETS,
                "shares_images_with_training": shares_images_with_training(dataset),
                "paper_top1": None if paper is None else paper[1],
                "delta": None if paper is None else 100 * evaluation.top1 - paper[1]}
        out["rows"][repo] = {"llm": released.llm, "file": released.ref.filename, "commit": released.commit,
                             "paper_model": released.paper_model, "cells": cells}
    return out


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "—"
    low, high = cell["ci95"]
    text = f"{100 * cell['top1']:.2f} [{100 * low:.1f}, {100 * high:.1f}], n {cell['n']}"
    if cell["paper_top1"] is not None:
        text += f" (paper {cell['paper_top1']:.2f}, Δ {cell['delta']:+.2f})"
    return text


def render_markdown(released: dict | None) -> str:
    """The row group as a markdown section ("" when the metrics carry none)."""
    if not released:
        return ""
    lines = ["", "## The paper's released projectors", ""]
    if released["rows"]:
        datasets = list(next(iter(released["rows"].values()))["cells"])
        n_classes = {d: c["n_classes"] for row in released["rows"].values() for d, c in row["cells"].items()}
        splits = {d: c["split"] for row in released["rows"].values() for d, c in row["cells"].items()}
        header = ["released projector (anchors of)",
                  *[column_title(d, n_classes[d]) + ("" if splits[d] == "test" else f" [{splits[d]} split]")
                    for d in datasets]]
        body = [[f"{repo} ({row['llm']}; paper: {row['paper_model'] or '—'})",
                 *[_cell(row["cells"].get(d)) for d in datasets]] for repo, row in released["rows"].items()]
        lines += [
            "Each released checkpoint scored as upstream scored it: anchors from its LLM's "
            "input-embedding table (the tokens the tokenizer gives), upstream's label texts, the "
            "nearest anchor among the labels present. Top-1 (%) [95 % Wilson interval], n; the "
            "paper's number (its test split) and the difference in points.",
            "",
            markdown_table(header, body), ""]
        leaked = [d for d in datasets if next(iter(released["rows"].values()))["cells"][d]["shares_images_with_training"]]
        if leaked:
            lines += [f"{', '.join(leaked)}: shares its images with EmotionROI, on which the paper "
                      "trained these projectors, so the column is not zero-shot for them.", ""]
    for repo, why in released["skipped"].items():
        lines.append(f"- not scored: {repo}: {why}")
    for dataset, why in released["skipped_columns"].items():
        lines.append(f"- column not scored by the released projectors: {dataset}: {why}")
    return "\n".join(lines) + "\n"
