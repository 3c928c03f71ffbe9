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
# # 04 · The Metric Projector
#
# TinyEmo classifies an image without running its LLM. A small MLP, the **Metric
# Projector**, maps the frozen vision tower's pooled embedding into the LLM's
# *input-embedding* space; each emotion label has an **anchor** there (the mean of the
# token-embedding rows of the label text, BOS included, L2-normalised); the predicted
# emotion is the nearest anchor. This notebook trains it on two datasets:
#
# - **Emotion6**, real photographs as upstream's CLIP ViT-L/14 features (Ekman-6). The
#   model is trained on the carved train split and *selected on the carved validation
#   split*; test numbers appear only when a `test/` folder was provided, and nothing is
#   chosen on them. Upstream selected its models on its test set; we never do.
# - **EmoScenes**, our synthetic scenes encoded by the profile's vision tower (Mikels-8).
#   Its train split carries the planted bias on purpose (the bias stage looks for it with
#   this projector); model choices use val, the report uses test.
#
# Two recipes, side by side, each trained once per seed (mean ± std over seeds):
#
# - **paper recipe**: cosine-embedding loss, 5 epochs, batch 32, AdamW with OneCycle
#   (max lr 5e-4, pct_start 0.005, cosine annealing), the bare label word as anchor text;
# - **tuned recipe**: the changes that helped *on Emotion6 validation* (see the ablation
#   stage for the factor-by-factor evidence): the InfoNCE loss in its correct form
#   (one positive per image, the other labels' anchors as negatives, tau 0.1), the
#   grounding template `{e} emotion`, and L2-normalised input features. Explored on
#   Emotion6 validation only (3-5 seeds each): longer schedules (10-20 epochs), a larger
#   width, other temperatures, label smoothing, weight averaging (EMA), input noise or
#   dropout, synonym swaps and a template ensemble stayed within seed noise of it or below,
#   so they are off (`tinyemo.projector.train.Recipe` keeps them as knobs; the ablation
#   stage re-measures the factors it covers).
#
# Beside them, what a reviewer would try instead, fitted on the same splits: logistic
# regression on L2-normalised features (C by cross-validation on train only) and the
# nearest class centroid.

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
llm = "smollm2-135m-instruct"
tuned_recipe = {"loss": "infonce", "normalize_input": True}
tuned_template = "emotion"
anchor_source = "llm"
seeds = [0, 1, 2]
lr_cv_folds = 5
zeroshot_sources = ["llm", "sentence", "random"]
zeroshot_group_size = 2
tsne_points = 600

# %%
import json

import pandas as pd
import torch
from IPython.display import Image, Markdown, display

from tinyemo import paths
from tinyemo.projector import figures, study
from tinyemo.projector.anchors import build_anchor_set
from tinyemo.projector.artifact import save_projector
from tinyemo.projector.evaluate import project
from tinyemo.projector.train import PAPER_RECIPE, Recipe
from tinyemo.projector.zeroshot import held_out_zeroshot
from tinyemo.report import markdown_table
from tinyemo.taxonomy import EKMAN6

torch.set_num_threads(threads)
out = paths.stage_results("projector")
(out / "figures").mkdir(parents=True, exist_ok=True)
(out / "plots").mkdir(parents=True, exist_ok=True)
tuned = Recipe(**tuned_recipe)
metrics = {"profile": profile, "llm": llm, "anchor_source": anchor_source, "seeds": seeds,
           "paper_recipe": PAPER_RECIPE.to_dict(), "tuned_recipe": tuned.to_dict(),
           "tuned_template": tuned_template}
runs = {}

# %% [markdown]
# ## The anchors
#
# Anchors are read from the LLM's input-embedding table; no forward pass. Their cosine
# similarities show how much room the projector has: input embeddings of emotion words
# are far from orthogonal (they share the BOS row and much of their direction), so the
# projector has to separate classes inside a narrow cone.

# %%
ekman = build_anchor_set(EKMAN6, anchor_source, "bare", llm=llm)
pd.DataFrame((ekman.anchors @ ekman.anchors.T).numpy(), index=ekman.label_names,
             columns=ekman.label_names).round(2)

# %% [markdown]
# ## Training and evaluation, per dataset
#
# For each dataset: the paper and tuned recipes (once per seed), the baselines, and the
# evaluation of every recipe on every held-out split. The first seed's tuned model is
# saved as `models/projector/<dataset>/` (weights and anchors as safetensors, a JSON
# config naming the vision tower and LLM whose spaces it joins).

# %%
for dataset in ("emotion6", "emoscenes"):
    splits = study.load_splits(dataset)
    label_names = splits["train"].label_names
    anchors = {
        "paper": build_anchor_set(label_names, anchor_source, "bare", llm=llm),
        "tuned": build_anchor_set(label_names, anchor_source, tuned_template, llm=llm,
                                  synonyms=tuned.synonym_p > 0),
    }
    paper = study.run_recipe("paper", splits, anchors["paper"], PAPER_RECIPE, seeds, "bare")
    best = study.run_recipe("tuned", splits, anchors["tuned"], tuned, seeds, tuned_template)
    runs[dataset] = {"paper": paper, "tuned": best, "anchors": anchors, "splits": splits}
    metrics[dataset] = {
        "vision_tower": study.vision_tower_of(splits["train"]),
        "n": {split: len(features) for split, features in splits.items()},
        "paper_recipe": paper.summary(),
        "tuned_recipe": best.summary(),
        **study.run_baselines(splits, lr_cv_folds, seed),
    }
    result, evaluations = best.first()
    save_projector(paths.MODELS / "projector" / dataset, result.model, anchors["tuned"].anchors,
                   label_names, {
                       "dataset": dataset, "vision_tower": metrics[dataset]["vision_tower"],
                       "llm": llm, "anchor_source": anchor_source, "template": tuned_template,
                       "recipe": tuned.but(seed=seeds[0]).to_dict(),
                       "top1": {split: e.top1 for split, e in evaluations.items()},
                   })
    print(dataset, "saved; val top-1 of the saved model:", round(evaluations["val"].top1, 4))

# %% [markdown]
# ## Results
#
# Top-1 (mean ± std over seeds for the projector recipes). The reporting split is
# validation for Emotion6 (test only if provided) and test for EmoScenes.

# %%
def cell(summary: dict, split: str) -> str:
    if split not in summary:
        return "-"
    top1 = summary[split]["top1"]
    return f"{100 * top1['mean']:.2f} ± {100 * top1['std']:.2f}" if isinstance(top1, dict) else f"{100 * top1:.2f}"


rows = []
for dataset in runs:
    m = metrics[dataset]
    for name in ("paper_recipe", "tuned_recipe", "logistic_regression", "nearest_centroid"):
        seconds = m[name]["train_seconds"]["mean"] if "train_seconds" in m[name] else m[name]["fit_seconds"]
        rows.append({"dataset": dataset, "model": name.replace("_", " "),
                     **{split: cell(m[name], split) for split in ("val", "test")},
                     "train/fit seconds": round(seconds, 2)})
results_md = markdown_table(list(rows[0]), [list(row.values()) for row in rows])
(out / "results.md").write_text(results_md + "\n")
display(Markdown(results_md))

# %% [markdown]
# Per-class accuracy and mean distance to the nearest anchor of the saved (first-seed)
# tuned models on their reporting split. The distance is between unit vectors
# (`sqrt(2 - 2 cos)`): a projected image never sits *on* its anchor, because the anchors
# share much of their direction.

# %%
report_split = {"emotion6": "test" if "test" in runs["emotion6"]["splits"] else "val", "emoscenes": "test"}
for dataset, split in report_split.items():
    _, evaluations = runs[dataset]["tuned"].first()
    evaluation = evaluations[split]
    metrics[dataset]["tuned_recipe"]["report_split"] = split
    metrics[dataset]["tuned_recipe"]["per_class"] = evaluation.per_class
    metrics[dataset]["tuned_recipe"]["mean_nearest_distance"] = evaluation.mean_nearest_distance
    pd.DataFrame(evaluation.confusion_records()).to_csv(out / "plots" / f"{dataset}_confusion.csv", index=False)
    display(Image(filename=str(figures.confusion_heatmap(
        evaluation.confusion, evaluation.label_names, out / "figures" / f"{dataset}_confusion.png",
        f"{dataset} {split}: tuned projector (top-1 {evaluation.top1:.1%})"))))
pd.DataFrame({d: metrics[d]["tuned_recipe"]["per_class"] for d in report_split}).round(3)

# %% [markdown]
# ## Accuracy per epoch
#
# Validation top-1 after each epoch (first seed). Both recipes converge within five epochs;
# longer schedules only overfit these small training sets.

# %%
for dataset in runs:
    histories = {name: runs[dataset][name].runs[0].history for name in ("paper", "tuned")}
    for name, history in histories.items():
        pd.DataFrame(history).to_csv(out / "plots" / f"{dataset}_{name}_history.csv", index=False)
    display(Image(filename=str(figures.epoch_curves(
        histories, out / "figures" / f"{dataset}_accuracy_per_epoch.png", title=f"{dataset}: validation top-1"))))

# %% [markdown]
# ## The map
#
# A t-SNE of projected validation images (dots) and the anchors (stars). Images of one
# emotion gather around a region; the anchor of their label should sit closest to it.

# %%
for dataset in runs:
    splits, anchors = runs[dataset]["splits"], runs[dataset]["anchors"]["tuned"]
    model = runs[dataset]["tuned"].runs[0].model
    display(Image(filename=str(figures.embedding_map(
        project(model, splits["val"].pooled), splits["val"].label_ids(), anchors.anchors,
        anchors.label_names, out / "figures" / f"{dataset}_tsne.png", max_points=tsne_points,
        seed=seed, title=f"{dataset} val: projected images and anchors (t-SNE)"))))

# %% [markdown]
# ## Held-out-label zero-shot
#
# The paper claims the LLM's embedding space transfers across taxonomies. In miniature:
# withhold a group of labels, train on the others, and ask whether images of the withheld
# emotions land nearest their own never-trained anchors (`held_out_top1`, chance =
# 1/group size), and among all labels (`all_labels_top1`, a much harder test: training
# pulls every image towards the seen anchors). Train and validation images are both
# used (no test images); the tuned recipe and template are used for every anchor source.
# Random anchors carry no meaning and are the control: they must sit at chance.

# %%
zeroshot_rows = []
for dataset in runs:
    splits = runs[dataset]["splits"]
    pooled = torch.cat([splits["train"].pooled, splits["val"].pooled])
    labels = torch.cat([splits["train"].label_ids(), splits["val"].label_ids()])
    metrics[dataset]["zeroshot"] = {}
    for source in zeroshot_sources:
        anchor_set = build_anchor_set(splits["train"].label_names, source, tuned_template, llm=llm, seed=seed)
        result = held_out_zeroshot(pooled, labels, anchor_set, tuned.but(seed=seed),
                                   group_size=zeroshot_group_size, seed=seed)
        metrics[dataset]["zeroshot"][source] = {k: v for k, v in result.items() if k != "folds"}
        zeroshot_rows.append({"dataset": dataset, "anchors": source,
                              **{k: round(v, 3) for k, v in result.items() if k != "folds"}})
zeroshot_md = markdown_table(list(zeroshot_rows[0]), [list(row.values()) for row in zeroshot_rows])
(out / "zeroshot.md").write_text(zeroshot_md + "\n")
display(Markdown(zeroshot_md))

# %%
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
display(Markdown(results_md))
