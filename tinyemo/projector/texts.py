"""The words of the anchors: sources, grounding templates and synonyms (no torch here)."""
from __future__ import annotations

from tinyemo.taxonomy import EKMAN6, MIKELS8, UNBIASED6

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
SYNONYMS: dict[str, tuple[str, str, str]] = {
    "amusement": ("fun", "humor", "laughter"),
    "anger": ("rage", "fury", "annoyance"),
    "awe": ("wonder", "amazement", "reverence"),
    "contentment": ("satisfaction", "serenity", "peace"),
    "disgust": ("revulsion", "repulsion", "distaste"),
    "excitement": ("thrill", "enthusiasm", "exhilaration"),
    "fear": ("terror", "fright", "dread"),
    "joy": ("happiness", "delight", "cheerfulness"),
    "love": ("affection", "tenderness", "fondness"),
    "sadness": ("sorrow", "grief", "melancholy"),
    "surprise": ("astonishment", "shock", "bewilderment"),
}

KNOWN_LABELS: tuple[str, ...] = tuple(sorted(set(EKMAN6) | set(MIKELS8) | set(UNBIASED6)))
