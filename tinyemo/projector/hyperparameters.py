"""A training recipe of the Metric Projector (validated like a params section; no torch here).

`Recipe()` with its defaults is the paper's recipe: cosine-embedding loss, 5 epochs, batch
32, AdamW with a OneCycle schedule (max lr 5e-4, pct_start 0.005, cosine annealing). Every
other field is a knob that model selection (tinyemo.projector.selection) may turn.

A `Candidate` is what selection compares: a recipe and the grounding template of its anchors.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tinyemo.config import Section
from tinyemo.projector.texts import TEMPLATES


class Recipe(Section):
    """A training recipe; validated like every params section (unknown keys are errors)."""

    loss: Literal["cosine", "ntxent", "infonce"] = "cosine"
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(32, ge=2)
    max_lr: float = Field(5.0e-4, gt=0)  # OneCycle peak learning rate
    pct_start: float = Field(0.005, gt=0, lt=1)  # share of the steps spent warming up
    weight_decay: float = Field(0.01, ge=0)  # AdamW
    width: int | None = Field(None, ge=1)  # hidden width; None = the anchor width (the paper)
    depth: int = Field(2, ge=1)  # Linear layers (2 = the paper's block)
    dropout: float = Field(0.2, ge=0, lt=1)
    normalize_input: bool = False  # L2-normalise the image embedding first
    synonym_p: float = Field(0.0, ge=0, le=1)  # P(swap a label for a synonym), training only
    temperature: float | None = Field(None, gt=0)  # ntxent/infonce; None = the loss's default
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # infonce only
    ema_decay: float = Field(0.0, ge=0, lt=1)  # moving average of the weights; 0 = off
    seed: int = 0

    def to_dict(self) -> dict:
        return self.model_dump()

    def but(self, **changes) -> "Recipe":
        """A validated copy with some fields changed."""
        return Recipe(**{**self.model_dump(), **changes})


PAPER_RECIPE = Recipe()


def check_templates(value: str | list[str]) -> str | list[str]:
    """A template name or a non-empty list of names (an ensemble of templates), all known."""
    names = [value] if isinstance(value, str) else value
    unknown = [name for name in names if name not in TEMPLATES]
    if unknown or not names:
        raise ValueError(f"unknown template(s) {unknown or names}; valid: {', '.join(TEMPLATES)}")
    return value


class Candidate(Section):
    """One entry of the selection grid: a recipe (fields not given keep the paper's) and a template."""

    recipe: Recipe = Recipe()
    template: str | list[str] = "bare"

    _templates = field_validator("template")(check_templates)
