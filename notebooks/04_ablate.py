# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Ablations of the Metric Projector
#
# Which of the paper's choices matter? Each factor is varied **one at a time** around the
# paper's configuration (cosine-embedding loss, bare label word, no synonyms, LLM
# input-embedding anchors, hidden width = the LLM's width), on the validation split of
# each dataset (never on test):
#
# | factor | levels |
# |---|---|
# | loss | cosine embedding, NT-Xent (tau 0.07), InfoNCE (tau 0.1, correct form) |
# | grounding template | the bare word and the paper's five templates |
# | "3 Syn." | off / on (label swapped for one of 3 synonyms with p = 0.5, training only) |
# | anchor source | LLM input embeddings, a sentence encoder (all-MiniLM-L6-v2), random unit vectors |
# | width | the MLP's hidden width |
#
# Every level trains once per seed, so each number is a mean ± std over seeds. Under
# `dvc repro` the cells run as the DVC matrix stage `ablate-cell@<factor>` (so
# `dvc metrics show` and `dvc exp show` list every cell); this notebook then gathers them.
# Run on its own, it runs the cells that are missing itself, with the same code.
#
# How to read the differences: `*` marks a difference from the reference that exceeds two
# standard errors of the seed-to-seed variation. Seeds are not the only noise: the
# Emotion6 validation split has 278 images, so a top-1 estimate itself has a sampling
# standard error of about 2.6 points. A difference without `*`, or one smaller than about
# 2-3 points on Emotion6, should not be read as a finding.

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
llm = "smollm2-135m-instruct"
datasets = ["emotion6", "emoscenes"]
seeds = [0, 1, 2]
base_recipe = {}
losses = ["cosine", "ntxent", "infonce"]
templates = ["bare", "image-expressing", "emotion", "scene", "scene-evoking-viewers", "scene-evoking"]
synonyms = [False, True]
sources = ["llm", "sentence", "random"]
widths = [256, 576, 1152]

# %%
import json

import torch
from IPython.display import Image, Markdown, display

from tinyemo import paths
from tinyemo.projector import ablation, figures
from tinyemo.projector.params import AblateParams
from tinyemo.report import markdown_table

torch.set_num_threads(threads)
out = paths.stage_results("ablate")
(out / "figures").mkdir(parents=True, exist_ok=True)
params = AblateParams(datasets=datasets, seeds=seeds, base_recipe=base_recipe, losses=losses,
                      templates=templates, synonyms=synonyms, sources=sources, widths=widths)

# %% [markdown]
# ## The cells

# %%
cells = {}
for factor in ablation.FACTORS:
    cell = ablation.read_cell(factor)
    if cell is None:
        cell = ablation.run_cell(factor, params, llm, seed, workers=threads)
        ablation.write_cell(cell)
    cells[factor] = cell
    print(f"{factor:9s} {len(cell['levels'])} levels, {cell['wall_seconds']:.1f} s")

# %% [markdown]
# ## The table
#
# Validation top-1 (%), mean ± std over seeds, in the layout of the paper's Table VIII
# (one column per dataset); in brackets the difference from the reference level of the
# same factor (`*`: beyond two standard errors of the seed noise).

# %%
header = ["factor", "level", *[f"{name} val top-1" for name in params.datasets]]
table = markdown_table(header, ablation.table_rows(cells, params.datasets, len(params.seeds)))
(out / "table.md").write_text(
    f"Projector ablation, validation top-1 (%), mean ± std over seeds {list(params.seeds)}.\n\n"
    + table + "\n"
)
display(Markdown(table))

# %% [markdown]
# ## Bar charts
#
# One chart per factor: the levels side by side, one bar per dataset, error bars = std over
# seeds. For the anchor sources the dashed line is chance on the first dataset.

# %%
for factor, cell in cells.items():
    groups = {level: {name: (100 * row[name]["val_top1"]["mean"], 100 * row[name]["val_top1"]["std"])
                      for name in params.datasets}
              for level, row in cell["levels"].items()}
    n_labels = {"emotion6": 6, "emoscenes": 8}[params.datasets[0]]
    path = figures.bar_chart(groups, out / "figures" / f"{factor}.png", ylabel="val top-1 (%)",
                             title=f"ablation: {factor}",
                             chance=100 / n_labels if factor == "source" else None)
    display(Image(filename=str(path)))

# %% [markdown]
# ## Summary metrics
#
# Per factor and dataset: the best level, its gain over the reference, and whether that
# gain exceeds the seed noise.

# %%
summary = {"profile": profile, "seeds": list(params.seeds), "datasets": list(params.datasets)}
for factor, cell in cells.items():
    reference = cell["levels"][cell["reference"]] if cell.get("reference") else None
    summary[factor] = {}
    for name in params.datasets:
        best_level = max(cell["levels"], key=lambda level: cell["levels"][level][name]["val_top1"]["mean"])
        best = cell["levels"][best_level][name]["val_top1"]
        entry = {"best_level": best_level, "best_val_top1": best["mean"],
                 "levels": {level: row[name]["val_top1"]["mean"] for level, row in cell["levels"].items()}}
        if reference is not None:
            entry["gain_over_reference"] = best["mean"] - reference[name]["val_top1"]["mean"]
            noise = ablation.within_noise(best, reference[name]["val_top1"], len(params.seeds))
            entry["beyond_seed_noise"] = None if noise is None else (not noise and best_level != cell["reference"])
        summary[factor][name] = entry
(out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
summary
