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
# # 03 · The Metric Projector
#
# TinyEmo classifies an image without running its LLM. A small MLP, the **Metric
# Projector**, maps the frozen vision tower's pooled embedding into the LLM's
# *input-embedding* space; each emotion label has an **anchor** there (the mean of the
# token-embedding rows of the label text, L2-normalised; which tokens: see below); the predicted
# emotion is the nearest anchor. This notebook trains it on two datasets:
#
# - **Emotion6**, real photographs as upstream's CLIP ViT-L/14 features (Ekman-6);
# - **EmoScenes**, our synthetic scenes encoded by the profile's vision tower (Mikels-8).
#   Its train split carries the planted bias on purpose (the bias stage looks for it with
#   this projector); its val and test splits do not.
#
# ## The protocol: choose on folds of train, judge on data nobody saw
#
# An earlier version of this stage chose its "tuned" recipe on one validation split of
# 278 Emotion6 images. There, the tuned projector beat a logistic probe by 4.7 points; on
# Emotion6 images held out from everything, it scored 1.5 points *below* the same probe.
# With 278 images one standard error of a top-1 is about 2.6 points, and trying a dozen
# recipes on the same 278 images picks the one that was luckiest on them: the choice
# overfits the validation split and does not transfer.
#
# So, per dataset:
#
# 1. **Held out first.** Every split other than `train` is set aside before anything else:
#    the dataset's `test` (for Emotion6, whose sample has only `train/`, a seeded 20 %
#    stratified test split is carved from train in `tinyemo.projector.selection`) and
#    `val` where it exists. Neither the projector nor its selection ever sees them.
# 2. **Selection by repeated stratified k-fold cross-validation on train.** Every
#    candidate recipe of a small grid (the paper's recipe first) is trained on k-1 folds
#    and scored on the k-th, for several reshuffles of the folds; every training row is
#    scored once per repeat, so the estimate rests on all of train rather than on 278
#    images. The logistic probe and the nearest centroid are scored on the same folds.
#    The highest mean wins; its seed ensemble (the normalised mean of the seeds' unit
#    projections) is scored on the same folds and shipped only if it measures better.
# 3. **Refit on all of train** for the shipped artifact `models/projector/<dataset>/`.
# 4. **One held-out comparison in the same run**: the shipped projector, the paper recipe
#    refitted the same way, the logistic probe (a ceiling-ish reference: a linear
#    classifier fitted to the labels directly), the nearest class centroid (the floor) and
#    the shipped recipe trained against *random* anchors (a control for the anchors'
#    meaning), all fitted on the same training rows.
#
# Fold scores are reported as mean ± standard error over folds x repeats. Folds share
# training rows, so that standard error is on the optimistic side; the paired difference
# to the paper recipe on the same folds ("vs paper") is the sharper comparison.

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
llm = "smollm2-135m-instruct"
candidates = {
    "paper": {"recipe": {}, "template": "bare"},
    "ntxent-emotion": {"recipe": {"loss": "ntxent", "normalize_input": True}, "template": "emotion"},
    "infonce": {"recipe": {"loss": "infonce", "normalize_input": True}, "template": "bare"},
    "infonce-emotion": {"recipe": {"loss": "infonce", "normalize_input": True}, "template": "emotion"},
}
anchor_source = "llm"
seeds = [0, 1, 2]
cv_folds = 5
cv_repeats = 2
test_fraction = 0.2
lr_cv_folds = 5
zeroshot_sources = ["llm", "sentence", "random"]
zeroshot_group_size = 2
tsne_points = 600

# %%
import json
import time

import pandas as pd
import torch
from IPython.display import Image, Markdown, display

from tinyemo import paths
from tinyemo.projector import figures, selection, study
from tinyemo.projector.anchors import AS_TOKENIZED, WITH_BOS, anchor_tokens, build_anchor_set, text_encoder
from tinyemo.projector.artifact import save_projector
from tinyemo.projector.evaluate import evaluate_projector, project
from tinyemo.projector.hyperparameters import Candidate
from tinyemo.projector.train import train_projector
from tinyemo.projector.zeroshot import held_out_zeroshot
from tinyemo.report import markdown_table
from tinyemo.taxonomy import EKMAN6

torch.set_num_threads(threads)
out = paths.stage_results("projector")
(out / "figures").mkdir(parents=True, exist_ok=True)
(out / "plots").mkdir(parents=True, exist_ok=True)
grid = {name: Candidate(**candidate) for name, candidate in candidates.items()}
metrics = {"profile": profile, "llm": llm, "anchor_source": anchor_source, "seeds": seeds,
           "protocol": {"cv_folds": cv_folds, "cv_repeats": cv_repeats, "test_fraction": test_fraction,
                        "seed": seed}}
shipped = {}

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
# ## Selection, refit and the held-out comparison, per dataset
#
# The first seed of every candidate on every fold, then the winner's other seeds on the
# same folds; then the refits on all of train. Folds run in `threads` processes.

# %%
for dataset in ("emotion6", "emoscenes"):
    started = time.perf_counter()
    splits = study.load_splits(dataset)
    label_names = splits["train"].label_names
    anchor_sets = {name: build_anchor_set(label_names, anchor_source, c.template, llm=llm,
                                          synonyms=c.recipe.synonym_p > 0) for name, c in grid.items()}
    random_anchors = build_anchor_set(label_names, "random", "bare", llm=llm, seed=seed)
    result = selection.select_and_ship(
        splits, grid, anchor_sets, random_anchors, seeds, test_fraction=test_fraction, folds=cv_folds,
        repeats=cv_repeats, seed=seed, lr_folds=lr_cv_folds, n_jobs=threads)
    shipped[dataset] = result
    winner = result.selection.selected
    metrics[dataset] = {"vision_tower": study.vision_tower_of(splits["train"]), **result.metrics(),
                        "seconds": time.perf_counter() - started}
    save_projector(paths.MODELS / "projector" / dataset, result.model, anchor_sets[winner].anchors,
                   label_names, {
                       "dataset": dataset, "vision_tower": metrics[dataset]["vision_tower"],
                       "llm": llm, "anchor_source": anchor_source, "template": grid[winner].template,
                       "recipe": grid[winner].recipe.but(seed=seeds[0]).to_dict(), "candidate": winner,
                       "seeds": seeds if result.selection.ship_ensemble else seeds[:1],
                       "trained_on": f"{dataset} train ({len(result.development.train)} images)",
                       "top1": {split: e.top1 for split, e in result.evaluations.items()},
                   })
    print(f"{dataset}: shipped {result.name}; {metrics[dataset]['seconds']:.0f} s")

# %% [markdown]
# ## Cross-validation on train (selection)
#
# Top-1 in percent, mean ± standard error over folds x repeats; "vs paper" is the paired
# difference to the paper recipe on the same folds, in points. The last two rows per
# dataset compare the winner's seeds alone with their ensemble on the same folds.

# %%
cv_md = markdown_table(*selection.cv_rows({d: metrics[d]["selection"] for d in shipped}))
display(Markdown(cv_md))
display(Image(filename=str(figures.bar_chart(
    {d: {name: (row["top1"]["mean"], row["top1"]["se"]) for name, row in metrics[d]["selection"]["scores"].items()}
     for d in shipped},
    out / "figures" / "cv_top1.png", ylabel="CV top-1 (mean ± s.e.)",
    title="Selection: repeated stratified k-fold on train"))))

# %% [markdown]
# ## On data neither the projector nor its selection saw
#
# Top-1 in percent on every held-out split; every model is fitted on the same training
# rows. The logistic probe is the reference to beat; the nearest centroid is the floor.
# "Random anchors" is the shipped recipe (first seed) trained against meaningless anchors:
# a supervised projector learns to separate *any* fixed set of distinct anchors, so it is
# a control for what the anchors' meaning adds, not a chance level (in the default run it
# scores only a few points below the shipped projector). The paper recipe gets the shipped model's treatment (a seed ensemble when the
# shipped one is). The last column is the shipped projector minus the probe, in points.

# %%
held_md = markdown_table(*selection.held_out_rows({d: metrics[d]["held_out_top1"] for d in shipped}))
(out / "results.md").write_text("## Cross-validation on train\n\n" + cv_md + "\n\n## Held out\n\n" + held_md + "\n")
display(Markdown(held_md))

# %% [markdown]
# ### Which tokens an anchor averages
#
# Upstream averages the rows of the tokens its tokenizer's call gives, so its anchors include the
# BOS row only where the tokenizer adds one: Llama-2's (OpenELM's) and TinyLlama's add `<s>`,
# Phi-2's adds nothing. For the paper's four LLMs this project does the same (`as-tokenized`,
# `tinyemo.projector.anchors.anchor_tokens`), so their rows compare like for like with the paper.
# SmolLM2's tokenizer adds no BOS either; this profile keeps its own choice and prepends it
# (`with-bos`), the paper's description of an anchor ("BOS included"). Both, once, on Emotion6:
# the mean cosine between two labels' anchors (the shared BOS row draws them together) and the
# paper recipe (first seed) trained on the same training rows and scored on the held-out test
# rows, with its 95 % interval.

# %%
if anchor_source == "llm":
    development = shipped["emotion6"].development
    train, test = development.train, development.held_out["test"]
    metrics["anchor_tokens"] = {"llm": llm, "used": anchor_tokens(llm)}
    for tokens in (WITH_BOS, AS_TOKENIZED):
        anchor_set = build_anchor_set(train.label_names, "llm", "bare",
                                      encoder=text_encoder("llm", llm, tokens=tokens))
        cosines = anchor_set.anchors @ anchor_set.anchors.T
        fit = train_projector(train.pooled, train.label_ids(), anchor_set, grid["paper"].recipe.but(seed=seeds[0]))
        evaluation = evaluate_projector(fit.model, test.pooled, test.label_ids(), anchor_set.anchors,
                                        anchor_set.label_names)
        metrics["anchor_tokens"][tokens] = {
            "mean_cosine_between_labels": float(cosines[~torch.eye(len(cosines), dtype=torch.bool)].mean()),
            "paper_recipe_test_top1": evaluation.top1, "test_top1_ci95": list(evaluation.top1_ci95),
            "n_test": len(test)}
    display(pd.DataFrame({tokens: row for tokens, row in metrics["anchor_tokens"].items()
                          if isinstance(row, dict)}).T.round(3))

# %% [markdown]
# ### The Emotion6 number of the paper
#
# The paper's best Emotion6 top-1 (77.27 %, TinyEmo-3.21B, Table VIII) is a *zero-shot*
# number: its projector was trained jointly on EmotionROI, WEBEmo and EmoSet and never on
# Emotion6, and EmotionROI's images overlap Emotion6's. Ours is trained on Emotion6's own
# training rows and tested on held-out Emotion6 images, with a 135M-parameter LLM's
# anchors: a different protocol, so the two numbers are not a like-for-like comparison.

# %% [markdown]
# ## The shipped projectors, per class
#
# Per-class accuracy and the confusion matrix of each shipped projector on its test split
# (the title names the model; its top-1 is the one in the held-out table).

# %%
for dataset, result in shipped.items():
    evaluation = result.evaluations["test"]
    pd.DataFrame(evaluation.confusion_records()).to_csv(out / "plots" / f"{dataset}_confusion.csv", index=False)
    display(Image(filename=str(figures.confusion_heatmap(
        evaluation.confusion, evaluation.label_names, out / "figures" / f"{dataset}_confusion.png",
        f"{dataset} test: {result.name}\n(top-1 {100 * evaluation.top1:.2f} %)"))))
pd.DataFrame({d: r.evaluations["test"].per_class for d, r in shipped.items()}).round(3)

# %% [markdown]
# ## Accuracy per epoch
#
# Held-out val top-1 after each epoch of the refits (first seed; watched, never used for
# a choice). Both recipes converge within their epochs.

# %%
for dataset, result in shipped.items():
    histories = {"paper": result.runs["paper"].runs[0].history, "shipped": result.runs["shipped"].runs[0].history}
    for name, history in histories.items():
        pd.DataFrame(history).to_csv(out / "plots" / f"{dataset}_{name}_history.csv", index=False)
    if "val_top1" in histories["shipped"][0]:
        display(Image(filename=str(figures.epoch_curves(
            histories, out / "figures" / f"{dataset}_accuracy_per_epoch.png",
            title=f"{dataset}: held-out val top-1 per epoch (first seed)"))))

# %% [markdown]
# ## The map
#
# A t-SNE of projected test images (dots) and the anchors (stars), shipped projector.
# Images of one emotion gather around a region; the anchor of their label should sit
# closest to it.

# %%
for dataset, result in shipped.items():
    test = result.development.held_out["test"]
    anchors = build_anchor_set(test.label_names, anchor_source, grid[result.selection.selected].template, llm=llm)
    display(Image(filename=str(figures.embedding_map(
        project(result.model, test.pooled), test.label_ids(), anchors.anchors, anchors.label_names,
        out / "figures" / f"{dataset}_tsne.png", max_points=tsne_points, seed=seed,
        title=f"{dataset} test: {result.name} (t-SNE)"))))

# %% [markdown]
# ## Held-out-label zero-shot
#
# The paper claims the LLM's embedding space transfers across taxonomies. In miniature:
# withhold a group of labels, train on the others, and ask whether images of the withheld
# emotions land nearest their own never-trained anchors (`held_out_top1`, chance =
# 1/group size), and among all labels (`all_labels_top1`, a much harder test: training
# pulls every image towards the seen anchors). Only training rows are used; the shipped
# recipe and template are used for every anchor source. Random anchors carry no meaning
# and are the control: they must sit at chance.

# %%
zeroshot_rows = []
for dataset, result in shipped.items():
    train = result.development.train
    candidate = grid[result.selection.selected]
    metrics[dataset]["zeroshot"] = {}
    for source in zeroshot_sources:
        anchor_set = build_anchor_set(train.label_names, source, candidate.template, llm=llm, seed=seed)
        found = held_out_zeroshot(train.pooled, train.label_ids(), anchor_set, candidate.recipe.but(seed=seed),
                                  group_size=zeroshot_group_size, seed=seed)
        metrics[dataset]["zeroshot"][source] = {k: v for k, v in found.items() if k != "folds"}
        zeroshot_rows.append({"dataset": dataset, "anchors": source,
                              **{k: round(v, 3) for k, v in found.items() if k != "folds"}})
zeroshot_md = markdown_table(list(zeroshot_rows[0]), [list(row.values()) for row in zeroshot_rows])
(out / "zeroshot.md").write_text(zeroshot_md + "\n")
display(Markdown(zeroshot_md))

# %%
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
display(Markdown(held_md))
