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
# # 01 · Synthesize: EmoScenes, a world where the emotion is known
#
# The paper trains on WEBEmo images and on text written by teacher models (Bunny-v1.0-3B for
# pre-training, Claude 3.5 Sonnet for the best fine-tuning reasonings). Neither the images
# nor that text can be checked: nobody knows the *true* emotion of a web photo, and nobody
# knows which parts of a teacher's paragraph are grounded in the image.
#
# This stage builds a small world in which everything is known. Each image is drawn from a
# **scene graph** (objects with positions, sizes and colours; a palette; light; weather;
# two decorative attributes). The emotion follows **explicit rules** on that graph, a
# controlled share of labels is then **corrupted**, an irrelevant attribute can be made to
# **co-occur** with one emotion in the training split only (a planted bias), and a
# **teacher** writes the paper's two instruction data sets from the graph. Every later
# stage (features, Metric Projector, MM-LLM, bias analysis) can then be scored against the
# truth.

# %% tags=["parameters"]
seed = 0
n_train = 1600
n_val = 400
n_test = 400
image_size = 224
label_noise = 0.1
planted_biases = [{"attribute": "frame_color", "value": "teal", "emotion": "fear", "strength": 0.9}]
teacher = "rule"
n_figure_samples = 8

# %%
import json
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown

from tinyemo import paths
from tinyemo.scenes import catalogue, figures, records, rules, stats
from tinyemo.scenes.dataset import synthesize
from tinyemo.scenes.llm_teacher import make_teacher
from tinyemo.scenes.planted_bias import check_biases
from tinyemo.scenes.sampling import sample_scene
from tinyemo.taxonomy import MIKELS_TO_EKMAN

results = paths.stage_results("synthesize")
(results / "figures").mkdir(parents=True, exist_ok=True)
biases = check_biases(planted_biases)

# %% [markdown]
# ## The world
#
# The catalogue (`tinyemo/scenes/catalogue.py`) declares every object kind, palette, light
# and weather, with the emotions each one evokes and how strongly (its *cues*). Some kinds
# evoke several emotions (fire: mostly anger, a little fear and excitement; a candle: sadness
# but also contentment), so cues overlap; some evoke nothing (trees, houses, birds, clouds,
# fences, the moon) and only distract.

# %%
pd.DataFrame([
    {"object": k.name, "zone": k.zone, "colours": ", ".join(k.colours),
     "cues": ", ".join(f"{e} {w:g}" for e, w in k.cues.items()) or "(neutral)",
     "grows with size": k.scales_with_size}
    for k in catalogue.OBJECT_KINDS.values()
])

# %% [markdown]
# ## The rules
#
# The label of a scene is the Mikels-8 emotion with the highest **sum of cue weights** over
# its objects, palette, light and weather. Awe objects (mountains, great waves, fields of
# stars) count in proportion to their size: a small hill is not awe-inspiring. An exact tie
# goes to the emotion first in Mikels-8 order. The two attributes `frame_color` and
# `corner_mark` are never read by the rules. The full table is in the dataset card; here is
# one scene with its scores.

# %%
example = sample_scene(np.random.default_rng(seed), "awe")
scores = rules.rule_scores(example)
print([f"{o.colour} {o.kind} (size {o.size:.2f})" for o in example.objects],
      example.palette, example.light, example.weather)
print({e: round(s, 2) for e, s in scores.items()}, "->", rules.rule_label(example))

# %% [markdown]
# **Sampling.** For each image a *target* emotion is drawn uniformly; the sampler places 1-3
# objects whose strongest cue is that emotion (awe objects large), picks the target's
# palette, light and weather with probability 0.5 each (otherwise uniformly), and adds 0-3
# distractor objects of any kind. The label is then computed by the rules, **not** copied
# from the target: a distractor (a spider among balloons) or a clashing palette sometimes
# wins. The dataset card reports how often the rules agree with the target.
#
# **Label noise.** A share `label_noise` of the rule labels is replaced by a *different*
# emotion drawn uniformly (so the measured disagreement matches the parameter). Both
# `rule_label` and `label` are kept. Models train and are scored on `label`, so a perfect
# learner of the rules reaches about `1 - label_noise` top-1: that is the ceiling reported
# below as `rule_accuracy_test`.
#
# **Planted bias.** Each entry of `planted_biases` sets, in the *training* split only, the
# attribute to `value` for images labelled `emotion` with probability `strength`. Other
# classes, and all of val/test, keep the uniform base rate. Whether the bias chose the value
# is stored per image (`biased`). A classifier that leans on the frame colour will look
# better on train than on test; stage `bias` must find it without being told.
#
# **Two taxonomies.** Labels are Mikels-8 (like EmoSet and FI). `label_ekman` maps them to
# Ekman-6 (like Emotion6): the four negative emotions keep their names; amusement,
# contentment and excitement are forms of enjoyment and become joy; awe, the response to
# something vast that widens attention, is closest to surprise.

# %%
pd.Series(MIKELS_TO_EKMAN, name="Ekman-6").rename_axis("Mikels-8").to_frame()

# %% [markdown]
# ## The teacher
#
# For every image the teacher writes, from the scene graph:
#
# - three separate **pre-training** records, as in the paper: a caption for
#   `Describe the image.`, a visual question and answer (counts, colours, places, presence,
#   weather, layout) and a sentiment question and answer;
# - one **fine-tuning** record with the paper's exact instruction, offering three labels
#   (the true one and two others, in random order) and naming the correct one; the answer
#   is an emotional reasoning paragraph grounded in the objects and colours that drive the
#   emotion, then a last line `Emotion: <label>`.
#
# The default teacher (`teacher: rule`) assembles varied sentences from templates and an
# emotion lexicon, in shuffled order, seeded by the scene: the same scene always gets the
# same text, but no class has one fixed sentence. With `teacher` set to an LLM name
# (paper profile), the caption and reasoning are generated by that language model from a
# prompt listing the scene's facts. The training split's records go to `pretrain.json` and
# `finetune.json`; validation and test records (`*_val.json`, `*_test.json`) serve only as
# references.

# %%
started = time.perf_counter()
writer = make_teacher(teacher, seed)
scene_records, report = synthesize(
    n_train=n_train, n_val=n_val, n_test=n_test, image_size=image_size,
    label_noise=label_noise, planted_biases=planted_biases, teacher=writer, seed=seed,
)
synthesize_seconds = time.perf_counter() - started
print(f"{report.n_images} images in {synthesize_seconds:.1f} s "
      f"({report.images_per_second:.0f} images/s rendered and saved)")
print(writer.summary())

# %% [markdown]
# ## What was generated, measured
#
# Everything below is measured on the written data, read back through the same loaders the
# later stages use.

# %%
scene_records = records.load_scene_records()
finetune = records.load_conversations("finetune")
pretrain = records.load_conversations("pretrain")
metrics = stats.stage_metrics(scene_records, finetune, pretrain, biases, label_noise)
metrics.update({
    "synthesize_seconds": synthesize_seconds,
    "render_seconds": report.render_seconds,
    "teacher_seconds": report.teacher_seconds,
    "render_images_per_second": report.images_per_second,
    "image_size": image_size,
    "teacher": teacher,
    **writer.report(),
})
(results / "metrics.json").write_text(json.dumps(metrics, indent=2))
{k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}

# %%
Markdown((paths.EMOSCENES / "dataset_card.md").read_text().split("## Rules")[0])

# %% [markdown]
# ## Samples and their fine-tuning answers
#
# One image per class where possible, from the training split; the title shows the label
# and, for a corrupted label, what the rules say.

# %%
by_class = {}
for record in scene_records:
    if record.split == "train":
        by_class.setdefault(record.label, record)
chosen = list(by_class.values())[:n_figure_samples]
answers = {item["id"]: item for item in finetune}
figures.sample_grid(chosen, answers, paths.EMOSCENES, results / "figures" / "samples.png")

# %%
figures.class_counts_chart(metrics["counts"], results / "figures" / "class_counts.png")

# %% [markdown]
# ## Counterfactuals
#
# Because an image is a function of its graph, any rule-irrelevant attribute can be changed
# on its own (`with_attribute`): the label stays, and only the frame or the corner pixels
# move. Stage `bias` uses such pairs to test whether a model's prediction depends on the
# planted attribute.

# %%
attribute = biases[0].attribute if biases else "frame_color"
value = biases[0].value if biases else catalogue.ATTRIBUTES[attribute][0]
shown = next(r for r in scene_records if r.attributes[attribute] != value)
figures.counterfactual_figure(shown.scene, attribute, value, image_size,
                              results / "figures" / "counterfactual.png")

# %% [markdown]
# One full pre-training triple and one fine-tuning record, as the MM-LLM stages read them:

# %%
first = chosen[0].id
print(json.dumps([p for p in pretrain if p["image"] == chosen[0].image], indent=1))
print(json.dumps(answers[first], indent=1))
