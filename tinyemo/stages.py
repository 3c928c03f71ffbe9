"""The pipeline's stages: which notebook runs each and which parameter sections it reads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyemo import paths


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str  # jupytext percent-format source under notebooks/
    section: str | None  # its own params.yaml section; every key must be a notebook parameter
    # keys of other sections it also reads ("section.key"), passed as the parameter `key`
    reads: tuple[str, ...] = ()

    @property
    def source(self) -> Path:
        return paths.NOTEBOOKS / self.notebook

    @property
    def results(self) -> Path:
        return paths.stage_results(self.name)


# In an order that respects dvc.yaml's dependencies (the smoke tests run them in this order).
STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("assets", "00_assets.py", "assets"),
        Stage("synthesize", "01_synthesize.py", "synthesize"),
        Stage("features", "02_features.py", None),
        Stage("projector", "03_projector.py", "projector"),
        Stage("ablate", "04_ablate.py", "ablate"),
        Stage("pretrain", "05_pretrain.py", "pretrain"),
        Stage("finetune", "06_finetune.py", "finetune"),
        Stage("bias", "07_bias.py", "bias", reads=("synthesize.planted_biases", "synthesize.image_size")),
        Stage("paper_table", "08_paper_table.py", "paper_table"),
        Stage("report", "09_report.py", None),
    )
}


def stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES)}") from None


# Stages that run a command instead of a notebook (dvc.yaml): `fetch-emotion6`, then `encode`
# once per dataset of `encode.datasets`. They come before this notebook stage, the first
# that reads data/features.
COMMANDS_BEFORE = "features"


def command_lines(params: dict) -> list[list[str]]:
    """The `tinyemo` arguments of those command stages for a rendered params tree, in order."""
    from tinyemo import emotion6

    datasets = params["encode"]["datasets"]
    fetch = [["fetch-emotion6"]] if any(Path(d["root"]) == emotion6.FETCHED for d in datasets.values()) else []
    return fetch + [["encode", name] for name in datasets]
