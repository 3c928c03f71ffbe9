"""The words of the anchors: sources, grounding templates and synonyms (no torch here)."""
from __future__ import annotations

from typing import Mapping, Sequence

from tinyemo.taxonomy import TAXONOMIES

SOURCES = ("llm", "sentence", "random")

TEMPLATES: dict[str, str] = {
    "bare": "{e}",
    "image-expressing": "an image expressing {e} emotion",
    "emotion": "{e} emotion",
    "scene": "a {e} scene",
    "scene-evoking-viewers": "a scene evoking {e} to viewers",
    "scene-evoking": "a scene evoking {e}",
}

# Three synonyms per emotion of every taxonomy in tinyemo.taxonomy (training-time swaps only).
# No word is the synonym of two labels, and no synonym is a label of any taxonomy: in a joint
# training group a swap to another dataset's label (joy -> cheerfulness, a WEBEmo label) would
# pull one class's images onto another class's anchor (`check_synonyms`).
SYNONYMS: dict[str, tuple[str, str, str]] = {
    "affection": ("warmth", "attachment", "caring"),
    "amusement": ("fun", "humor", "laughter"),
    "anger": ("indignation", "fury", "annoyance"),
    "awe": ("wonder", "amazement", "reverence"),
    "cheerfulness": ("gaiety", "jollity", "merriment"),
    "confusion": ("puzzlement", "perplexity", "disorientation"),
    "contentment": ("satisfaction", "serenity", "peace"),
    "disappointment": ("letdown", "dismay", "discouragement"),
    "disgust": ("revulsion", "repulsion", "distaste"),
    "enthrallment": ("fascination", "captivation", "rapture"),
    "envy": ("jealousy", "covetousness", "resentment"),
    "exasperation": ("frustration", "vexation", "impatience"),
    "excitement": ("thrill", "enthusiasm", "exhilaration"),
    "fear": ("terror", "fright", "dread"),
    "gratitude": ("thankfulness", "appreciation", "gratefulness"),
    "horror": ("panic", "alarm", "consternation"),
    "irritability": ("grumpiness", "crankiness", "testiness"),
    "joy": ("happiness", "delight", "gladness"),
    "love": ("adoration", "tenderness", "fondness"),
    "lust": ("desire", "passion", "longing"),
    "neglect": ("abandonment", "loneliness", "isolation"),
    "nervousness": ("anxiety", "unease", "jitters"),
    "optimism": ("hope", "hopefulness", "confidence"),
    "pride": ("dignity", "self-respect", "triumph"),
    "rage": ("wrath", "outrage", "ire"),
    "relief": ("reassurance", "respite", "ease"),
    "sadness": ("sorrow", "grief", "melancholy"),
    "shame": ("embarrassment", "humiliation", "guilt"),
    "suffering": ("agony", "anguish", "pain"),
    "surprise": ("astonishment", "shock", "bewilderment"),
    "sympathy": ("compassion", "pity", "empathy"),
    "zest": ("vigor", "eagerness", "gusto"),
}

KNOWN_LABELS: tuple[str, ...] = tuple(sorted(set().union(*TAXONOMIES.values())))


def check_synonyms(label_sets: Mapping[str, Sequence[str]],
                   synonyms: Mapping[str, Sequence[str]] = SYNONYMS) -> None:
    """Refuse a training group whose synonym swaps would collide: `label_sets` maps each dataset
    of the group to its labels. A synonym may be neither a label of the group nor the synonym
    of another of its labels; the ValueError names the word and both labels."""
    datasets_of: dict[str, list[str]] = {}
    for name, labels in label_sets.items():
        for label in labels:
            datasets_of.setdefault(label, []).append(name)
    group = "+".join(label_sets)
    owner: dict[str, str] = {}
    for label, where in datasets_of.items():
        for word in synonyms.get(label, ()):
            if word in datasets_of and word != label:
                raise ValueError(
                    f"training group {group}: {word!r}, a synonym of {label!r} ({', '.join(where)}), is "
                    f"itself the label {word!r} of {', '.join(datasets_of[word])}; a synonym swap would pull "
                    f"{label} images onto the {word} anchor. Give {label!r} another synonym in "
                    "SYNONYMS (tinyemo/projector/texts.py)")
            if owner.setdefault(word, label) != label:
                raise ValueError(
                    f"training group {group}: {word!r} is a synonym of both {owner[word]!r} and "
                    f"{label!r}; a synonym swap would give the two labels one target. Give one of "
                    "them another synonym in SYNONYMS (tinyemo/projector/texts.py)")
