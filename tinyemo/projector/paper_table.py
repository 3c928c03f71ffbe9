"""The `paper_table` stage: the paper's Table VIII, recomputed (notebooks/08_paper_table.py).

Rows are anchor sources x recipes: one row per LLM (anchors from its input-embedding table,
`tinyemo.models.embedding_table` for hub models), per other meaningful source (a sentence encoder),
and per recipe of `paper_table.recipes`. Columns are the evaluation datasets with their class
counts. For each training group (datasets trained on together; one vision tower per group),
each row trains a projector jointly (`tinyemo.projector.joint`) once per seed and scores every
evaluation dataset of the same feature width on its `test` split, among that dataset's own
labels. A column is in-domain when its dataset is in the training group.

In the same run, a ceiling and a floor:
- ceiling: a logistic probe fitted on each in-domain dataset's training features (C chosen by
  cross-validation on them, on the accelerator when there is one), scored on its test split:
  what a linear read-out of the same features achieves with labels;
- floor: random anchors (a fixed random unit vector per label text) with the first recipe.
  In-domain, random anchors still learn (any distinct targets can be fitted): the floor says
  what the anchors' *meaning* adds. Zero-shot, they sit at chance.

Where a dataset has no `test` split, it is scored on `val` and the column says so.

Before training, the stage prints its plan: how many trainings of each kind (joint,
single-dataset; rows x seeds), how many steps, and the time they should take from a short
warm-up (`tinyemo.projector.table_plan`); the metrics record it beside the measured time.
Every (dataset, split) is loaded once and shared by the groups that use it; the probe's C is
searched once per dataset (`tinyemo.projector.logistic.searched`), however many groups train on it.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from tinyemo.feature_store import FeatureError, FeatureSet, available_splits, load_features
from tinyemo.projector import baselines, released, table_plan
from tinyemo.projector.anchors import AnchorSet, build_anchor_set
from tinyemo.projector.evaluate import score
from tinyemo.projector.joint import (
    check_widths, leaked_columns, train_joint, union_labels, validation_scores, zero_shot,
)
from tinyemo.projector.hyperparameters import Recipe
from tinyemo.projector.paper_numbers import CITATION, PUBLISHED, column_title, published_for
from tinyemo.projector.params import PaperTableParams
from tinyemo.projector.study import mean_std
from tinyemo.report import markdown_table

Loader = Callable[[str, str], FeatureSet]
PROBE_ROW = "logistic probe (ceiling)"
FLOOR_SOURCE = "random"


@dataclass(frozen=True)
class RowSpec:
    """One row of the table: an anchor source (and LLM) with a recipe and a template."""

    source: str  # llm | sentence | random
    llm: str  # the LLM whose table gives the anchors (random: whose width they take)
    recipe_name: str
    recipe: Recipe
    template: str | tuple[str, ...] = "bare"

    @property
    def name(self) -> str:
        anchors = {"llm": self.llm, "sentence": "MiniLM (sentence)", "random": "random anchors (floor)"}
        return f"{anchors[self.source]} · {self.recipe_name}"

    @property
    def synonyms(self) -> bool:
        return self.recipe.synonym_p > 0


def resolve_recipes(recipes: dict) -> dict[str, tuple[Recipe, str | tuple[str, ...]]]:
    """name -> (recipe, template) from the section's recipe fields (plus `template`)."""
    out = {}
    for name, fields in recipes.items():
        fields = dict(fields)
        template = fields.pop("template", "bare")
        out[name] = (Recipe(**fields), template if isinstance(template, str) else tuple(template))
    return out


def plan_rows(params: PaperTableParams, base_llm: str) -> list[RowSpec]:
    """LLM rows and other-source rows for every recipe, then the random floor (first recipe)."""
    recipes = resolve_recipes(params.recipes)
    rows = [RowSpec("llm", llm, name, recipe, template)
            for llm in params.llms for name, (recipe, template) in recipes.items()]
    rows += [RowSpec(source, base_llm, name, recipe, template)
             for source in params.sources for name, (recipe, template) in recipes.items()]
    first, (recipe, template) = next(iter(recipes.items()))
    rows.append(RowSpec(FLOOR_SOURCE, base_llm, first, recipe, template))
    return rows


# --------------------------------------------------------------------------- computing
@dataclass
class Inputs:
    """The features a training group needs: its train/val splits and the columns it can score."""

    train: dict[str, FeatureSet]
    val: dict[str, FeatureSet]
    tests: dict[str, FeatureSet]
    test_split: dict[str, str]  # dataset -> split scored ("test", or "val" when there is no test)
    skipped: dict[str, str] = field(default_factory=dict)  # dataset -> why it is not scored


@dataclass
class FeatureSource:
    """Where the features come from: `load(dataset, split)` and `splits(dataset)` (the splits
    present). The default reads the cached features; tests pass feature sets directly."""

    load: Loader = load_features
    splits: Callable[[str], list[str]] = available_splits

    @classmethod
    def from_sets(cls, sets: dict[tuple[str, str], FeatureSet]) -> "FeatureSource":
        def load(dataset: str, split: str) -> FeatureSet:
            if (dataset, split) not in sets:
                raise FeatureError(f"no {split} features for {dataset} among the given feature sets")
            return sets[dataset, split]

        return cls(load, lambda dataset: [split for (name, split) in sets if name == dataset])

    def remembered(self) -> "FeatureSource":
        """The same source, each (dataset, split) loaded once: groups share their datasets' features."""
        return FeatureSource(functools.cache(self.load), self.splits)


def load_evaluation(eval_datasets: Sequence[str], source: FeatureSource) -> tuple[dict, dict]:
    """Every column's features (test split, else val) and which split each one is."""
    tests, splits = {}, {}
    for name in eval_datasets:
        present = source.splits(name)
        splits[name] = "test" if "test" in present or "val" not in present else "val"
        tests[name] = source.load(name, splits[name])
    return tests, splits


def group_inputs(group: Sequence[str], tests: dict, splits: dict, source: FeatureSource) -> Inputs:
    train = {name: source.load(name, "train") for name in group}
    width = check_widths(train)
    val = {name: source.load(name, "val") for name in group if "val" in source.splits(name)}
    scored = {name: f for name, f in tests.items() if f.dim == width}
    skipped = {name: f"features are {f.dim}-d, the group's are {width}-d (another vision tower)"
               for name, f in tests.items() if f.dim != width}
    return Inputs(train, val, scored, {name: splits[name] for name in scored}, skipped)


def row_anchors(row: RowSpec, inputs: Inputs, anchor_seed: int) -> AnchorSet:
    """The row's anchors over every label the group trains on or scores."""
    labels = union_labels([f.label_names for f in (*inputs.train.values(), *inputs.tests.values())])
    return build_anchor_set(labels, row.source, list(row.template) if isinstance(row.template, tuple)
                            else row.template, synonyms=row.synonyms, llm=row.llm, seed=anchor_seed)


def run_row(row: RowSpec, inputs: Inputs, seeds: Sequence[int], anchors: AnchorSet) -> dict:
    """One row on one training group: per column top-1 mean ± std over seeds, val top-1."""
    per_seed, val_scores, seconds = [], [], []
    for seed in seeds:
        result = train_joint(inputs.train, anchors, row.recipe.but(seed=seed), val=inputs.val or None)
        per_seed.append(zero_shot(result.model, anchors, inputs.tests, list(inputs.train)))
        if inputs.val:
            by_dataset = validation_scores(result.model, anchors, inputs.val)
            val_scores.append(float(np.mean(list(by_dataset.values()))))
        seconds.append(result.seconds)
    cells = {}
    for name in inputs.tests:
        first = per_seed[0][name]
        cells[name] = {**{k: first[k] for k in ("n", "n_classes", "in_domain", "shares_images_with_training")},
                       "split": inputs.test_split[name],
                       "top1": mean_std([scores[name]["top1"] for scores in per_seed])}
    return {"cells": cells, "val_top1": mean_std(val_scores) if val_scores else None,
            "train_seconds": mean_std(seconds)}


def run_probe(inputs: Inputs, folds: int, seed: int) -> dict:
    """The ceiling: a logistic probe per in-domain dataset, fitted on its own training features."""
    cells = {}
    for name, train in inputs.train.items():
        if name not in inputs.tests:
            continue
        smallest = int(np.bincount(train.label_ids().numpy()).min())
        k = min(folds, smallest)
        if k < 2:
            cells[name] = {"skipped": f"a class has {smallest} training image(s): too few for CV"}
            continue
        probe = baselines.logistic_regression(train.pooled, train.label_ids(), folds=k, seed=seed)
        test = inputs.tests[name]
        if test.label_names != train.label_names:
            raise FeatureError(f"{name}: the train and {inputs.test_split[name]} label sets differ "
                               f"({train.label_names} vs {test.label_names}); re-encode the dataset")
        evaluation = score(test.label_ids(), probe.predict(test.pooled), test.label_names)
        cells[name] = {"top1": mean_std([evaluation.top1]), "n": len(test),
                       "n_classes": len(test.label_names), "in_domain": True,
                       "split": inputs.test_split[name], "C": probe.details["C"], "cv_folds": k}
    return {"cells": cells}


def plan_trainings(params: PaperTableParams, rows: Sequence[RowSpec], per_group: Sequence[Inputs],
                   anchors: Sequence[dict[str, AnchorSet]]) -> dict:
    """The planned trainings and their estimated time (a warm-up per shape), printed and returned."""
    groups = [table_plan.Group(tuple(group), sum(len(f) for f in inputs.train.values()),
                               next(iter(inputs.train.values())).dim)
              for group, inputs in zip(params.groups(), per_group)]
    anchors_of = dict(zip(groups, anchors))
    trainings = table_plan.plan(groups, rows, lambda group, row: anchors_of[group][row.name].dim, len(params.seeds))
    speeds = table_plan.warm_up(trainings, lambda training: anchors_of[training.group][training.row])
    summary = table_plan.estimate(trainings, speeds)
    print(table_plan.describe(summary), flush=True)
    return summary


def run_group(group: Sequence[str], inputs: Inputs, rows: Sequence[RowSpec], anchors: dict[str, AnchorSet],
              params: PaperTableParams, seed: int) -> dict:
    """Every row trained on one group (anchors by row name), and the group's probe."""
    results = {}
    for row in tqdm(rows, desc=f"rows, trained on {'+'.join(group)}", mininterval=10):
        results[row.name] = {"source": row.source, "llm": row.llm, "recipe": row.recipe_name,
                             "template": row.template if isinstance(row.template, str) else list(row.template),
                             **run_row(row, inputs, params.seeds, anchors[row.name])}
    return {
        "train_datasets": list(group), "val_datasets": list(inputs.val),
        "width": next(iter(inputs.train.values())).dim,
        "columns": list(inputs.tests), "skipped_columns": inputs.skipped,
        "leaked_columns": leaked_columns(group, list(inputs.tests)),
        "rows": results, "probe": run_probe(inputs, params.lr_cv_folds, seed),
    }


def compute(params: PaperTableParams, *, base_llm: str, seed: int = 0,
            source: FeatureSource = FeatureSource()) -> dict:
    """Every cell of the table (the stage's metrics): groups x rows x columns, probe, notes;
    and the plan, with its estimated and measured training time."""
    started = time.perf_counter()
    rows = plan_rows(params, base_llm)
    source = source.remembered()
    tests, splits = load_evaluation(params.eval_datasets, source)
    per_group = [group_inputs(group, tests, splits, source) for group in params.groups()]
    anchors = [{row.name: row_anchors(row, inputs, seed) for row in rows} for inputs in per_group]
    plan = plan_trainings(params, rows, per_group, anchors)
    groups = [run_group(group, inputs, rows, group_anchors, params, seed)
              for group, inputs, group_anchors in zip(params.groups(), per_group, anchors)]
    plan["measured_train_seconds"] = sum(sum(row["train_seconds"]["runs"])
                                         for group in groups for row in group["rows"].values())
    table, row_info = merge_groups(groups, params.eval_datasets)
    return {
        "selected_on_val": {"+".join(g["train_datasets"]): select_on_validation(g) for g in groups},
        "eval_datasets": list(params.eval_datasets),
        "n_classes": {name: len(f.label_names) for name, f in tests.items()},
        "eval_split": splits, "seeds": list(params.seeds), "rows": [row.name for row in rows],
        "groups": groups, "table": table, "row_info": row_info, "plan": plan,
        "released": released.score_released(tests, splits),
        "wall_seconds": time.perf_counter() - started,
    }


def select_on_validation(group: dict) -> str | None:
    """The row a reader may pick for a group: the best mean top-1 on the training datasets' own
    val splits (never on a zero-shot column). None without validation splits."""
    scored = {name: row["val_top1"]["mean"] for name, row in group["rows"].items() if row["val_top1"]}
    return max(scored, key=scored.get) if scored else None


PROBE_INFO = {"source": "probe", "llm": "", "recipe": "logistic regression"}


def merge_groups(groups: list[dict], eval_datasets: Sequence[str]) -> tuple[dict, dict]:
    """(table, row info): display row -> dataset -> cell, and display row -> what it is.

    When no two groups score the same column (e.g. one group per vision tower), each row's
    cells come from the group that scores the column. Otherwise every group gets its own rows,
    named `... · trained on A+B` (e.g. joint and single-dataset training side by side).
    """
    shared = any(set(a["columns"]) & set(b["columns"]) for i, a in enumerate(groups) for b in groups[i + 1:])
    table: dict[str, dict] = {}
    info: dict[str, dict] = {}
    for group in groups:
        suffix = f" · trained on {'+'.join(group['train_datasets'])}" if shared else ""
        for name, row in [*group["rows"].items(), (PROBE_ROW, group["probe"])]:
            display = name + suffix
            info[display] = {key: row[key] for key in ("source", "llm", "recipe")} if name != PROBE_ROW \
                else dict(PROBE_INFO)
            for dataset in eval_datasets:
                if dataset in row["cells"]:
                    table.setdefault(display, {})[dataset] = {
                        **row["cells"][dataset], "group": group["train_datasets"],
                        "leaked": dataset in group["leaked_columns"]}
    return table, info


# --------------------------------------------------------------------------- rendering
def _percent(cell: dict | None) -> str:
    if not cell or "top1" not in cell:
        return "—"
    top1 = cell["top1"]
    text = f"{100 * top1['mean']:.2f}"
    return text + (f" ± {100 * top1['std']:.2f}" if len(top1["runs"]) > 1 else "")


def column_header(metrics: dict, dataset: str) -> str:
    title = column_title(dataset, metrics["n_classes"][dataset])
    cells = [row[dataset] for row in metrics["table"].values() if dataset in row]
    marks = []
    if any(c.get("in_domain") for c in cells):
        marks.append("in-domain")
    if any(c.get("leaked") for c in cells):
        marks.append("shares images with training")
    if metrics["eval_split"][dataset] != "test":
        marks.append(f"{metrics['eval_split'][dataset]} split")
    return title + (f" [{', '.join(marks)}]" if marks else "")


def _published(info: dict) -> tuple[str, dict[str, float]] | None:
    """The paper's row for an LLM-anchor row of ours (same LLM), else None."""
    return published_for(info["llm"]) if info["source"] == "llm" else None


def table_rows(metrics: dict) -> list[list[str]]:
    """Our rows (with the paper's number and the delta where the paper used the same LLM)."""
    datasets = [d for d in metrics["eval_datasets"] if d in metrics["n_classes"]]
    out = []
    for name, cells in metrics["table"].items():
        published = _published(metrics["row_info"][name])
        line = [name]
        for dataset in datasets:
            text = _percent(cells.get(dataset))
            if published and dataset in published[1] and "top1" in cells.get(dataset, {}):
                paper = published[1][dataset]
                delta = 100 * cells[dataset]["top1"]["mean"] - paper
                text += f" (paper {paper:.2f}, Δ {delta:+.2f})"
            line.append(text)
        out.append(line)
    return out


def render_markdown(metrics: dict) -> str:
    datasets = [d for d in metrics["eval_datasets"] if d in metrics["n_classes"]]
    header = ["row (anchors · recipe)", *[column_header(metrics, d) for d in datasets]]
    ours = markdown_table(header, table_rows(metrics))
    paper_header = ["published (paper)", *[column_title(d, metrics["n_classes"][d]) for d in datasets]]
    paper_rows = [[f"{model} ({row['recipe']})", *[f"{row['top1'][d]:.2f}" if d in row["top1"] else "—"
                                                    for d in datasets]]
                  for model, row in PUBLISHED.items()]
    groups = "; ".join(f"{'+'.join(g['train_datasets'])} ({g['width']}-d) -> {', '.join(g['columns'])}"
                       for g in metrics["groups"])
    notes = [
        "Top-1 (%) on each dataset's test split (val where a column says so), nearest anchor among "
        f"that dataset's own labels; mean ± std over seeds {metrics['seeds']}.",
        f"Training groups (features, columns scored): {groups}.",
        "In-domain columns are trained on; the others are zero-shot. Validation (the training "
        "datasets' own val splits) is the only split a choice among rows may use; upstream "
        "selected on UnbiasedEmo, which it also reports as a zero-shot column.",
        "Emotion6 and EmotionROI share their 1,980 images: training on one and scoring the other "
        "is not zero-shot (such columns are marked `shares images with training`).",
        "The ceiling is a logistic probe fitted on each in-domain dataset's training features; "
        "the floor uses random anchors (in-domain they still fit; zero-shot they sit at chance).",
    ]
    chosen = "; ".join(f"trained on {group}: {row}" for group, row in metrics["selected_on_val"].items() if row)
    if chosen:
        notes.append(f"The row validation would choose (best mean val top-1 of the training datasets): {chosen}.")
    if any(split != "test" for split in metrics["eval_split"].values()):
        notes.append("A column marked `val split` has no test split here: it is scored on val, "
                     "so it is not held out from the choice of row made on validation.")
    return ("# Table VIII, recomputed\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n" + ours
            + "\n" + released.render_markdown(metrics.get("released"))
            + "\nThe paper's published numbers (" + CITATION + "):\n\n"
            + markdown_table(paper_header, paper_rows) + "\n")


def render_csv(metrics: dict) -> str:
    """One line per cell: row, anchors, recipe, dataset, classes, flags, ours, paper, delta."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "source", "llm", "recipe", "dataset", "n_classes", "split", "in_domain",
                     "shares_images_with_training", "trained_on", "top1_mean", "top1_std", "paper_top1", "delta"])
    for name, cells in metrics["table"].items():
        info = metrics["row_info"][name]
        published = _published(info)
        for dataset, cell in cells.items():
            if "top1" not in cell:
                continue
            ours = 100 * cell["top1"]["mean"]
            paper = published[1].get(dataset) if published else None
            writer.writerow([name, info["source"], info["llm"], info["recipe"], dataset, cell["n_classes"],
                             cell["split"], cell["in_domain"], cell.get("leaked", False), "+".join(cell["group"]),
                             f"{ours:.4f}", f"{100 * cell['top1']['std']:.4f}",
                             "" if paper is None else f"{paper:.2f}",
                             "" if paper is None else f"{ours - paper:.4f}"])
    return buffer.getvalue()


def heatmap(metrics: dict, path: Path) -> Path:
    """Top-1 per row x dataset; in-domain columns marked with `*` in their label."""
    from tinyemo.figures import pyplot, save_figure

    datasets = [d for d in metrics["eval_datasets"] if d in metrics["n_classes"]]
    names = list(metrics["table"])
    values = np.full((len(names), len(datasets)), np.nan)
    for i, name in enumerate(names):
        for j, dataset in enumerate(datasets):
            cell = metrics["table"][name].get(dataset, {})
            if "top1" in cell:
                values[i, j] = 100 * cell["top1"]["mean"]
    in_domain = {d for row in metrics["table"].values() for d, c in row.items() if c.get("in_domain")}
    fig, ax = pyplot().subplots(figsize=(4.5 + 1.1 * len(datasets), 1.6 + 0.45 * len(names)))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 60 else "black")
    ax.set_xticks(range(len(datasets)),
                  [column_title(d, metrics["n_classes"][d]) + (" *" if d in in_domain else "") for d in datasets],
                  rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title("top-1 (%); * = in-domain column", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04)
    return save_figure(fig, path)


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a crash never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def write_outputs(metrics: dict, out: Path) -> dict[str, Path]:
    """table.md, table.csv, figures/top1_heatmap.png and metrics.json under `out`."""
    out = Path(out)
    paths = {"table": out / "table.md", "csv": out / "table.csv", "metrics": out / "metrics.json"}
    _write(paths["table"], render_markdown(metrics))
    _write(paths["csv"], render_csv(metrics))
    paths["figure"] = heatmap(metrics, out / "figures" / "top1_heatmap.png")
    _write(paths["metrics"], json.dumps(metrics, indent=2) + "\n")
    return paths
