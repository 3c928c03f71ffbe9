"""The paper's published Table VIII, to set beside the numbers this pipeline computes.

Source: C. Gutierrez, "TinyEmo: Scaling down Emotional Reasoning via Metric Projection",
arXiv:2410.07062 (2024), Table VIII: top-1 accuracy (%) of Metric Projectors trained jointly
on EmotionROI + WEBEmo + EmoSet and evaluated zero-shot on the other datasets. Upstream
selected its checkpoints on UnbiasedEmo, which the table also reports as a zero-shot column,
so that column is optimistic.
"""
from __future__ import annotations

CITATION = ("Gutierrez, C. (2024). TinyEmo: Scaling down Emotional Reasoning via Metric "
            "Projection. arXiv:2410.07062, Table VIII.")

# The datasets of Table VIII, in its column order, with their class counts and short names.
COLUMNS: dict[str, tuple[str, int]] = {
    "emotionroi": ("EmotionROI", 6),
    "emoset": ("EmoSet", 8),
    "webemo": ("WEBEmo", 25),
    "emotion6": ("Emotion6", 6),
    "fi": ("FI", 8),
    "artphoto": ("ArtPhoto", 8),
    "abstract": ("Abstract", 8),
    "unbiasedemo": ("UnbiasedEmo", 6),
}
PAPER_TRAIN_DATASETS = ("emotionroi", "webemo", "emoset")
OUR_DATASETS = {"emoscenes": "EmoScenes"}  # datasets of this project that the paper does not have


def _row(*values: float) -> dict[str, float]:
    return dict(zip(COLUMNS, values))


# Published rows: (model as the paper names it, registry LLM it used or None, description).
PUBLISHED: dict[str, dict] = {
    "TinyEmo-700M": {"llm": "openelm-270m-instruct", "recipe": "NT-Xent, 3 Syn.",
                     "top1": _row(71.72, 82.67, 35.77, 73.40, 64.16, 39.83, 28.32, 82.40)},
    "TinyEmo-880M": {"llm": "openelm-450m-instruct", "recipe": "not stated",
                     "top1": _row(67.68, 83.45, 40.14, 70.37, 60.47, 41.19, 27.88, 76.29)},
    "TinyEmo-1.53B": {"llm": "tinyllama-1.1b-chat", "recipe": "3 Syn.",
                      "top1": _row(71.04, 83.92, 39.65, 76.09, 63.19, 40.94, 27.43, 71.00)},
    "TinyEmo-3.21B": {"llm": "phi-2", "recipe": "not stated",
                      "top1": _row(70.54, 83.82, 41.41, 77.27, 63.10, 40.20, 36.73, 64.11)},
    "EmoVIT (7.91B)": {"llm": None, "recipe": "instruction-tuned MM-LLM, not a projector",
                       "top1": _row(53.87, 83.36, 21.12, 57.81, 68.09, 44.90, 32.34, 74.72)},
}


def published_for(llm: str) -> tuple[str, dict[str, float]] | None:
    """(paper model name, its top-1 per dataset) of the published row that used `llm`."""
    for model, row in PUBLISHED.items():
        if row["llm"] == llm:
            return model, row["top1"]
    return None


def column_title(dataset: str, n_classes: int) -> str:
    """`EmotionROI 6`: the paper's column heading (our dataset name where it has none)."""
    name = COLUMNS[dataset][0] if dataset in COLUMNS else OUR_DATASETS.get(dataset, dataset)
    return f"{name} {n_classes}"
