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
# # 07 · Semi-automated bias detection through the Metric Projector
#
# The paper claims that, because the projector maps images into the LLM's token-embedding
# space, any word can be used as an anchor, which allows "indirect bias detection". It gives
# no method and no numbers. Here the claim is made testable on EmoScenes, where the truth
# is known: the training split carries planted biases (a rule-irrelevant attribute value,
# such as a teal frame, made to co-occur with one emotion), the validation and test splits
# do not.
#
# The method ranks (predictor, emotion) pairs by how strongly the predictor pushes the
# projector's prediction toward the emotion **beyond what the true labels explain**: both
# are centred within true-label strata, the effect is the stratified (Mantel-Haenszel)
# shift in P(pred = emotion), and the p-value comes from a permutation test that shuffles
# predictions within true-label strata, corrected for every pair tested. Two kinds of
# predictors:
#
# - **concepts** (the paper's lens): words and phrases from a concept bank, turned into
#   anchors exactly like the emotion anchors; each image's concept score is its cosine to
#   the anchor, z-scored per concept and taken net of the image's emotion scores;
# - **groups** of images with vs. without an attribute value, where metadata exists.
#
# Three checks make the result trustworthy or not: the **recall** of the planted biases in
# the top flagged pairs, a **control** projector trained on the same split *without* the
# planted biases (it must flag nothing), and a **counterfactual probe** (the same scene with
# and without the attribute). The tool ranks and shows evidence; a person decides.

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
vision_tower = "efficientnet-lite0"
alpha = 0.05
correction = "bh"
n_permutations = 20000
residualise = True
n_null_phrases = 2000
top_k = 5
analysis_splits = ["val", "test"]
extra_concepts = None
n_counterfactual = 100
batch_size = 32
emotion6_split = "val"
report_rows = 10
n_examples = 4
planted_biases = []  # synthesize.planted_biases: the biases planted in the training split
image_size = 224  # synthesize.image_size: the side of the rendered scenes

# %%
import dataclasses
import json
import time

import torch
from IPython.display import Markdown, display

from tinyemo import paths
from tinyemo.bias import control as control_mod
from tinyemo.bias.analysis import Settings, analyse, attribute_values, emoscenes_splits, score_planted
from tinyemo.bias.concepts import concept_anchors, load_concept_bank, null_phrases
from tinyemo.bias.encoding import stored_precision
from tinyemo.bias.findings import write_report
from tinyemo.bias.probe import mean_flip_rates, probe_suspects, report_flips, suspect_pairs
from tinyemo.feature_store import load_features
from tinyemo.models.vision import load_vision_tower
from tinyemo.projector.artifact import load_projector

torch.set_num_threads(threads)
out = paths.stage_results("bias")
settings = Settings(alpha=alpha, correction=correction, n_permutations=n_permutations,
                    residualise=residualise, seed=seed)
timings = {}
started = time.perf_counter()
planted_biases

# %% [markdown]
# ## The concept bank and its anchors
#
# The default bank holds colours, objects, scene and weather words, frames and marks, and
# people-related words (`tinyemo/bias/concepts.yaml`); `extra_concepts` adds a user's file.
# Each concept's anchor is built from the same embedding table with the same grounding
# template as the projector's own anchors (read from the artifact's config).
#
# A concept score can predict the prediction without the concept's *meaning* playing any
# part: every direction of the projected space carries some of the image. So a concept is
# only credited when it is more associated than meaningless phrases (random letter strings
# under the same template): its p-value is the larger of the shuffle test's and this
# specificity test's.

# %%
projector = load_projector(paths.MODELS / "projector" / "emoscenes")
bank = load_concept_bank(extra_concepts)
anchors = concept_anchors(bank, projector.config, seed)
nulls = null_phrases(n_null_phrases, seed)
null_anchors = concept_anchors(nulls, projector.config, seed)
print(f"{len(bank)} concepts, {len(nulls)} null phrases (e.g. {nulls[:3]}); "
      f"template {projector.config['template']!r}, LLM {projector.config['llm']}")

# %% [markdown]
# ## EmoScenes: the projector trained on the biased split
#
# The analysis runs on unbiased held-out images (`analysis_splits`). Groups are the scene
# attributes the emotion rules never read (`frame_color`, `corner_mark`), one group per value.

# %%
ids, pooled, labels, records = emoscenes_splits(analysis_splits)
groups = attribute_values(records)
biased = analyse("biased", projector, pooled, labels, ids, bank, anchors, settings, groups, null_anchors)
timings["analysis_seconds"] = round(time.perf_counter() - started, 1)
display(biased.groups.head(report_rows))

# %% [markdown]
# ## The control: the same training split without the planted biases
#
# The planted attribute is re-drawn uniformly for every training image a bias could have
# touched (those labelled with a planted emotion); only the images whose value changes are
# rendered and encoded again. A projector is then trained on it with the analysed
# projector's recipe and anchors, and analysed on the same images. A pair it flags is either
# a false alarm of the method or a dependence of the model on the attribute that does not
# come from a training correlation (e.g. an encoder that reads global colour); the
# counterfactual probe below tells the two apart.

# %%
step = time.perf_counter()
tower = load_vision_tower(vision_tower)
precision = stored_precision("emoscenes", "train")  # re-encode as `encode` did (GPU: autocast)
train_ids, train_pooled, train_labels, train_records = emoscenes_splits(["train"])
control_pooled, n_reencoded = control_mod.control_features(
    tower, [r.scene for r in train_records], train_pooled, planted_biases, train_labels,
    image_size, seed, batch_size, precision)
control_projector = control_mod.train_like(projector, control_pooled, train_labels)
control = analyse("control", control_projector, pooled, labels, ids, bank, anchors, settings, groups,
                  null_anchors)
timings["control_seconds"] = round(time.perf_counter() - step, 1)
print(f"{n_reencoded} of {len(train_ids)} training images re-rendered for the control")
display(control.groups.head(5))

# %% [markdown]
# ## Counterfactual probe
#
# For each planted bias, and for each group pair among the `top_k` flagged by either projector,
# test scenes lacking the attribute value are rendered again with it (only the frame or
# corner-mark pixels change), and both projectors classify both versions. A flagged pair whose
# counterfactual moves predictions toward its emotion is a real dependence of the model on
# the attribute, whether or not anyone planted it.

# %%
step = time.perf_counter()
test_ids, test_pooled, _, test_records = emoscenes_splits(["test"])
suspects = suspect_pairs(planted_biases, [biased.groups, control.groups], top_k)
flips, probes = probe_suspects(suspects, {"biased": projector, "control": control_projector}, tower,
                               [r.scene for r in test_records], image_size, batch_size,
                               pooled=test_pooled, limit=n_counterfactual, precision=precision)
timings["counterfactual_seconds"] = round(time.perf_counter() - step, 1)
{"planted": flips, "other flagged pairs": probes}

# %% [markdown]
# ## What raw concept scores would say
#
# The naive concept analysis, for both projectors: raw z-scored cosines, no adjustment for
# the emotion scores and no null phrases. A concept anchor that lies near an emotion's anchor
# scores high on every image projected near that emotion, so raw concept scores "predict"
# predictions by construction: the count of flags with and without a planted bias shows how
# much of the naive lens is the geometry of the embedding table.

# %%
raw_settings = dataclasses.replace(settings, residualise=False)
raw = {name: analyse(name, model, pooled, labels, ids, bank, anchors, raw_settings)
       for name, model in (("biased", projector), ("control", control_projector))}

# %% [markdown]
# ## Emotion6: real photographs, no ground truth
#
# Upstream's CLIP ViT-L/14 features of Emotion6 carry no metadata, so only the concept lens
# applies; what it flags are candidates for a person to check against the images. The naive
# lens is run too, to show what it would have claimed.

# %%
emotion6_projector = load_projector(paths.MODELS / "projector" / "emotion6")
emotion6_features = load_features("emotion6", emotion6_split)
emotion6_inputs = (emotion6_projector, emotion6_features.pooled, emotion6_features.labels,
                   emotion6_features.ids, bank, concept_anchors(bank, emotion6_projector.config, seed))
emotion6 = analyse("emotion6", *emotion6_inputs, settings,
                   null_anchors=concept_anchors(nulls, emotion6_projector.config, seed))
raw["Emotion6"] = analyse("emotion6", *emotion6_inputs, raw_settings)
display(emotion6.concepts.head(report_rows))
{name: int(f.concepts.flagged.sum()) for name, f in raw.items()}

# %% [markdown]
# ## Scores on known truth and the report

# %%
truth = score_planted(biased, planted_biases, top_k)
metrics = {
    "profile": profile,
    "planted_biases": len(planted_biases),
    "alpha": alpha,
    "correction": correction,
    "top_k": top_k,
    "n_analysed": len(ids),
    "top1_biased": round(biased.accuracy, 4),
    "top1_control": round(control.accuracy, 4),
    "planted_recall_top_k": truth["group_recall"],
    "false_flags": truth["group_false_flags"],
    "control_flags": int(control.groups.flagged.sum()),
    "concept_recall_top_k": truth["concept_recall"],
    "concept_false_flags": truth["concept_false_flags"],
    "control_concept_flags": int(control.concepts.flagged.sum()),
    "raw_concept_flags_biased": int(raw["biased"].concepts.flagged.sum()),
    "raw_concept_flags_control": int(raw["control"].concepts.flagged.sum()),
    **mean_flip_rates(flips, ["biased", "control"]),
    "emotion6_concept_flags": int(emotion6.concepts.flagged.sum()),
    "emotion6_raw_concept_flags": int(raw["Emotion6"].concepts.flagged.sum()),
    "n_reencoded_control": n_reencoded,
    "counterfactual": flips,
    "counterfactual_flagged": probes,
    "emotion6_top": emotion6.concepts.head(5)[["predictor", "emotion", "rate_shift", "q"]].to_dict("records"),
    **timings,
}
image_paths = {r.id: r.image_path() for r in records}
report = write_report(out, metrics=metrics, emoscenes=biased, control=control, raw=raw,
                      flips=report_flips(flips, probes),
                      emotion6=emotion6, image_paths=image_paths, correction=correction, alpha=alpha,
                      k=report_rows, n_examples=n_examples)
biased.groups.to_csv(out / "groups_biased.csv", index=False)
control.groups.to_csv(out / "groups_control.csv", index=False)
biased.concepts.to_csv(out / "concepts_biased.csv", index=False)
emotion6.concepts.to_csv(out / "concepts_emotion6.csv", index=False)
metrics["total_seconds"] = round(time.perf_counter() - started, 1)
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
display(Markdown(report.read_text()))
