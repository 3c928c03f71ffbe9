"""Parameter sections `projector`, `ablate` and `paper_table` (see profiles/default.yaml)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator

from tinyemo.config import Section, register_section
from tinyemo.models import registry
from tinyemo.projector.hyperparameters import Candidate, Recipe, check_templates
from tinyemo.projector.texts import SOURCES, TEMPLATES, check_synonyms

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

    @field_validator("datasets")
    @classmethod
    def _synonyms_apart(cls, value: list[str]) -> list[str]:
        for name in value:  # every cell trains on one dataset
            check_group_synonyms([name])
        return value


def known_datasets() -> tuple[str, ...]:
    """Dataset names a stage may name: the dataset registry's, the paper's and those with features."""
    from tinyemo import feature_store
    from tinyemo.projector.paper_numbers import COLUMNS

    names = set(feature_store.DATASETS) | set(COLUMNS)
    try:
        from tinyemo.datasets import DATASETS
    except ImportError:
        pass
    else:
        names |= set(DATASETS)
    return tuple(sorted(names))


def check_group_synonyms(group: list[str]) -> None:
    """The synonyms of a training group's labels collide with none of its labels (texts.check_synonyms)."""
    from tinyemo.datasets import dataset

    check_synonyms({name: dataset(name).label_names for name in group})


def _check_datasets(names: list[str], what: str) -> list[str]:
    unknown = [name for name in names if name not in known_datasets()]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; valid: {', '.join(known_datasets())}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} {names} name a dataset twice")
    return names


class PaperTableParams(Section):
    """Section `paper_table`: the layout of the paper's Table VIII (notebooks/08_paper_table.py)."""

    train_datasets: list[str] | list[list[str]]  # one training group, or a list of groups
    eval_datasets: list[str] = Field(min_length=1)  # the table's columns (test splits)
    llms: list[str] = []  # a row per LLM: anchors from its input-embedding table
    sources: list[Literal["sentence"]] = []  # other meaningful anchor sources (random is the floor)
    recipes: dict[str, dict] = Field(min_length=1)  # name -> recipe fields (plus `template`)
    seeds: list[int] = Field([0], min_length=1)  # each row trains once per seed: mean ± std
    lr_cv_folds: int = Field(5, ge=2)  # logistic-probe ceiling: C chosen by CV on train

    @field_validator("train_datasets")
    @classmethod
    def _known_train(cls, value: list) -> list:
        groups = [value] if value and isinstance(value[0], str) else value
        if not groups or any(not group for group in groups):
            raise ValueError("train_datasets needs at least one dataset in every group")
        for group in groups:
            _check_datasets(group, "training datasets")
            check_group_synonyms(group)
        return value

    @field_validator("eval_datasets")
    @classmethod
    def _known_eval(cls, value: list[str]) -> list[str]:
        return _check_datasets(value, "evaluation datasets")

    @field_validator("llms")
    @classmethod
    def _known_llms(cls, value: list[str]) -> list[str]:
        for name in value:
            registry.llm_spec(name)
        return value

    @field_validator("recipes")
    @classmethod
    def _valid_recipes(cls, value: dict) -> dict:
        for name, fields in value.items():
            fields = dict(fields)
            try:
                check_templates(fields.pop("template", "bare"))
                Recipe(**fields)
            except ValidationError as err:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
                raise ValueError(f"recipe {name!r}: {problems}") from None
            except ValueError as err:
                raise ValueError(f"recipe {name!r}: {err}") from None
        return value

    def groups(self) -> list[list[str]]:
        """The training groups: each trains its own projector (one vision tower per group)."""
        value = self.train_datasets
        return [list(value)] if isinstance(value[0], str) else [list(group) for group in value]


register_section("projector", ProjectorParams)
register_section("ablate", AblateParams)
register_section("paper_table", PaperTableParams)
