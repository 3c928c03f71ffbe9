"""Ablations: one factor at a time around a reference configuration.

The reference is the paper's configuration (`ablate.base_recipe`, default the paper recipe;
bare label word; no synonyms; LLM input-embedding anchors; hidden width = the anchor width).
Each *cell* varies one factor over its levels, trains once per seed on every dataset's train
split and scores its validation split. Cells are independent: `dvc repro` runs them as the
matrix stage `ablate-cell@<factor>` (`tinyemo ablate-run <factor>`), each writing
`results/ablate/<factor>/metrics.json`; the `ablate` notebook gathers them into a table in
the layout of the paper's Table VIII and bar charts.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from tinyemo import paths
from tinyemo.projector import ABLATION_FACTORS
from tinyemo.projector.anchors import build_anchor_set
from tinyemo.projector.evaluate import top1
from tinyemo.projector.params import AblateParams
from tinyemo.projector.study import load_splits, mean_std
from tinyemo.projector.train import Recipe, threads_per_worker, train_projector

FACTORS = ABLATION_FACTORS
SYNONYM_P = 0.5  # the paper's "3 Syn." swap probability
REFERENCE = {"template": "bare", "synonyms": False, "source": "llm"}


def cell_path(factor: str, results: Path = paths.stage_results("ablate")) -> Path:
    return Path(results) / factor / "metrics.json"


def levels(params: AblateParams, factor: str) -> list:
    table = {"loss": params.losses, "template": params.templates, "synonyms": params.synonyms,
             "source": params.sources, "width": params.widths}
    if factor not in table:
        raise ValueError(f"unknown ablation factor {factor!r}; valid: {', '.join(FACTORS)}")
    return list(table[factor])


def is_reference(factor: str, level, base: Recipe, anchor_dim: int) -> bool:
    if factor == "loss":
        return level == base.loss
    if factor == "width":
        return level == (base.width or anchor_dim)
    return level == REFERENCE[factor]


def configure(factor: str, level, base: Recipe) -> tuple[Recipe, dict]:
    """(recipe, anchor options) of one level of one factor."""
    anchor = {"source": REFERENCE["source"], "template": REFERENCE["template"], "synonyms": False}
    recipe = base
    if factor == "loss":
        recipe = base.but(loss=level)
    elif factor == "template":
        anchor["template"] = level
    elif factor == "synonyms":
        anchor["synonyms"] = bool(level)
        recipe = base.but(synonym_p=SYNONYM_P if level else 0.0)
    elif factor == "source":
        anchor["source"] = level
    elif factor == "width":
        recipe = base.but(width=int(level))
    else:
        raise ValueError(f"unknown ablation factor {factor!r}; valid: {', '.join(FACTORS)}")
    return recipe, anchor


def _score(task: tuple) -> tuple[float, float]:
    """Train one configuration on one seed; (validation top-1, training seconds)."""
    pooled, labels, val_pooled, val_labels, anchor_set, recipe = task
    trained = train_projector(pooled, labels, anchor_set, recipe)
    return top1(trained.model, val_pooled, val_labels, anchor_set.anchors), trained.seconds


def _map(tasks: list[tuple], workers: int) -> list[tuple[float, float]]:
    """Run the tasks inline, or over `workers` processes sharing this process's torch threads."""
    if workers <= 1 or len(tasks) <= 1:
        return [_score(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = threads_per_worker(torch.get_num_threads(), workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        return list(pool.map(_score, tasks))


def run_cell(factor: str, params: AblateParams, llm: str, seed: int = 0, workers: int = 1) -> dict:
    """Every level of one factor x every dataset x every seed: validation top-1."""
    started = time.perf_counter()
    data = {name: load_splits(name) for name in params.datasets}
    base = params.base_recipe
    result = {"factor": factor, "levels": {}, "reference": None}
    keys, tasks = [], []
    for level in levels(params, factor):
        recipe, anchor = configure(factor, level, base)
        for name, splits in data.items():
            train, val = splits["train"], splits["val"]
            anchor_set = build_anchor_set(train.label_names, anchor["source"], anchor["template"],
                                          synonyms=anchor["synonyms"], llm=llm, seed=seed)
            if is_reference(factor, level, base, anchor_set.dim):
                result["reference"] = str(level)
            for run_seed in params.seeds:
                keys.append((str(level), name))
                tasks.append((train.pooled, train.label_ids(), val.pooled, val.label_ids(),
                              anchor_set, recipe.but(seed=run_seed)))
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for key, outcome in zip(keys, _map(tasks, workers)):
        scores.setdefault(key, []).append(outcome)
    for (level, name), outcomes in scores.items():
        result["levels"].setdefault(level, {})[name] = {
            "val_top1": mean_std([top for top, _ in outcomes]),
            "train_seconds": float(np.mean([seconds for _, seconds in outcomes])),
        }
    result["wall_seconds"] = time.perf_counter() - started
    result["workers"] = workers
    return result


def write_cell(result: dict, path: Path | None = None) -> Path:
    path = path or cell_path(result["factor"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def read_cell(factor: str, results: Path = paths.stage_results("ablate")) -> dict | None:
    path = cell_path(factor, results)
    return json.loads(path.read_text()) if path.exists() else None


def sample_std(result: dict) -> float:
    """The sample standard deviation (ddof 1) of a mean ± std result over its seeds' runs:
    with 3 seeds the population value (ddof 0) understates the spread by about 18 %."""
    return mean_std(result["runs"])["std"]


def within_noise(a: dict, b: dict, n_seeds: int) -> bool | None:
    """Whether two mean ± std results differ by less than two standard errors of the
    difference over seeds, from the sample standard deviations (ddof 1) of their runs;
    None with a single seed (no estimate of the noise)."""
    if n_seeds < 2:
        return None
    se = np.sqrt((sample_std(a) ** 2 + sample_std(b) ** 2) / n_seeds)
    return bool(abs(a["mean"] - b["mean"]) < 2 * se)


def table_rows(cells: dict[str, dict], datasets: Sequence[str], n_seeds: int) -> list[list[str]]:
    """Rows `factor | level | per dataset: mean ± std (Δ vs reference, * = beyond seed noise)`;
    std is the sample standard deviation over seeds (ddof 1)."""
    rows = []
    for factor, cell in cells.items():
        reference = cell["levels"].get(cell.get("reference") or "")
        for level, row in cell["levels"].items():
            label = f"{level} (reference)" if level == cell.get("reference") else level
            values = []
            for name in datasets:
                score = row[name]["val_top1"]
                text = f"{100 * score['mean']:.2f} ± {100 * sample_std(score):.2f}"
                if reference is not None and level != cell.get("reference"):
                    delta = 100 * (score["mean"] - reference[name]["val_top1"]["mean"])
                    noise = within_noise(score, reference[name]["val_top1"], n_seeds)
                    text += f" ({delta:+.2f}{'*' if noise is False else ''})"
                values.append(text)
            rows.append([factor, label, *values])
    return rows
