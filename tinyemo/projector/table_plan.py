"""What the paper_table stage will train, and about how long that will take, said before it starts.

The stage trains, for every training group (joint: several datasets trained together;
single-dataset: one), every row of the table (an LLM's anchors, another anchor source, the
random floor, each with its recipe), once per seed. A training makes
`epochs x (rows // batch)` optimizer steps over its group's training rows
(`tinyemo.projector.train.steps_per_epoch`). Its speed depends on the feature width, the
anchor width and the recipe (the loss, the synonyms), not on the values: a short warm-up on
random features of each distinct shape (`tinyemo.projector.train.steps_per_second`) measures
the steps per second on this machine, and the estimate is the sum over trainings of
steps / (steps per second). It counts training only: scoring the columns and fitting the
probe come on top. The stage records the plan, the estimate and the measured training time
side by side in its metrics; benchmarks/projector_throughput.py makes the same estimate for
the paper profile's Table VIII from the published dataset sizes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.hyperparameters import Recipe
from tinyemo.projector.train import default_device, steps_per_epoch, steps_per_second

Shape = tuple[int, int, str]  # (feature width, anchor width, recipe without its seed): what speed depends on


@dataclass(frozen=True)
class Group:
    """A training group as the plan sees it: its datasets, training rows and feature width."""

    datasets: tuple[str, ...]
    rows: int
    width: int

    @property
    def kind(self) -> str:
        return "joint" if len(self.datasets) > 1 else "single-dataset"


@dataclass(frozen=True)
class Training:
    """One table row trained on one group, once per seed."""

    group: Group
    row: str  # the row's name in the table
    source: str  # llm | sentence | random
    llm: str
    recipe_name: str
    recipe: Recipe
    anchor_dim: int
    seeds: int

    @property
    def steps(self) -> int:
        """Optimizer steps of one seed's training."""
        return steps_per_epoch(self.group.rows, self.recipe.batch_size) * self.recipe.epochs

    @property
    def shape(self) -> Shape:
        return self.group.width, self.anchor_dim, self.recipe.but(seed=0).model_dump_json()


def plan(groups: Sequence[Group], rows: Sequence, anchor_dim: Callable[[Group, object], int],
         seeds: int) -> list[Training]:
    """Every (group, row) of the table; `rows` are `paper_table.RowSpec`s."""
    return [Training(group, row.name, row.source, row.llm, row.recipe_name, row.recipe, anchor_dim(group, row), seeds)
            for group in groups for row in rows]


def warm_up(trainings: Sequence[Training], anchor_set: Callable[[Training], AnchorSet], *, steps: int = 30,
            device: str | torch.device | None = None) -> dict[Shape, float]:
    """Steps per second of each distinct shape, measured once on the first training that has it."""
    speeds: dict[Shape, float] = {}
    for training in trainings:
        if training.shape not in speeds:
            speeds[training.shape] = steps_per_second(training.group.width, anchor_set(training), training.recipe,
                                                      steps=steps, device=device)
    return speeds


def _rows_in_words(trainings: Sequence[Training]) -> str:
    """E.g. "4 LLMs x 3 recipes + sentence x 3 recipes + random x 1 recipe" (one group's rows)."""
    first = trainings[0].group
    own = [t for t in trainings if t.group == first]
    parts = []
    llms = sorted({t.llm for t in own if t.source == "llm"})
    if llms:
        recipes = len({t.recipe_name for t in own if t.source == "llm"})
        parts.append(f"{len(llms)} LLM{'s' if len(llms) > 1 else ''} ({', '.join(llms)}) x {recipes} recipes")
    for source in dict.fromkeys(t.source for t in own if t.source != "llm"):
        recipes = [t.recipe_name for t in own if t.source == source]
        parts.append(f"{source} x {len(recipes)} recipe{'s' if len(recipes) > 1 else ''}")
    return " + ".join(parts)


def estimate(trainings: Sequence[Training], speeds: Mapping[Shape, float], *,
             device: str | torch.device | None = None) -> dict:
    """The plan in numbers (counts per kind, per group, per source; steps; estimated seconds)."""
    device = torch.device(device) if device is not None else default_device()
    seconds = [t.seeds * t.steps / speeds[t.shape] for t in trainings]
    groups = list(dict.fromkeys(t.group for t in trainings))
    by_group = []
    for group in groups:
        own = [(t, s) for t, s in zip(trainings, seconds) if t.group == group]
        by_group.append({
            "train_datasets": list(group.datasets), "kind": group.kind, "training_rows": group.rows,
            "width": group.width, "table_rows": len(own), "trainings": sum(t.seeds for t, _ in own),
            "steps_per_training": sorted({t.steps for t, _ in own}),
            "steps": sum(t.seeds * t.steps for t, _ in own), "estimated_seconds": sum(s for _, s in own),
        })
    kinds, sources = Counter(), Counter()
    for t in trainings:
        kinds[t.group.kind] += t.seeds
        sources[f"{t.source} ({t.llm})" if t.source == "llm" else t.source] += t.seeds
    return {
        "trainings": sum(t.seeds for t in trainings),
        "by_kind": {kind: kinds.get(kind, 0) for kind in ("joint", "single-dataset")},
        "by_source": dict(sources), "seeds": trainings[0].seeds if trainings else 0,
        "rows_per_group": _rows_in_words(trainings) if trainings else "",
        "groups": by_group,
        "steps": sum(t.seeds * t.steps for t in trainings),
        "steps_per_second": [{"width": w, "anchor_dim": d, "recipe": Recipe.model_validate_json(r).to_dict(),
                              "steps_per_second": v} for (w, d, r), v in speeds.items()],
        "device": device.type, "threads": torch.get_num_threads(),
        "estimated_train_seconds": sum(seconds),
    }


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def describe(summary: dict) -> str:
    """The plan in a few lines, for the log before training starts."""
    kinds = summary["by_kind"]
    lines = [f"planned trainings: {summary['trainings']} (joint {kinds['joint']}, single-dataset "
             f"{kinds['single-dataset']}) = {len(summary['groups'])} training group(s) x rows x "
             f"{summary['seeds']} seed(s)",
             f"  rows per group: {summary['rows_per_group']}"]
    for group in summary["groups"]:
        steps = "/".join(f"{s:,}" for s in group["steps_per_training"])
        lines.append(f"  {'+'.join(group['train_datasets'])} ({group['kind']}, {group['training_rows']:,} rows, "
                     f"{group['width']}-d): {group['trainings']} trainings of {steps} steps, "
                     f"about {_duration(group['estimated_seconds'])}")
    speeds = sorted(s["steps_per_second"] for s in summary["steps_per_second"])
    lines.append(f"estimated training time: {_duration(summary['estimated_train_seconds'])} for "
                 f"{summary['steps']:,} steps on {summary['device']} ({summary['threads']} threads; warm-up: "
                 f"{speeds[0]:.0f}-{speeds[-1]:.0f} steps/s over {len(speeds)} shape(s)); scoring and the probe "
                 "come on top")
    return "\n".join(lines)
