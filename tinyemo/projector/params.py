"""Parameter sections `projector` and `ablate` (see profiles/default.yaml)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tinyemo.config import Section, register_section
from tinyemo.projector.recipe import Candidate, Recipe, check_templates
from tinyemo.projector.texts import SOURCES, TEMPLATES

Source = Literal["llm", "sentence", "random"]
Dataset = Literal["emotion6", "emoscenes"]

PAPER = "paper"  # the candidate that must be in every grid: the paper's recipe, bare labels

DEFAULT_CANDIDATES: dict[str, Candidate] = {
    PAPER: Candidate(),
    "ntxent-emotion": Candidate(recipe=Recipe(loss="ntxent", normalize_input=True), template="emotion"),
    "infonce": Candidate(recipe=Recipe(loss="infonce", normalize_input=True)),
    "infonce-emotion": Candidate(recipe=Recipe(loss="infonce", normalize_input=True), template="emotion"),
}


class ProjectorParams(Section):
    candidates: dict[str, Candidate] = DEFAULT_CANDIDATES  # the grid selection compares
    anchor_source: Source = "llm"
    seeds: list[int] = Field([0, 1, 2], min_length=1)  # the shipped recipe is refitted once per seed
    cv_folds: int = Field(5, ge=2)  # selection: stratified k-fold on the training split only
    cv_repeats: int = Field(2, ge=1)  # ... repeated with reshuffled folds
    test_fraction: float = Field(0.2, gt=0, lt=1)  # carved from train where a dataset has no test split
    lr_cv_folds: int = Field(5, ge=2)  # logistic regression: C by CV inside its training rows
    zeroshot_sources: list[Source] = list(SOURCES)
    zeroshot_group_size: int = Field(2, ge=2)  # labels withheld together in one fold
    tsne_points: int = Field(600, ge=10)  # projected images drawn on the 2-D map

    @field_validator("candidates")
    @classmethod
    def _has_paper(cls, value: dict[str, Candidate]) -> dict[str, Candidate]:
        if PAPER not in value:
            raise ValueError(f"the candidate grid must contain {PAPER!r} (the paper's recipe, the reference "
                             f"every row is compared with); got {', '.join(value) or 'none'}")
        return value


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
            check_templates(name)
        return value



register_section("projector", ProjectorParams)
register_section("ablate", AblateParams)
