"""Emotion taxonomies used by the datasets of the paper, and the Mikels-8 -> Ekman-6 mapping.

- Mikels-8 (EmoSet, FI, ArtPhoto, Abstract, and our synthetic EmoScenes).
- Ekman-6 (Emotion6, EmotionROI).
- UnbiasedEmo-6.
- Parrott-25 (WEBEmo's 25 fine emotions, from Parrott's tree of emotions; spelled correctly here,
  WEBEmo's folders spell two of them `cheerfullness` and `irritabilty`).

Label order inside each tuple is alphabetical and fixed: label ids everywhere in the project
are positions in these tuples, so loaders never disagree on what id 3 means.
"""
from __future__ import annotations

from tinyemo.errors import TinyEmoError

MIKELS8: tuple[str, ...] = (
    "amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness",
)
EKMAN6: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
UNBIASED6: tuple[str, ...] = ("anger", "fear", "joy", "love", "sadness", "surprise")
PARROTT25: tuple[str, ...] = (
    "affection", "cheerfulness", "confusion", "contentment", "disappointment", "disgust",
    "enthrallment", "envy", "exasperation", "gratitude", "horror", "irritability", "lust",
    "neglect", "nervousness", "optimism", "pride", "rage", "relief", "sadness", "shame",
    "suffering", "surprise", "sympathy", "zest",
)

# Mikels-8 -> Ekman-6. The four negative Mikels emotions exist in Ekman's set under the same
# name. The three positive, low-surprise emotions (amusement, contentment, excitement) are all
# forms of enjoyment and map to joy. Awe is the response to something vast that the viewer
# must accommodate; its defining component is the sudden widening of attention, which is
# closest to surprise (Keltner & Haidt 2003 place awe near surprise, not near joy). The
# mapping is many-to-one: Ekman `joy` gathers three Mikels classes, and no Mikels class maps
# to nothing.
MIKELS_TO_EKMAN: dict[str, str] = {
    "amusement": "joy",
    "anger": "anger",
    "awe": "surprise",
    "contentment": "joy",
    "disgust": "disgust",
    "excitement": "joy",
    "fear": "fear",
    "sadness": "sadness",
}

TAXONOMIES: dict[str, tuple[str, ...]] = {
    "mikels8": MIKELS8,
    "ekman6": EKMAN6,
    "unbiased6": UNBIASED6,
    "parrott25": PARROTT25,
}


class UnknownTaxonomyError(ValueError, TinyEmoError):
    """Raised for a taxonomy or label name that does not exist; the message lists valid ones."""


def taxonomy(name: str) -> tuple[str, ...]:
    """The label names of a taxonomy, looked up by exact name (a key of TAXONOMIES)."""
    try:
        return TAXONOMIES[name]
    except KeyError:
        raise UnknownTaxonomyError(
            f"unknown taxonomy {name!r}; valid taxonomies: {', '.join(TAXONOMIES)}"
        ) from None


def check_label(label: str, labels: tuple[str, ...] = MIKELS8, what: str = "emotion") -> str:
    """Return `label` if it is one of `labels`, else raise naming the valid labels."""
    if label not in labels:
        raise UnknownTaxonomyError(f"unknown {what} {label!r}; valid: {', '.join(labels)}")
    return label


def label_positions(labels, label_names) -> list[int]:
    """The position of each label in `label_names`; an unknown label is an error naming it."""
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the label set ({', '.join(label_names)})")
    return [index[label] for label in labels]


def to_ekman(mikels_label: str) -> str:
    """Map one Mikels-8 label to Ekman-6 (see MIKELS_TO_EKMAN for the reasoning)."""
    return MIKELS_TO_EKMAN[check_label(mikels_label)]
