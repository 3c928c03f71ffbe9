"""Parameter sections `projector` and `ablate` (see profiles/default.yaml)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tinyemo.config import Section, register_section
from tinyemo.projector.recipe import Recipe
from tinyemo.projector.texts import SOURCES, TEMPLATES

Source = Literal["llm", "sentence", "random"]
Dataset = Literal["emotion6", "emoscenes"]


def _check_templates(value: str | list[str]) -> str | list[str]:
    names = [value] if isinstance(value, str) else value
    unknown = [name for name in names if name not in TEMPLATES]
    if unknown or not names:
        raise ValueError(f"unknown template(s) {unknown or names}; valid: {', '.join(TEMPLATES)}")
    return value


class ProjectorParams(Section):
    tuned_recipe: Recipe = Recipe(loss="infonce", normalize_input=True)
    tuned_template: str | list[str] = "emotion"  # a template name, or a list (an ensemble)
    anchor_source: Source = "llm"
    seeds: list[int] = Field([0, 1, 2], min_length=1)  # recipes are trained once per seed
    lr_cv_folds: int = Field(5, ge=2)  # logistic regression: C chosen by CV on train
    zeroshot_sources: list[Source] = list(SOURCES)
    zeroshot_group_size: int = Field(2, ge=2)  # labels withheld together in one fold
    tsne_points: int = Field(600, ge=10)  # projected images drawn on the 2-D map

    _templates = field_validator("tuned_template")(_check_templates)


class AblateParams(Section):
    datasets: list[Dataset] = ["emotion6", "emoscenes"]
    seeds: list[int] = Field([0, 1, 2], min_length=1)
    base_recipe: Recipe = Recipe()  # every cell changes one factor of this recipe
    losses: list[Literal["cosine", "ntxent", "infonce"]] = ["cosine", "ntxent", "infonce"]
    templates: list[str] = list(TEMPLATES)
    synonyms: list[bool] = [False, True]
    sources: list[Source] = list(SOURCES)
    widths: list[int] = [256, 576, 1152]

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_templates(name)
        return value


register_section("projector", ProjectorParams)
register_section("ablate", AblateParams)
