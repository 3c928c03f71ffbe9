"""The words of the anchors: sources, grounding templates and synonyms (no torch here)."""
from __future__ import annotations

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
# No word is the synonym of two labels.
SYNONYMS: dict[str, tuple[str, str, str]] = {
    "affection": ("warmth", "attachment", "caring"),
    "amusement": ("fun", "humor", "laughter"),
    "anger": ("rage", "fury", "annoyance"),
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
    "joy": ("happiness", "delight", "cheerfulness"),
    "love": ("affection", "tenderness", "fondness"),
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
